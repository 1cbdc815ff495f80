"""Figures of the experiments, drawn like the papers' (matplotlib, Agg): accuracy bars with a
std error bar over seeds (paper 2 Tables 2/4/5 as bars), activity maps layer x time step (paper 2
Fig. 3), accuracy against inference time steps (paper 2 Table 16), best-so-far curves with std
bands (paper 1 Fig. 3; snnc.search.plots draws those)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def bars(rows: dict[str, dict], path: Path, *, ylabel: str, title: str,
         paper: dict[str, float] | None = None, scale: float = 100.0) -> Path:
    """One bar per variant: mean with a +-1 std error bar over seeds (each seed a dot); the
    paper's figure, when given, as a hollow marker on a second axis (another dataset)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rows), 3.6))
    names = list(rows)
    x = np.arange(len(names))
    means = [scale * rows[n]["mean"] for n in names]
    stds = [scale * rows[n]["std"] for n in names]
    ax.bar(x, means, yerr=stds, capsize=6, color="#4c72b0", alpha=0.85, label="snnc (mean ± std)")
    for i, n in enumerate(names):
        vals = [scale * v for v in rows[n]["values"]]
        ax.plot([i] * len(vals), vals, "k.", ms=5)
        ax.text(i, means[i], f"{means[i]:.2f}", ha="center", va="bottom", fontsize=8)
    lo = min(m - s for m, s in zip(means, stds))
    hi = max(m + s for m, s in zip(means, stds))
    pad = max(0.5, 0.25 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(x, names)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if paper:
        ax2 = ax.twinx()
        px = [i for i, n in enumerate(names) if n in paper]
        ax2.plot(px, [paper[names[i]] for i in px], "o", mfc="none", mec="#c44e52", ms=9,
                 label="paper")
        ax2.set_ylabel("paper (CIFAR), %", color="#c44e52")
        ax2.tick_params(axis="y", colors="#c44e52")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        # below the axes: inside, it hid the paper's marker of the last bar
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", ncol=2,
                  bbox_to_anchor=(0.5, -0.1), frameon=False)
    return _save(fig, path)


def activity_maps(maps: dict[str, np.ndarray], layers: list[str], path: Path, *,
                  title: str, gammas: dict[str, tuple[list[str], np.ndarray]] | None = None
                  ) -> Path:
    """Paper 2 Fig. 3: per variant, the percentage of neurons spiking in each layer (rows) at each
    time step (columns), averaged over the test images and the seeds; one colour scale. With
    `gammas` ({variant: (BNTT layers, [layer, step] mean gamma)}) a second row shows BNTT's
    learned gamma per layer and step (Fig. 3's second row)."""
    plt = _plt()
    n = len(maps)
    rows = 2 if gammas else 1
    fig, axes = plt.subplots(rows, n, figsize=(2.2 + 2.0 * n, rows * (0.9 + 0.22 * len(layers))),
                             squeeze=False)
    vmax = max(float(np.nanmax(m)) for m in maps.values()) * 100
    im = None
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(100 * m, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("" if gammas else "time step")
        ax.set_xticks(range(m.shape[1]), [str(t + 1) for t in range(m.shape[1])])
        ax.set_yticks(range(len(layers)), layers if ax is axes[0][0] else [""] * len(layers),
                      fontsize=6)
    fig.colorbar(im, ax=axes[0].tolist(), label="% neurons spiking")
    if gammas:
        gmax = max(float(np.nanmax(g)) for _, g in gammas.values())
        gmin = min(float(np.nanmin(g)) for _, g in gammas.values())
        for ax, name in zip(axes[1], maps):
            glayers, g = gammas[name]
            im = ax.imshow(g, aspect="auto", cmap="magma", vmin=gmin, vmax=gmax)
            ax.set_xlabel("time step")
            ax.set_xticks(range(g.shape[1]), [str(t + 1) for t in range(g.shape[1])])
            ax.set_yticks(range(len(glayers)),
                          glayers if ax is axes[1][0] else [""] * len(glayers), fontsize=6)
        fig.colorbar(im, ax=axes[1].tolist(), label="mean BNTT gamma")
    fig.suptitle(title, fontsize=9, y=1.02)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(series: dict[str, dict[int, tuple[float, float]]], path: Path, *, xlabel: str,
           ylabel: str, title: str, scale: float = 100.0) -> Path:
    """Lines with a +-1 std band: {label: {x: (mean, std)}}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, pts in series.items():
        xs = sorted(pts)
        m = np.array([scale * pts[x][0] for x in xs])
        s = np.array([scale * pts[x][1] for x in xs])
        ax.plot(xs, m, "o-", label=label)
        ax.fill_between(xs, m - s, m + s, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)
