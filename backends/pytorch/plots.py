"""Firing-rate plots (like paper 2 Fig. 3): mean rate per layer and rate per time step."""

from __future__ import annotations

from pathlib import Path


def plot_rates(rates: dict[str, list[float]], path: str | Path) -> Path:
    """Write a two-panel PNG: mean firing rate per lif layer (bars, network order) and each
    layer's rate over time steps (lines). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rates)
    means = [sum(v) / max(len(v), 1) for v in rates.values()]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(range(len(names)), means, color="tab:blue")
    a.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    a.set_ylabel("mean firing rate (spikes / neuron / step)")
    a.set_title("per layer")
    for name, v in rates.items():
        b.plot(range(len(v)), v, lw=1, alpha=0.8)
    b.set_xlabel("time step")
    b.set_ylabel("firing rate")
    b.set_title("per time step (one line per layer)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rates_table(rates: dict[str, list[float]]):
    """A rich Table of the rates: one row per layer, mean and each step."""
    from rich.table import Table

    steps = max((len(v) for v in rates.values()), default=0)
    table = Table(title="firing rates (spikes / neuron / step)")
    table.add_column("layer")
    table.add_column("mean", justify="right")
    for t in range(steps):
        table.add_column(f"t{t}", justify="right")
    for name, v in rates.items():
        table.add_row(name, f"{sum(v) / max(len(v), 1):.4f}", *(f"{r:.3f}" for r in v))
    return table


def plot_curves(history: list[dict], path: str | Path) -> Path:
    """Write the training curves as a PNG: loss (left) and accuracy (right) per epoch, on the
    training batches and, where logged, the validation split. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((a, "loss", "cross-entropy loss"), (b, "acc", "top-1 accuracy")):
        train_key = "loss" if key == "loss" else "train_acc"
        ax.plot(epochs, [h[train_key] for h in history], "o-", label="training batches")
        val = [(h["epoch"], h.get(f"val_{key}")) for h in history
               if h.get(f"val_{key}") is not None]
        if val:
            ax.plot(*zip(*val), "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    best = [h for h in history if h.get("val_acc") is not None]
    if best:
        top = max(best, key=lambda h: h["val_acc"])
        b.axvline(top["epoch"], color="grey", ls=":", lw=1)
        b.set_title(f"kept: epoch {top['epoch']} (best validation)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_plot(res: dict, path: str | Path, title: str = "") -> Path:
    """SNN accuracy against T (log2 axis) with the ANN's accuracy as a line; written atomically
    (a temporary file beside `path`, then renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = list(res["by_timesteps"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ts, [res["by_timesteps"][t] for t in ts], "o-", label="SNN")
    if res.get("ann_accuracy") is not None:
        ax.axhline(res["ann_accuracy"], color="k", ls="--", lw=1, label="ANN")
    if len(ts) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(title or "accuracy against T")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
