"""encoding: paper 2 Table 4 on Fashion-MNIST.

Paper 2 feeds the image straight into the first convolution at every time step (direct
encoding: that layer's LIF neurons make the spikes) and compares it with Poisson rate coding
(69.03 vs 64.96 % on CIFAR-100, 100 epochs). Here: `snnc compile --encoder direct` against
`--encoder poisson`, S2S residuals, BNTT, the scale's S-ResNet, same seeds and training.
"""

from __future__ import annotations

from snnc.experiments import paper2
from snnc.experiments.core import Scale
from snnc.experiments.snnrun import execute, train_key  # noqa: F401  (the runner calls them)

NAME = "encoding"
CITES = "paper 2 Table 4"
CLAIM = "Direct (first-convolution) encoding is more accurate than Poisson rate coding."
PAPER = {"direct": 69.03, "poisson": 64.96}  # CIFAR-100 test accuracy, %, Table 4
VARIANTS = {"direct": {"encoder": "direct"}, "poisson": {"encoder": "poisson"}}


def runs(scale: Scale):
    return paper2.variant_runs(VARIANTS, scale)


def summarize(records, scale: Scale) -> dict:
    rows = paper2.accuracy_rows(records)
    return {"variants": rows, "verdicts": paper2.claims(rows, [("direct", ">", "poisson")])}


def plot(records, summary, out, scale: Scale):
    return paper2.accuracy_and_activity_plots(records, summary, out, name=NAME, cites=CITES,
                                              paper=PAPER, scale_text=scale.short())
