"""bo-vs-rs: paper 1 Fig. 3 on Fashion-MNIST.

Paper 1 plots the best accuracy drop found against the number of evaluations for its BO and for
random search (RS) and claims BO gets better configurations in fewer evaluations, more stably.
Here: per search seed, one preparation (ANN, parent SNN) shared by a BO search and an RS search
with the same budget, batch, weight sharing and fine-tuning (docs/search.md; paper 1 trained RS
candidates from scratch). Measured beside it: the candidate noise, the std of one candidate's
validation score over fine-tuning seeds (the parent's configuration and RS's first candidates),
against the std of the scores across RS's candidates; and, per seed, the evaluations each
method needed to reach RS's final best.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from snnc.experiments import searchrun
from snnc.experiments.core import Run, Scale, mean_std

NAME = "bo-vs-rs"
CITES = "paper 1 Fig. 3"
CLAIM = "BO finds better skip configurations than random search in fewer evaluations."
PAPER = {"claim": "BO below RS at every budget (Fig. 3, a plot: no table of numbers)"}
RECORD_KEYS = {"bo", "rs", "noise", "evals_to_rs_best"}


def protocol(scale: Scale) -> dict:
    return searchrun.protocol(NAME, scale)


def runs(scale: Scale) -> list[Run]:
    return [Run("search", seed) for seed in range(scale.seeds)]


def _first_reaching(objs: list[float], target: float) -> int | None:
    """1-based number of evaluations after which the best so far is <= target (None: never)."""
    best = float("inf")
    for i, v in enumerate(objs, 1):
        best = min(best, v)
        if best <= target + 1e-12:
            return i
    return None


def execute(run: Run, scale: Scale, workdir: Path) -> dict:
    ss = searchrun.search_scale(NAME, scale)
    ev, _ = searchrun.prepare_seed(scale, ss, run.seed)
    rec = {}
    objs = {}
    for method, key in (("bo", "bo"), ("random", "rs")):
        evals = searchrun.search_once(ev, scale, ss, run.seed, method, workdir / key)
        objs[key] = [e["objective"] if e["status"] == "ok" else float("inf") for e in evals]
        # relative to the experiment's directory OUT (workdir is the run key's folder in OUT's
        # "work" folder), so that results.json names no path of the machine that ran it
        journal = Path("work") / workdir.name / key / "journal.jsonl"
        rec[key] = {"journal": journal.as_posix(), "objectives": objs[key],
                    "best": min(objs[key]),
                    "best_describe": min((e for e in evals if e["status"] == "ok"),
                                         key=lambda e: e["objective"])["describe"]}
    rs_best = rec["rs"]["best"]
    rec["evals_to_rs_best"] = {k: _first_reaching(objs[k], rs_best) for k in ("bo", "rs")}
    # candidate noise: each candidate fine-tuned with several seeds, scored on validation
    from snnc.search.plots import evals_of

    rs_ok = [e for e in evals_of(workdir / "rs" / "journal.jsonl") if e["status"] == "ok"]
    cands = [tuple(searchrun.base_levels(ev))] + [tuple(e["levels"]) for e in
                                                  rs_ok[:ss.noise_candidates - 1]]
    per = []
    for levels in cands:
        drops = [ev(levels, 1000 + k)["drop"] for k in range(ss.noise_seeds)]
        per.append({"levels": list(levels), "drops": drops, "std": mean_std(drops)[1]})
    noise = sum(p["std"] for p in per) / len(per)
    rec["search_scale"] = asdict(ss)
    rec["noise"] = {"candidates": per, "candidate_noise_std_pp": noise,
                    "across_candidates_std_pp": mean_std(objs["rs"])[1]}
    return rec


def summarize(records, scale: Scale) -> dict:
    b = [r["evals_to_rs_best"]["bo"] for r in records]
    r_ = [r["evals_to_rs_best"]["rs"] for r in records]
    budget = searchrun.search_scale(NAME, scale).budget
    b_eff = [budget + 1 if v is None else v for v in b]  # never reached: past the budget
    bm, bs = mean_std(b_eff)
    rm, rsd = mean_std(r_)
    noise = mean_std(r["noise"]["candidate_noise_std_pp"] for r in records)
    across = mean_std(r["noise"]["across_candidates_std_pp"] for r in records)
    ratio = bm / rm if rm else float("nan")
    verdict = ("reproduced" if ratio <= 0.5 else "reversed" if ratio > 1.0
               else "not reproduced")
    rows = {"BO": {"mean": bm, "std": bs, "n": len(b), "values": b},
            "RS": {"mean": rm, "std": rsd, "n": len(r_), "values": r_}}
    return {"variants": rows, "metric": "evaluations to reach RS's final best",
            "evaluations_to_rs_best": rows, "bo_never_reached": sum(v is None for v in b),
            "ratio_bo_to_rs": ratio,
            "candidate_noise_std_pp": {"mean": noise[0], "std": noise[1]},
            "across_candidates_std_pp": {"mean": across[0], "std": across[1]},
            "noise_at_most_a_third": noise[0] <= across[0] / 3,
            "final_best_drop_pp": {k: mean_std(r[k]["best"] for r in records)
                                   for k in ("bo", "rs")},
            "verdicts": [{"claim": "BO reaches RS's final best in <= 1/2 of RS's evaluations",
                          "verdict": verdict, "ratio": ratio}]}


def plot(records, summary, out, scale: Scale):
    from snnc.search.plots import plot_best_so_far

    n = len(records)
    # from the objectives in results.json: the journals are working files (git ignores them)
    return [plot_best_so_far({"BO": [r["bo"]["objectives"] for r in records],
                              "RS": [r["rs"]["objectives"] for r in records]},
                             out / "best_so_far.png",
                             title=f"{NAME} ({CITES}): best drop so far (pp), {n} seed(s)")]
