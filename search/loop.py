"""The search loop: Bayesian optimisation (paper 1 sec. III-B) or random search, journalled.

A search runs in synchronous rounds. Round r proposes k candidates (random for the first
``n_init`` evaluations and for random search; GP + UCB + kriging believer after that), writes them
to the journal, evaluates them through an executor and journals each result as it finishes.
``resume=True`` rebuilds everything from the journal: finished evaluations are never re-run; an
interrupted round is completed with its recorded candidates; later proposals are the same as
those of an uninterrupted run, since each round's random generator is derived from (seed, round)
and the GP is fitted on the finished evaluations in eval-id order.

Objectives (all minimised): ``drop`` = ANN accuracy - SNN accuracy (percentage points, on the
validation split); ``drop+energy`` = drop + energy_weight * energy (microjoules per inference
from the cost model); ``pareto``: the GP models a ParEGO scalarisation (Knowles 2006) of the
normalised (drop, energy) with weights drawn per round, and the report is the Pareto front.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snnc.search.acquisition import beta_t, candidate_pool, select_batch
from snnc.search.executors import Task
from snnc.search.gp import fit_gp
from snnc.search.journal import JOURNAL_NAME, Journal, JournalError, read_journal
from snnc.search.space import Levels, SearchSpace

OBJECTIVES = ("drop", "drop+energy", "pareto")
METHODS = ("bo", "random")


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one search. `budget` counts evaluations, `batch` is k per round."""

    method: str = "bo"
    budget: int = 50
    batch: int = 4
    seed: int = 0
    objective: str = "drop"
    energy_weight: float = 1.0
    n_init: int = 8
    beta_schedule: str = "scaled"
    beta_scale: float = 0.2
    beta_delta: float = 0.1
    pool_mutations: int = 200
    pool_random: int = 200
    ard: bool = True

    def __post_init__(self):
        from snnc.search.space import SearchSpaceError

        if self.method not in METHODS:
            raise SearchSpaceError(f"unknown search method {self.method!r}; use {METHODS}")
        if self.objective not in OBJECTIVES:
            raise SearchSpaceError(f"unknown objective {self.objective!r}; use {OBJECTIVES}")
        if self.budget < 1 or self.batch < 1:
            raise SearchSpaceError("--budget and --batch must be at least 1")


def space_fingerprint(space: SearchSpace) -> str:
    """A hash of the space's blocks and choices (constraints excluded)."""
    blocks = [(b.depth, b.kinds, b.fractions, b.entries, b.name) for b in space.blocks]
    return hashlib.sha256(json.dumps(blocks).encode()).hexdigest()[:16]


def eval_seed(seed: int, eval_id: int) -> int:
    """The seed of evaluation `eval_id` of a search seeded `seed` (independent of executor)."""
    return int(np.random.SeedSequence([seed, eval_id]).generate_state(1)[0])


@dataclass
class SearchState:
    """What the journal says: finished evaluations, proposed rounds, rejected candidates."""

    evals: dict[int, dict[str, Any]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rejected: set[Levels] = field(default_factory=set)
    header: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path) -> SearchState:
        """Rebuild the state from a journal."""
        st = cls()
        for rec in read_journal(path):
            t = rec["type"]
            if t == "header":
                st.header = rec
            elif t == "round":
                st.rounds.append(rec)
            elif t == "eval":
                st.evals[int(rec["eval_id"])] = rec
            elif t == "rejected":
                st.rejected.add(tuple(rec["levels"]))
        return st

    def ok(self) -> list[dict[str, Any]]:
        """Finished, successful evaluations in eval-id order."""
        return [self.evals[i] for i in sorted(self.evals) if self.evals[i]["status"] == "ok"]

    def seen(self) -> set[Levels]:
        """Every candidate already proposed (finished or not) or rejected."""
        out = set(self.rejected)
        for r in self.rounds:
            out.update(tuple(c["levels"]) for c in r["candidates"])
        return out


