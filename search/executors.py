"""Executors: where evaluations run. In-process, a local process pool, or Ray tasks.

Every executor runs ``evaluator(levels, seed)`` for a batch of tasks and yields
``(task, result)`` pairs *as they finish*, so the search journals each one at once. The same
wrapper (:func:`run_task`) runs in every executor: it sets ``torch.set_num_threads(threads)`` and
seeds torch / numpy / random from the task's seed, retries a raising evaluation up to
``retries`` times, and turns a final failure into a result with ``status = "failed"``. With the
same seeds and the same thread count, every executor returns the same numbers.

Ray (``--executor ray``): each evaluation is one Ray task with ``num_cpus`` / ``num_gpus``
resources and ``max_retries`` (worker crashes) plus the wrapper's own retries (exceptions). The
evaluator is put into the object store once. ``address`` is passed to ``ray.init`` (``None``:
connect to the cluster started on this machine by ``ray start --head`` if there is one, else
start a local one; ``"auto"``: require a running cluster).
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnc.compiler import SnncError

Evaluator = Callable[[tuple[int, ...], int], dict[str, Any]]


class ExecutorError(SnncError):
    """An executor cannot start (Ray missing, no cluster at the address, ...)."""


@dataclass(frozen=True)
class Task:
    """One evaluation to run: its id in the journal, round, candidate levels and seed."""

    eval_id: int
    round: int
    levels: tuple[int, ...]
    seed: int


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def run_task(evaluator: Evaluator, task: Task, threads: int, retries: int = 0) -> dict[str, Any]:
    """Run one evaluation under a fixed torch thread count and seed; never raises.

    Returns the evaluator's dict plus ``status`` ("ok" | "failed"), ``error``, ``attempts``,
    ``wall_s``, ``host`` and ``pid``.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    err = ""
    try:
        for attempt in range(1, retries + 2):
            seed_everything(task.seed)
            t0 = time.perf_counter()
            try:
                out = dict(evaluator(task.levels, task.seed))
            except Exception:  # noqa: BLE001 - reported in the journal, never lost
                err = traceback.format_exc(limit=8)
                continue
            out.update(status="ok", error="", attempts=attempt,
                       wall_s=time.perf_counter() - t0)
            break
        else:
            out = {"status": "failed", "error": err, "attempts": retries + 1, "wall_s": 0.0}
    finally:
        torch.set_num_threads(old)
    out.update(host=os.uname().nodename, pid=os.getpid())
    return out


class LocalExecutor:
    """Runs tasks in this process, one after another (the default)."""

    name = "local"

    def __init__(self, evaluator: Evaluator, *, threads: int = 1, retries: int = 0):
        self.evaluator, self.threads, self.retries = evaluator, threads, retries

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Yield (task, result) in order."""
        for t in tasks:
            yield t, run_task(self.evaluator, t, self.threads, self.retries)

    def close(self) -> None:
        """Nothing to release."""


_WORKER_EVALUATOR: Evaluator | None = None


def _pool_init(evaluator: Evaluator) -> None:
    global _WORKER_EVALUATOR
    _WORKER_EVALUATOR = evaluator


def _pool_run(task: Task, threads: int, retries: int) -> dict[str, Any]:
    if _WORKER_EVALUATOR is None:
        raise RuntimeError("process pool worker started without an evaluator")
    return run_task(_WORKER_EVALUATOR, task, threads, retries)


class ProcessPoolExecutor:
    """Runs tasks in `workers` spawned processes; the evaluator is sent once per worker."""

    name = "process"

    def __init__(self, evaluator: Evaluator, *, workers: int = 2, threads: int = 1,
                 retries: int = 0):
        import concurrent.futures as cf
        import multiprocessing as mp

        self.threads, self.retries = threads, retries
        self._pool = cf.ProcessPoolExecutor(max_workers=workers,
                                            mp_context=mp.get_context("spawn"),
                                            initializer=_pool_init, initargs=(evaluator,))

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Yield (task, result) as each finishes."""
        import concurrent.futures as cf

        futs = {self._pool.submit(_pool_run, t, self.threads, self.retries): t for t in tasks}
        for f in cf.as_completed(futs):
            yield futs[f], f.result()

    def close(self) -> None:
        """Shut the worker processes down."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ray_run(evaluator: Evaluator, task: Task, threads: int, retries: int) -> dict[str, Any]:
    return run_task(evaluator, task, threads, retries)


class RayExecutor:
    """Runs each task as a Ray task on a Ray cluster; results stream back as they finish."""

    name = "ray"

    def __init__(self, evaluator: Evaluator, *, address: str | None = None, threads: int = 1,
                 retries: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 max_retries: int = 2):
        try:
            import ray
        except ModuleNotFoundError as err:
            raise ExecutorError("--executor ray needs the 'ray' package: pip install "
                                "'ray[default]' (or snnc[search])") from err
        self.ray = ray
        self._owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ExecutorError(f"cannot connect to a Ray cluster at {address!r}: {err}. "
                                    "Start one with `ray start --head` or pass --address "
                                    "HOST:PORT of a running cluster.") from err
            self._owns = True
        self.threads, self.retries = threads, retries
        self._ref = ray.put(evaluator)
        self._fn = ray.remote(_ray_run).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                max_retries=max_retries)

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Submit every task, yield (task, result) as each finishes."""
        ray = self.ray
        pending = {self._fn.remote(self._ref, t, self.threads, self.retries): t for t in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - worker died after its retries
                    res = {"status": "failed", "error": f"ray task failed: {err}",
                           "attempts": 0, "wall_s": 0.0}
                yield task, res

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (the cluster keeps running)."""
        if self._owns:
            self.ray.shutdown()


def make_executor(kind: str, evaluator: Evaluator, *, workers: int = 1, threads: int = 1,
                  retries: int = 0, address: str | None = None, num_cpus: float = 1.0,
                  num_gpus: float = 0.0):
    """An executor by name: ``local`` (in-process when workers == 1, else a process pool) or
    ``ray``."""
    if kind == "local":
        if workers <= 1:
            return LocalExecutor(evaluator, threads=threads, retries=retries)
        return ProcessPoolExecutor(evaluator, workers=workers, threads=threads, retries=retries)
    if kind == "ray":
        return RayExecutor(evaluator, address=address, threads=threads, retries=retries,
                           num_cpus=num_cpus, num_gpus=num_gpus)
    raise ExecutorError(f"unknown executor {kind!r}; use 'local' or 'ray'")
