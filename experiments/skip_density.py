"""skip-density: paper 1 Fig. 1 (right) on Fashion-MNIST.

Paper 1 builds a single-block SNN (4 conv layers in the block), gives every layer n_skip = 0..3
incoming skips (capped at the layers before it), either all DSC (concatenation) or all ASC
(addition), and reports on CIFAR-10-DVS that accuracy rises with n_skip whatever the type, and
that DSC fires slightly more than ASC on average (n_skip = 0: 11 %). Here: snnc.search.nets'
single-block network, compiled (S2S for ASC edges, paper 2), the block rewritten with
`set_block` to each density, trained from scratch like every other run (same seeds, data,
epochs); the firing rate is the mean over all LIF layers on the test set.
"""

from __future__ import annotations

from snnc.experiments import paper2, plots
from snnc.experiments.core import Run, Scale, by_variant, compare
from snnc.experiments.snnrun import execute, train_key  # noqa: F401  (the runner calls them)

NAME = "skip-density"
CITES = "paper 1 Fig. 1"
CLAIM = ("More skip connections per layer give higher accuracy, whatever their type; DSC "
         "fires slightly more than ASC.")
PAPER = {"firing rate at n_skip=0, %": 11.0}  # Fig. 1 (right), CIFAR-10-DVS; the rest is a plot
N_SKIPS = (0, 1, 2, 3)


def variants() -> dict[str, dict]:
    out = {"n0": {"net": "single-block"}}
    for t in ("DSC", "ASC"):
        for n in N_SKIPS[1:]:
            out[f"{t} n{n}"] = {"net": "single-block", "skips": {"type": t, "n": n}}
    return out


def runs(scale: Scale) -> list[Run]:
    return paper2.variant_runs(variants(), scale)


def _series(rows, metric) -> dict[str, dict[int, tuple[float, float]]]:
    out = {}
    for t in ("DSC", "ASC"):
        pts = {}
        for n in N_SKIPS:
            v = "n0" if n == 0 else f"{t} n{n}"
            if v in rows:
                r = metric(rows[v])
                pts[n] = (r["mean"], r["std"])
        out[t] = pts
    return out


def summarize(records, scale: Scale) -> dict:
    rows = paper2.accuracy_rows(records)
    verdicts = []
    top = N_SKIPS[-1]
    for t in ("DSC", "ASC"):
        if "n0" in rows and f"{t} n{top}" in rows:
            a, b = rows[f"{t} n{top}"], rows["n0"]
            verdicts.append({"claim": f"{t} n_skip={top} > n_skip=0 (test accuracy)",
                             "verdict": compare(a, b),
                             "difference_pp": 100 * (a["mean"] - b["mean"])})
    rate = by_variant(records, lambda r: r["mean_rate"])
    dsc = [rate[f"DSC n{n}"] for n in N_SKIPS[1:] if f"DSC n{n}" in rate]
    asc = [rate[f"ASC n{n}"] for n in N_SKIPS[1:] if f"ASC n{n}" in rate]
    if dsc and len(dsc) == len(asc):
        wins = sum(d["mean"] > a["mean"] for d, a in zip(dsc, asc))
        verdicts.append({"claim": "DSC fires more than ASC at the same n_skip",
                         "verdict": "reproduced" if wins == len(dsc) else
                         "reversed" if wins == 0 else "not reproduced",
                         "dsc_higher_at": f"{wins} of {len(dsc)} densities"})
    return {"variants": rows, "verdicts": verdicts}


def plot(records, summary, out, scale: Scale):
    rows = summary["variants"]
    n = max(r["n"] for r in rows.values())
    title = f"{NAME} ({CITES}); {n} seed(s); single block, {scale.short()}"
    return [plots.curves(_series(rows, lambda r: r), out / "accuracy.png",
                         xlabel="n_skip (skips into each layer)",
                         ylabel="Fashion-MNIST test accuracy, %", title=title),
            plots.curves(_series(rows, lambda r: r["mean_rate"]), out / "firing_rate.png",
                         xlabel="n_skip (skips into each layer)",
                         ylabel="mean firing rate, % of neurons per step", title=title)]