def objective_value(cfg: SearchConfig, result: dict[str, Any]) -> float:
    """The scalar objective of a result for 'drop' and 'drop+energy' (pareto: the drop)."""
    drop = float(result["drop"])
    if cfg.objective == "drop+energy":
        return drop + cfg.energy_weight * float(result["energy_uj"])
    return drop


def _scalarise(cfg: SearchConfig, evals: list[dict[str, Any]], rng) -> np.ndarray:
    """GP targets: the objective, or a ParEGO scalarisation for 'pareto'."""
    if cfg.objective != "pareto":
        return np.array([e["objective"] for e in evals], dtype=np.float64)
    d = np.array([e["drop"] for e in evals], dtype=np.float64)
    en = np.array([e["energy_uj"] for e in evals], dtype=np.float64)
    nd = (d - d.min()) / max(np.ptp(d), 1e-12)
    ne = (en - en.min()) / max(np.ptp(en), 1e-12)
    lam = float(rng.uniform())
    return np.maximum(lam * nd, (1 - lam) * ne) + 0.05 * (lam * nd + (1 - lam) * ne)


Accept = Callable[[Levels], bool]
Progress = Callable[[str, dict[str, Any]], None]


def run_search(space: SearchSpace, executor, cfg: SearchConfig, out_dir: str | Path, *,
               resume: bool = False, accept: Accept | None = None,
               progress: Progress | None = None, header_extra: dict | None = None
               ) -> SearchState:
    """Run (or resume) a search until `cfg.budget` evaluations are journalled; returns the state.

    `executor` runs evaluations (see executors.py); `accept` is an optional expensive
    feasibility check (target limits, max energy, max cores) applied to proposals; `progress`
    receives ("round" | "eval" | "done", info) events.
    """
    out = Path(out_dir)
    jpath = out / JOURNAL_NAME
    fp = space_fingerprint(space)
    if jpath.exists() and jpath.stat().st_size and not resume:
        raise JournalError(f"{jpath} already exists: pass --resume to continue that search, or "
                           "choose another output directory with -o")
    journal = Journal(jpath)
    state = SearchState.load(jpath) if resume else SearchState()
    if state.header is None:
        head = {"type": "header", "space": fp, "config": asdict(cfg), "n_vars": space.n_vars,
                "space_size": str(space.size), "time": time.time(), **(header_extra or {})}
        journal.append(head)
        state.header = head
    else:
        _check_header(state.header, fp, cfg, jpath)
    emit = progress or (lambda kind, info: None)

    while len(state.evals) < cfg.budget:
        r = len(state.rounds)
        last = state.rounds[-1] if state.rounds else None
        todo = [] if last is None else [c for c in last["candidates"]
                                         if c["eval_id"] not in state.evals]
        if not todo:
            todo = _propose(space, cfg, state, r, journal, accept)
            if not todo:
                break  # space exhausted
            rec = {"type": "round", "round": r, "candidates": todo[0], **todo[1]}
            journal.append(rec)
            state.rounds.append(rec)
            todo = todo[0]
            emit("round", rec)
        tasks = [Task(c["eval_id"], c["round"], tuple(c["levels"]), c["seed"]) for c in todo]
        for task, res in executor.run(tasks):
            rec = {"type": "eval", "eval_id": task.eval_id, "round": task.round,
                   "levels": list(task.levels), "seed": task.seed, "finished_at": time.time(),
                   "describe": space.describe(task.levels),
                   "blocks": [{"matrix": c.matrix.tolist(),
                               "kinds": {f"{i},{j}": k for (i, j), k in c.kinds.items()},
                               "fractions": {f"{i},{j}": f for (i, j), f in c.fractions.items()}}
                              for c in space.decode(task.levels)], **res}
            if res["status"] == "ok":
                rec["objective"] = objective_value(cfg, res)
            journal.append(rec)
            state.evals[task.eval_id] = rec
            emit("eval", rec)
    emit("done", {"n": len(state.evals)})
    return state


