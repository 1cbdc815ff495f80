"""UCB acquisition, its beta schedule, the candidate pool and batch selection.

The search *minimises* the objective f (the ANN-to-SNN accuracy drop), so UCB is applied to -f:

    ucb(x) = -mu(x) + sqrt(beta_t) * sigma(x)          (maximised)

i.e. the lower confidence bound of the drop, mu - sqrt(beta_t) sigma, is minimised.

Beta schedules (t = number of finished evaluations + 1, so a batch of k does not count as one):

* ``srinivas`` (default): GP-UCB for a finite domain D, Srinivas et al. 2010, Theorem 1:
  beta_t = 2 log(|D| t^2 pi^2 / (6 delta)), delta = 0.1. |D| is the size of the search space.
  Theory-backed and very exploratory; it grows like log t, so exploitation wins only slowly.
* ``scaled``: the same times ``scale`` (default 0.2), the usual practical shrinkage (Kandasamy
  et al. 2015 use 0.2 of the theoretical value): same growth, less exploration.
* ``constant``: beta_t = ``scale``.

Batch selection (k candidates per round, for parallel evaluation) uses the *kriging believer*:
pick the pool's best point, add the GP's own mean there as a fantasy observation
(hyperparameters kept), recompute UCB on the rest of the pool, repeat. The fantasy shrinks
sigma around chosen points, so the batch spreads out. A candidate already evaluated, pending,
rejected by a constraint or chosen earlier in the batch is never proposed.

Pool: mutations (1 or 2 entries changed) of the best observed points plus uniform random samples
(:func:`candidate_pool`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

import numpy as np

from snnc.search.gp import FittedGP
from snnc.search.space import Levels, SearchSpace

SCHEDULES = ("srinivas", "scaled", "constant")


def beta_t(t: int, space_size: int, *, schedule: str = "srinivas", delta: float = 0.1,
           scale: float = 0.2) -> float:
    """The UCB exploration weight beta_t at step `t` >= 1 (see the module docstring)."""
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    if schedule == "constant":
        return float(scale)
    theory = 2.0 * (math.log(space_size) + 2.0 * math.log(t) + math.log(math.pi ** 2 / 6.0)
                    - math.log(delta))
    if schedule == "srinivas":
        return theory
    if schedule == "scaled":
        return scale * theory
    raise ValueError(f"unknown beta schedule {schedule!r}; use one of {SCHEDULES}")


def ucb(mu: np.ndarray, sd: np.ndarray, beta: float) -> np.ndarray:
    """UCB of the negated objective: -mu + sqrt(beta) * sd (larger is better)."""
    return -np.asarray(mu) + math.sqrt(beta) * np.asarray(sd)


def candidate_pool(space: SearchSpace, observed: Sequence[tuple[Levels, float]],
                   rng: np.random.Generator, *, exclude: Collection[Levels] = (),
                   n_best: int = 5, n_mutations: int = 200, n_random: int = 200,
                   max_tries: int = 20) -> list[Levels]:
    """Distinct, feasible, not-excluded candidates: mutations of the `n_best` best observed
    points (lowest objective) and uniform random samples."""
    seen = set(exclude)
    pool: list[Levels] = []

    def offer(c: Levels) -> None:
        if c not in seen and space.feasible(c):
            seen.add(c)
            pool.append(c)

    best = [c for c, _ in sorted(observed, key=lambda cy: cy[1])[:n_best]]
    if best:
        for m in range(n_mutations * max_tries):
            if m >= n_mutations and len(pool) >= n_mutations:
                break
            parent = best[m % len(best)]
            offer(space.mutate(parent, rng, n_changes=1 + int(rng.integers(0, 2))))
    target = len(pool) + n_random
    for _ in range(n_random * max_tries):
        if len(pool) >= target:
            break
        offer(space.sample(rng))
    return pool


def select_batch(gp: FittedGP, space: SearchSpace, pool: Sequence[Levels], k: int, beta: float,
                 *, accept: Callable[[Levels], bool] | None = None) -> list[Levels]:
    """k distinct candidates from `pool` by UCB with the kriging believer.

    `accept` is an optional expensive feasibility check run on the chosen point only; a rejected
    point is dropped from the pool and the next best taken.
    """
    remaining = list(pool)
    feats = space.features(remaining) if remaining else np.zeros((0, 2 * space.n_vars))
    chosen: list[Levels] = []
    model = gp
    while len(chosen) < k and remaining:
        mu, sd = model.predict(feats)
        order = np.argsort(-ucb(mu, sd, beta), kind="stable")
        pick = None
        for idx in order:
            if accept is None or accept(remaining[idx]):
                pick = int(idx)
                break
        if pick is None:
            break
        chosen.append(remaining[pick])
        if len(chosen) < k:
            model = model.believe(feats[pick:pick + 1], mu[pick:pick + 1])
        # drop the pick (and any rejected points ahead of it) from the pool
        drop = set(int(i) for i in order[:list(order).index(pick) + 1])
        keep = [i for i in range(len(remaining)) if i not in drop]
        remaining = [remaining[i] for i in keep]
        feats = feats[keep]
    return chosen
