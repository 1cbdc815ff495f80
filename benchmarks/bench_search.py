"""BO against random search over skip connections (paper 1 Fig. 3), on a real offline task.

    .venv/bin/python benchmarks/bench_search.py -o bench_out/search [--budget 50 --seeds 3]

Paper 1's single-block network (a stem, one block of 4 conv layers, a linear head) on
Fashion-MNIST: the ANN is trained, converted, the parent SNN trained once; then for every seed
both BO and RS search the block's adjacency matrix, residual kinds and DSC fractions with the
same budget, batch and evaluation protocol (weight sharing, n epochs of fine-tuning, drop on a
validation split). Run outside CI (tens of minutes). Resumable: rerun the same command after an
interruption; finished evaluations are read from the journals.

Prints, per seed and as mean +- std: RS's best drop, the evaluations BO needs to reach it and
the evaluations RS needed, the best drop each found, and the share of a BO round's wall time
spent fitting the GP and choosing the batch. Writes summary.json and best_so_far.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _reach(c: np.ndarray, target: float) -> int | None:
    hit = np.nonzero(c <= target + 1e-9)[0]
    return int(hit[0]) + 1 if len(hit) else None


def _gp_share(journal: Path) -> list[float]:
    """Per GP round: (fit + acquisition) / the round's wall time (fit + acquisition +
    feasibility checks of proposals + its evaluations' wall time)."""
    from snnc.search.journal import read_journal

    recs = list(read_journal(journal))
    ev = {r["eval_id"]: r for r in recs if r["type"] == "eval"}
    out = []
    for r in recs:
        if r["type"] == "round" and r.get("mode") == "gp":
            prop = r["fit_s"] + r["acq_s"]
            work = r.get("check_s", 0.0) + sum(ev[c["eval_id"]]["wall_s"]
                                               for c in r["candidates"] if c["eval_id"] in ev)
            out.append(prop / (prop + work))
    return out


def main(argv=None) -> int:
    """Run the comparison; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="bench_out/search")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--ann-epochs", type=int, default=8)
    ap.add_argument("--parent-epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="bo,random", help="bo, random or both")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from snnc.compiler.options import Options
    from snnc.search.evaluate import EvalSettings
    from snnc.search.executors import LocalExecutor
    from snnc.search.loop import SearchConfig, run_search
    from snnc.search.nets import SingleBlockNet
    from snnc.search.plots import curve, plot_best_so_far
    from snnc.search.prepare import prepare

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = EvalSettings(data=args.data, train=args.train, val=args.val,
                     options=Options(timesteps=args.timesteps, encoder="direct"),
                     parent_epochs=args.parent_epochs, finetune_epochs=args.finetune_epochs)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    ev = prepare(SingleBlockNet(args.channels, stem_stride=2), s, ann_epochs=args.ann_epochs)
    print(f"prepare: {time.perf_counter() - t0:.0f} s", flush=True)
    journals: dict[str, list[Path]] = {"BO": [], "RS": []}
    for seed in range(args.seeds):
        for method, label in (("bo", "BO"), ("random", "RS")):
            if method not in args.methods.split(","):
                continue
            d = out / f"{label.lower()}-seed{seed}"
            cfg = SearchConfig(method=method, budget=args.budget, batch=args.batch, seed=seed)
            t1 = time.perf_counter()
            run_search(ev.space, LocalExecutor(ev, threads=args.threads), cfg, d, resume=True,
                       accept=ev.feasible, header_extra={"bench": vars(args)})
            c = curve(d / "journal.jsonl")
            print(f"{label} seed {seed}: best drop {c[-1]:.2f} pp "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
            journals[label].append(d / "journal.jsonl")

    share = [x for j in journals["BO"] for x in _gp_share(j)]
    if share:
        print(f"GP fit + acquisition share of a BO round: mean {100 * np.mean(share):.2f}%, "
              f"median {100 * np.median(share):.2f}%, max {100 * np.max(share):.2f}%")
    if not (journals["BO"] and journals["RS"]):
        return 0
    rows = []
    for seed in range(args.seeds):
        bo, rs = curve(journals["BO"][seed]), curve(journals["RS"][seed])
        target = float(rs[-1])
        rows.append({"seed": seed, "rs_best": target, "bo_best": float(bo[-1]),
                     "rs_evals_to_best": _reach(rs, target), "bo_evals_to_rs_best":
                     _reach(bo, target)})

    def ms(key):
        v = [r[key] if r[key] is not None else np.nan for r in rows]
        return float(np.nanmean(v)), float(np.nanstd(v)), int(np.sum(np.isnan(v)))

    summary = {"args": vars(args), "ann_acc": ev.info["ann_acc"],
               "parent_acc": ev.info["parent_acc"], "space_size": ev.info["space_size"],
               "per_seed": rows, "gp_share_mean": float(np.mean(share)) if share else None,
               "gp_share_max": float(np.max(share)) if share else None,
               "gp_share_median": float(np.median(share)) if share else None}
    for key in ("rs_best", "bo_best", "rs_evals_to_best", "bo_evals_to_rs_best"):
        summary[key] = dict(zip(("mean", "std", "not_reached"), ms(key)))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_best_so_far({k: v for k, v in journals.items()}, out / "best_so_far.png",
                     title=f"{args.data}: accuracy drop, BO vs RS")
    print(json.dumps(summary, indent=1))
    bo_n, rs_n = summary["bo_evals_to_rs_best"]["mean"], summary["rs_evals_to_best"]["mean"]
    print(f"BO reaches RS's best in {bo_n:.1f} evaluations on average vs {rs_n:.1f} for RS "
          f"(ratio {bo_n / rs_n:.2f}; target <= 0.33). GP fit + acquisition: "
          f"{100 * (summary['gp_share_mean'] or 0):.2f}% of a BO round on average "
          f"(max {100 * (summary['gp_share_max'] or 0):.2f}%).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
