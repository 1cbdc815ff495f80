"""What the paper-2 experiments (residual-modes, bn-modes, encoding, latency) share: runs of
variants x seeds, accuracy / firing-rate / cost summaries, and their figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.experiments import plots
from snnc.experiments.core import Run, Scale, by_variant, compare


def variant_runs(variants: dict[str, dict], scale: Scale) -> list[Run]:
    """Every variant at seeds 0 .. scale.seeds - 1 (seed-major, so partial results cover all
    variants early)."""
    return [Run(name, seed, dict(settings)) for seed in range(scale.seeds)
            for name, settings in variants.items()]


def accuracy_rows(records: list[dict]) -> dict[str, dict]:
    """Per variant: test accuracy, mean firing rate, SOPs and energy (mean / std over seeds)."""
    acc = by_variant(records, lambda r: r["test_accuracy"])
    rate = by_variant(records, lambda r: r["mean_rate"])
    sops = by_variant(records, lambda r: r["cost"]["sops"] or 0.0)
    energy = by_variant(records, lambda r: r["cost"]["energy_uj"] or float("nan"))
    wall = by_variant(records, lambda r: r["wall_s"])
    return {v: {**acc[v], "mean_rate": rate[v], "sops": sops[v], "energy_uj": energy[v],
                "wall_s": wall[v]} for v in acc}


def claims(rows: dict[str, dict], pairs: list[tuple[str, str, str]]) -> list[dict]:
    """Verdicts of claims "a > b" / "a >= b" on test accuracy: (a, op, b) with op ">" or ">="."""
    out = []
    for a, op, b in pairs:
        if a in rows and b in rows:
            out.append({"claim": f"{a} {op} {b} (test accuracy)",
                        "verdict": compare(rows[a], rows[b], at_least=op == ">="),
                        "difference_pp": 100 * (rows[a]["mean"] - rows[b]["mean"])})
    return out


def activity_map(records: list[dict], variant: str) -> tuple[list[str], np.ndarray]:
    """(layers, [layer, step] mean spiking fraction over the variant's seeds)."""
    recs = [r for r in records if r["variant"] == variant]
    layers = list(recs[0]["rates_per_step"])
    m = np.mean([[r["rates_per_step"][k] for k in layers] for r in recs], axis=0)
    return layers, m


def gamma_map(records: list[dict], variant: str):
    """(BNTT layers, [layer, step] mean gamma over the variant's seeds), or None without BNTT."""
    recs = [r for r in records if r["variant"] == variant]
    layers = list(recs[0].get("bntt_gamma") or {})
    if not layers:
        return None
    return layers, np.mean([[r["bntt_gamma"][k] for k in layers] for r in recs], axis=0)


def accuracy_and_activity_plots(records: list[dict], summary: dict, out: Path, *, name: str,
                                cites: str, paper: dict[str, float] | None,
                                scale_text: str) -> list[Path]:
    """accuracy.png (bars, std over seeds, the paper's figures beside) and activity.png (one
    layer x time-step map per variant)."""
    rows = summary["variants"]
    n = max(r["n"] for r in rows.values())
    files = [plots.bars(rows, out / "accuracy.png", ylabel="Fashion-MNIST test accuracy, %",
                        title=f"{name} ({cites}); {n} seed(s)\n{scale_text}", paper=paper)]
    maps, layers = {}, None
    for v in rows:
        layers, maps[v] = activity_map(records, v)
    if layers and all(m.shape == next(iter(maps.values())).shape for m in maps.values()):
        gammas = {v: gamma_map(records, v) for v in rows}
        files.append(plots.activity_maps(maps, layers, out / "activity.png",
                                         title=f"{name}: % of neurons spiking per layer and "
                                               f"time step, test set ({cites})",
                                         gammas=gammas if all(gammas.values()) else None))
    return files
