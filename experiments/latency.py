"""latency: paper 2 Table 16 and sec. 5.2 on Fashion-MNIST.

Paper 2 trains S-ResNet38 with 50 time steps and drops the last 10/20/30/40 at inference
(94.10 -> 93.96 / 93.61 / 91.93 / 63.86 % on CIFAR-10), against a net trained with 20 steps
(91.28 % at 20 steps, 90.45 % at 10): train with the T you will run. Sec. 5.2 then argues that
the best leak depends on the number of steps (Table 17 learns it with PLIF; out of scope here:
snnc's leak is fixed per compile). Here: S2S nets trained at T_long = the scale's T and at
T_short = half of it, each with two fixed leaks, evaluated on the test set after every
prefix of their time steps (`Compiled.evaluate(timesteps=[1..T])`: the readout after t steps,
the later steps dropped).
"""

from __future__ import annotations

from snnc.experiments import paper2, plots
from snnc.experiments.core import Scale, compare, mean_std
from snnc.experiments.snnrun import execute, train_key  # noqa: F401  (the runner calls them)

NAME = "latency"
CITES = "paper 2 Table 16, sec. 5.2"
CLAIM = ("Dropping the last time steps at inference costs accuracy gradually; a net trained "
         "with the shorter T is better at that T than a longer-trained net cut short; the best "
         "leak depends on T.")
# CIFAR-10 accuracy, %, Table 16: (inference steps, training steps) -> accuracy
PAPER = {"50/50": 94.10, "40/50": 93.96, "30/50": 93.61, "20/50": 91.93, "20/20": 91.28,
         "10/50": 63.86, "10/20": 90.45}
LEAKS = (0.874, 0.6)  # paper 2's hyper-parameter-searched leak (sec. 3.5), and a leakier one


def long_short(scale: Scale) -> tuple[int, int]:
    """(T_long, T_short): the scale's T and half of it (paper 2: 50 and 20)."""
    return scale.timesteps, max(1, scale.timesteps // 2)


def variants(scale: Scale) -> dict[str, dict]:
    out = {}
    for t in long_short(scale):
        for leak in LEAKS:
            out[f"T{t} leak{leak}"] = {"timesteps": t, "leak": leak,
                                       "eval_timesteps": list(range(1, t + 1))}
    return out


def runs(scale: Scale):
    return paper2.variant_runs(variants(scale), scale)


def _curve(records, variant) -> dict[int, tuple[float, float]]:
    recs = [r for r in records if r["variant"] == variant]
    steps = sorted(int(t) for t in recs[0]["by_timesteps"])
    return {t: mean_std(r["by_timesteps"][str(t)] for r in recs) for t in steps}


def _row(curve: dict[int, tuple[float, float]], t: int, n: int) -> dict:
    m, s = curve[t]
    return {"mean": m, "std": s, "n": n}


def summarize(records, scale: Scale) -> dict:
    rows = paper2.accuracy_rows(records)
    curves = {v: _curve(records, v) for v in rows}
    n = max(r["n"] for r in rows.values())
    tl, ts = long_short(scale)
    verdicts = []
    for leak in LEAKS:
        long_, short = f"T{tl} leak{leak}", f"T{ts} leak{leak}"
        if long_ in curves and short in curves:
            a, b = _row(curves[short], ts, n), _row(curves[long_], ts, n)
            verdicts.append({
                "claim": f"at {ts} inference steps, trained with {ts} > trained with {tl} and "
                         f"cut short (leak {leak})",
                "verdict": compare(a, b), "difference_pp": 100 * (a["mean"] - b["mean"])})
            full, half = _row(curves[long_], tl, n), _row(curves[long_], ts, n)
            verdicts.append({
                "claim": f"dropping the last half of {tl} steps costs accuracy (leak {leak})",
                "verdict": compare(full, half), "difference_pp": 100 * (full["mean"]
                                                                        - half["mean"])})
    best = {}
    for t in (tl, ts):
        cands = {leak: _row(curves[f"T{t} leak{leak}"], t, n) for leak in LEAKS
                 if f"T{t} leak{leak}" in curves}
        if len(cands) == len(LEAKS):
            best[t] = max(cands, key=lambda k: cands[k]["mean"])
            a, b = cands[LEAKS[0]], cands[LEAKS[1]]
            best[f"{t}_verdict_leak{LEAKS[0]}>leak{LEAKS[1]}"] = compare(a, b)
    if tl in best and ts in best:
        # reproduced only when the two leaks are ordered beyond the seed noise at both T, and
        # oppositely: one T "reproduced" (leak A better), the other "reversed" (leak B better);
        # a difference within the noise at either T does not show that the best leak moved
        va = best[f"{tl}_verdict_leak{LEAKS[0]}>leak{LEAKS[1]}"]
        vb = best[f"{ts}_verdict_leak{LEAKS[0]}>leak{LEAKS[1]}"]
        moved = {va, vb} == {"reproduced", "reversed"}
        verdicts.append({"claim": "the best fixed leak differs between the two T (sec. 5.2)",
                         "verdict": "reproduced" if moved else "not reproduced",
                         "best_leak": {str(k): v for k, v in best.items()}})
    return {"variants": rows, "by_timesteps": {v: {str(t): {"mean": m, "std": s}
                                                   for t, (m, s) in c.items()}
                                               for v, c in curves.items()},
            "verdicts": verdicts}


def plot(records, summary, out, scale: Scale):
    series = {f"trained {v}": {int(t): (p["mean"], p["std"]) for t, p in c.items()}
              for v, c in summary["by_timesteps"].items()}
    n = max(r["n"] for r in summary["variants"].values())
    return [plots.curves(series, out / "latency.png", xlabel="inference time steps (the last "
                         "ones dropped)", ylabel="Fashion-MNIST test accuracy, %",
                         title=f"{NAME} ({CITES}); {n} seed(s); {scale.short()}")]
