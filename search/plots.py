"""Search reports: best-so-far curves (paper 1 Fig. 3), GP prediction vs observed, Pareto front.

Every function reads journals (see journal.py) and writes one PNG; none needs the search to be
running. matplotlib uses the Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from snnc.search.journal import read_journal
from snnc.search.loop import best_so_far


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def evals_of(journal: str | Path) -> list[dict]:
    """The journal's evaluation records in eval-id order."""
    ev = [r for r in read_journal(journal) if r["type"] == "eval"]
    return sorted(ev, key=lambda r: r["eval_id"])


def curve(journal: str | Path) -> np.ndarray:
    """Best objective so far after each evaluation (failures keep the previous best)."""
    return best_so_far([r.get("objective", float("nan")) if r["status"] == "ok"
                        else float("nan") for r in evals_of(journal)])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (both coordinates minimised), by the first one."""
    idx = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_e = [], float("inf")
    for i in idx:
        if points[i][1] < best_e:
            front.append(i)
            best_e = points[i][1]
    return front


def plot_best_so_far(runs: Mapping[str, Sequence[str | Path | Sequence[float]]],
                     path: str | Path, title: str = "best objective so far") -> Path:
    """Mean best-so-far over seeds with a +-1 std band per method (paper 1 Fig. 3). Each run is
    a journal, or its objectives in evaluation order (a failure as NaN or inf), as a
    results.json holds them."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, journals in runs.items():
        curves = [curve(j) if isinstance(j, (str, Path)) else best_so_far(list(j))
                  for j in journals]
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        x = np.arange(1, n + 1)
        mean, std = arr.mean(0), arr.std(0)
        ax.plot(x, mean, label=f"{label} (n={len(curves)})")
        ax.fill_between(x, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best objective so far (lower is better)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_gp_vs_observed(journal: str | Path, path: str | Path) -> Path | None:
    """The GP's prediction (mean +- sd, made when the candidate was proposed) against the
    observed objective; None when no GP round ran."""
    recs = list(read_journal(journal))
    preds = {c["eval_id"]: (c["pred_mu"], c["pred_sd"]) for r in recs if r["type"] == "round"
             for c in r["candidates"] if "pred_mu" in c}
    obs = {r["eval_id"]: r["objective"] for r in recs
           if r["type"] == "eval" and r["status"] == "ok"}
    ids = [i for i in preds if i in obs]
    if not ids:
        return None
    plt = _plt()
    mu = np.array([preds[i][0] for i in ids])
    sd = np.array([preds[i][1] for i in ids])
    y = np.array([obs[i] for i in ids])
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.errorbar(y, mu, yerr=sd, fmt="o", ms=3, alpha=0.7)
    lo, hi = min(y.min(), mu.min()), max(y.max(), mu.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    spread = len(ids) > 2 and y.std() > 0 and mu.std() > 0
    r = np.corrcoef(y, mu)[0, 1] if spread else float("nan")
    ax.set_xlabel("observed objective")
    ax.set_ylabel("GP prediction at proposal")
    ax.set_title(f"GP vs observed (r = {r:.2f}, n = {len(ids)})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_pareto(journal: str | Path, path: str | Path) -> Path | None:
    """Drop against energy of every evaluation, the Pareto front highlighted."""
    ev = [r for r in evals_of(journal) if r["status"] == "ok" and r.get("energy_uj") is not None]
    if not ev:
        return None
    plt = _plt()
    pts = [(r["drop"], r["energy_uj"]) for r in ev]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.5, label="evaluated")
    fp = [pts[i] for i in front]
    ax.plot([p[0] for p in fp], [p[1] for p in fp], "r.-", label="Pareto front")
    ax.set_xlabel("accuracy drop (percentage points)")
    ax.set_ylabel("energy per inference (uJ)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
