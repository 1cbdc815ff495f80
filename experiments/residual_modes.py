"""residual-modes: paper 2 Table 2 and Fig. 3 on Fashion-MNIST.

Paper 2 trains S-ResNet38 (32 base filters, 70 epochs, CIFAR) with each spiking residual: S2S
(spike-to-spike: the skip adds the source's spikes to the block's output spikes), V2V (the
membrane potentials are added) and S2M (spikes into the membrane), and finds S2S >= V2V > S2M in
accuracy (94.01 / 93.83 / 89.27 % on CIFAR-10) with S2S the most spiking activity in deep layers
(Fig. 3). Here: the same three modes (`snnc compile --residual s2s|v2v|s2m`) on the scale's
S-ResNet, same seeds, same training.
"""

from __future__ import annotations

from snnc.experiments import paper2
from snnc.experiments.core import Scale
from snnc.experiments.snnrun import execute, train_key  # noqa: F401  (the runner calls them)

NAME = "residual-modes"
CITES = "paper 2 Table 2, Fig. 3"
CLAIM = ("On an S-ResNet, S2S >= V2V > S2M in accuracy, and S2S gives the most spiking "
         "activity.")
PAPER = {"S2S": 94.01, "V2V": 93.83, "S2M": 89.27}  # CIFAR-10 test accuracy, %, Table 2
VARIANTS = {"S2S": {"residual": "s2s"}, "V2V": {"residual": "v2v"}, "S2M": {"residual": "s2m"}}


def runs(scale: Scale):
    return paper2.variant_runs(VARIANTS, scale)


def summarize(records, scale: Scale) -> dict:
    rows = paper2.accuracy_rows(records)
    verdicts = paper2.claims(rows, [("S2S", ">=", "V2V"), ("V2V", ">", "S2M")])
    if all(v in rows for v in VARIANTS):
        top = max(rows, key=lambda v: rows[v]["mean_rate"]["mean"])
        verdicts.append({"claim": "S2S has the highest mean firing rate (Fig. 3)",
                         "verdict": "reproduced" if top == "S2S" else "not reproduced",
                         "highest": top})
    return {"variants": rows, "verdicts": verdicts}


def plot(records, summary, out, scale: Scale):
    return paper2.accuracy_and_activity_plots(records, summary, out, name=NAME, cites=CITES,
                                              paper=PAPER, scale_text=scale.short())
