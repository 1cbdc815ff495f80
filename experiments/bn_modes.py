"""bn-modes: paper 2 Table 5 on Fashion-MNIST.

Paper 2 compares batch normalisation through time (BNTT: statistics and affine parameters per
time step) with one BN shared over the time steps on S-ResNet38 (32 base filters, 70 epochs,
CIFAR-100): 74.54 vs 70.82 %. Here: `snnc compile --bn bntt` against `--bn shared`, S2S
residuals, the scale's S-ResNet, same seeds and training.
"""

from __future__ import annotations

from snnc.experiments import paper2
from snnc.experiments.core import Scale
from snnc.experiments.snnrun import execute, train_key  # noqa: F401  (the runner calls them)

NAME = "bn-modes"
CITES = "paper 2 Table 5"
CLAIM = "BNTT (per-time-step BN) is more accurate than one BN shared over time steps."
PAPER = {"bntt": 74.54, "shared": 70.82}  # CIFAR-100 test accuracy, %, Table 5
VARIANTS = {"bntt": {"bn": "bntt"}, "shared": {"bn": "shared"}}


def runs(scale: Scale):
    return paper2.variant_runs(VARIANTS, scale)


def summarize(records, scale: Scale) -> dict:
    rows = paper2.accuracy_rows(records)
    return {"variants": rows, "verdicts": paper2.claims(rows, [("bntt", ">", "shared")])}


def plot(records, summary, out, scale: Scale):
    return paper2.accuracy_and_activity_plots(records, summary, out, name=NAME, cites=CITES,
                                              paper=PAPER, scale_text=scale.short())
