"""ann-scale: the ANN every SNN of the paper-2 experiments is compiled from, trained as an ANN.

Not a claim of the papers: the condition that makes the scale mean something
(docs/results.md "Scales"): the scale's S-ResNet, trained as a plain ANN on the same training
images (the same seeded validation split is held out and keeps the best epoch, as `snnc train`
does), must reach >= 90 % on the Fashion-MNIST test images; it also gives each SNN's gap to
its ANN. Trained like `snnc train` trains the SNN (`snnc.search.evaluate.fit` with
``cosine=True``): Adam, the scale's lr with its cosine schedule set at every step, the
scale's batch and epochs, validation after every epoch.
"""

from __future__ import annotations

from pathlib import Path

from snnc.experiments import paper2, plots
from snnc.experiments.core import Run, Scale, by_variant

NAME = "ann-scale"
CITES = "the scale's condition (docs/results.md \"Scales\"), not a claim of the papers"
CLAIM = "The scale's S-ResNet, trained as an ANN, reaches >= 90 % on the test images."
PAPER: dict = {}  # no paper figure: a condition on the scale
TARGET = 0.90
RECORD_KEYS = {"test_accuracy", "val_accuracy", "history", "params"}
VERDICTS = ("met", "not met")


def runs(scale: Scale) -> list[Run]:
    return paper2.variant_runs({"ANN": {}}, scale)


def execute(run: Run, scale: Scale, workdir: Path) -> dict:
    """Train the scale's ANN with seed `run.seed` on the training images less the validation
    split `snnc train` draws with that seed; keep the best validation epoch; test once."""
    import copy

    import torch

    from snnc.compiler import split_val
    from snnc.data import load_dataset
    from snnc.search.evaluate import accuracy, fit

    torch.manual_seed(run.seed)
    net = scale.sresnet()
    size = scale.input_size
    ds = load_dataset(scale.data, "train", limit=scale.train + scale.val, size=size, channels=1)
    tr, va = split_val(ds, scale.val, run.seed)
    history, best = [], {"val": -1.0, "state": None}

    def keep_best(epoch: int, loss: float) -> None:
        val_acc = accuracy(net, va.x, va.y)
        history.append({"epoch": epoch + 1, "loss": loss, "val_accuracy": val_acc})
        if val_acc > best["val"]:
            best.update(val=val_acc, state=copy.deepcopy(net.state_dict()))

    fit(net, tr.x, tr.y, scale.epochs, scale.batch_size, scale.lr, run.seed, cosine=True,
        on_epoch=keep_best)
    net.load_state_dict(best["state"])
    te = load_dataset(scale.data, "test", limit=scale.test, size=size, channels=1)
    return {"test_accuracy": accuracy(net, te.x, te.y), "val_accuracy": best["val"],
            "history": history, "params": sum(p.numel() for p in net.parameters())}


def summarize(records, scale: Scale) -> dict:
    rows = by_variant(records, lambda r: r["test_accuracy"])
    verdicts = []
    if "ANN" in rows:
        m = rows["ANN"]["mean"]
        verdicts.append({"claim": f"ANN test accuracy >= {100 * TARGET:.0f} % (mean over seeds)",
                         "verdict": "met" if m >= TARGET else "not met",
                         "mean_pp": 100 * m})
    return {"variants": rows, "verdicts": verdicts}


def plot(records, summary, out, scale: Scale):
    n = max((r["n"] for r in summary["variants"].values()), default=0)
    return [plots.bars(summary["variants"], out / "accuracy.png",
                       title=f"{NAME}: the ANN; {n} seed(s); {scale.short()}",
                       ylabel="Fashion-MNIST test accuracy, %")]