def _check_header(head: dict, fp: str, cfg: SearchConfig, jpath: Path) -> None:
    old = head.get("config", {})
    if head.get("space") != fp:
        raise JournalError(f"{jpath} was written for a different search space (fingerprint "
                           f"{head.get('space')} != {fp}): same model and space options are "
                           "needed to resume; or choose another -o")
    for key in ("method", "seed", "objective", "batch", "energy_weight"):
        if old.get(key) != getattr(cfg, key):
            raise JournalError(f"{jpath} was written with {key}={old.get(key)!r}, now "
                               f"{getattr(cfg, key)!r}: resume with the same settings (only "
                               "--budget may change)")


def _propose(space: SearchSpace, cfg: SearchConfig, state: SearchState, r: int,
             journal: Journal, accept: Accept | None):
    """The next round's candidates (list of dicts) and timing info; [] when nothing is left."""
    rng = np.random.default_rng([cfg.seed, r, 0xB0])
    k = min(cfg.batch, cfg.budget - len(state.evals))
    seen = state.seen()
    ok = state.ok()
    t0 = time.perf_counter()
    fit_s = acq_s = 0.0
    check_s = [0.0]
    beta = None
    preds: dict = {}

    def check(c: Levels) -> bool:
        t = time.perf_counter()
        ok = accept is None or accept(c)
        check_s[0] += time.perf_counter() - t
        if ok:
            return True
        state.rejected.add(c)
        seen.add(c)
        journal.append({"type": "rejected", "levels": list(c), "round": r})
        return False

    n_done = len(state.evals)
    if cfg.method == "random" or len(ok) < max(cfg.n_init, 2):
        chosen: list[Levels] = []
        for _ in range(2000 * k):
            if len(chosen) >= k:
                break
            c = space.sample(rng)
            if c in seen or not space.feasible(c):
                continue
            seen.add(c)
            if check(c):
                chosen.append(c)
    else:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the GP is small; one thread makes its fit reproducible
        try:
            y = _scalarise(cfg, ok, rng)
            levels = [tuple(e["levels"]) for e in ok]
            gp = fit_gp(space.features(levels), y, ard=cfg.ard)
            fit_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            pool = candidate_pool(space, list(zip(levels, y)), rng, exclude=seen,
                                  n_mutations=cfg.pool_mutations, n_random=cfg.pool_random)
            beta = beta_t(n_done + 1, space.size, schedule=cfg.beta_schedule,
                          delta=cfg.beta_delta, scale=cfg.beta_scale)
            chosen = select_batch(gp, space, pool, k, beta, accept=check)
            acq_s = time.perf_counter() - t1 - check_s[0]
            if chosen:
                mu, sd = gp.predict(space.features(chosen))
                preds = dict(zip(chosen, zip(mu.tolist(), sd.tolist())))
        finally:
            torch.set_num_threads(threads)
    used = [c["eval_id"] for rr in state.rounds for c in rr["candidates"]]
    first = max(used) + 1 if used else 0
    cands = [{"eval_id": first + i, "round": r, "levels": list(c),
              "seed": eval_seed(cfg.seed, first + i)} for i, c in enumerate(chosen)]
    for c in cands:  # the GP's belief before the batch was evaluated (for the report)
        if tuple(c["levels"]) in preds:
            c["pred_mu"], c["pred_sd"] = preds[tuple(c["levels"])]
    info = {"fit_s": fit_s, "acq_s": acq_s, "check_s": check_s[0], "beta": beta,
            "proposed_at": time.time(),
            "mode": "gp" if beta is not None else "random"}
    return (cands, info) if cands else []


def best_so_far(values: list[float]) -> np.ndarray:
    """Running minimum of `values` (NaN for failures is skipped)."""
    out, cur = [], math.inf
    for v in values:
        if v is not None and not math.isnan(v):
            cur = min(cur, v)
        out.append(cur)
    return np.array(out)
