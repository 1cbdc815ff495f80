"""Which layers' weights hold a zero, tested on a helper thread while the cost model counts.

`counting.nonzero_synapses` asks, for each conv/linear layer, whether its weight holds a zero
(a float network's weights usually hold none: the count is then one product, no per-tap
pass). Asked one tensor at a time, that is a read of every weight on the cost model's own
thread (densenet121: 121 tensors, 32 MB, ~2.5 ms). The weights an importer read into one
buffer (compiler/core/arenas.py: both ONNX readers do) are tested here instead, a few
megabytes of that buffer per two numpy calls (a comparison with 0 into a mask, then
`np.logical_or.reduceat` over the tensors' ranges), on a helper thread that needs the GIL
only between those calls, while `estimate` counts everything else (`counting.count_rows`
leaves the columns that read the answers to its `finish()`). `ZeroScan.no_zero` waits for
the thread where an answer is read.

An answer is the same function of the same memory as `counting._no_zero`: a value is zero
when it compares equal to 0 (-0.0 is one, NaN is not). A weight outside an arena, not
float32, not contiguous, or overlapping another listed weight is tested by `_no_zero` on
the caller's thread. Measured: docs/costmodel.md "Speed", eleventh round.
"""

from __future__ import annotations

import threading

import numpy as np

from snnc.compiler.core import arenas
from snnc.compiler.core.threads import prompt_switches

# Values compared with 0 per numpy call (a whole tensor when it alone is longer): the mask is
# at most 4 MB. Each call gives the GIL back and waits ~0.1-0.25 ms to get it again while the
# cost model's thread runs Python: 1 MB chunks (16 calls on densenet121) kept the thread
# busy 3.7-4 ms, 4 MB chunks 2.8-3.3 ms; an 8 MB mask took 15-20 ms to fault in on the first
# call in a process (fresh pages), where the 4 MB one did not delay the path.
_CHUNK = 1 << 22


class ZeroScan:
    """Answers `no_zero(name, w)` for the weights {layer name: array} given; the ones lying
    in an arena are tested by a helper thread. A context manager: on entry the thread starts
    (the interpreter's switch interval lowered meanwhile, compiler/core/threads.py), on exit
    it is joined."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self._where: dict[str, tuple[int, int]] = {}  # name -> (address, bytes) tested there
        self._answer: dict[str, bool] = {}
        jobs = _jobs(weights, self._where)
        self._thread = threading.Thread(target=self._run, args=(jobs,), daemon=True,
                                        name="snnc-zero-scan") if jobs else None
        self._switches = None

    def __enter__(self) -> ZeroScan:
        if self._thread is not None:
            self._switches = prompt_switches()
            self._switches.__enter__()
            try:
                self._thread.start()
            except RuntimeError:  # no thread to be had here: no_zero tests every weight
                self._thread = None
                self._where.clear()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._join()
        finally:
            if self._switches is not None:
                self._switches.__exit__(None, None, None)
                self._switches = None

    def _join(self) -> None:
        if self._thread is not None:
            if self._thread.ident is not None:  # started (not when used without `with`)
                self._thread.join()
            self._thread = None

    def _run(self, jobs: list) -> None:
        answer: dict[str, bool] = {}
        try:
            for data, bounds, names in jobs:
                runs = list(_runs(bounds, len(names)))
                mask = np.empty(max(hi - lo for lo, hi, _, _ in runs), dtype=bool)
                for lo, hi, first, last in runs:
                    part = np.equal(data[lo:hi], 0, out=mask[:hi - lo])
                    # cut at each tensor's start and end but the last end (reduceat's last
                    # segment runs to the end of `part`): the starts' segments are the tensors
                    zero = np.logical_or.reduceat(part, bounds[2 * first:2 * last - 1] - lo)
                    answer.update(zip(names[first:last], (~zero[::2]).tolist()))
        except Exception:  # noqa: BLE001 - e.g. MemoryError: the unanswered are tested by
            pass           # no_zero on the caller's thread
        self._answer = answer

    def no_zero(self, name: str, w: np.ndarray) -> bool:
        """Whether no value of `w` (layer `name`'s weight) is zero: the thread's answer when
        it tested this very memory, else `counting._no_zero(w)` here."""
        where = self._where.get(name)
        if where is not None and where == (w.__array_interface__["data"][0], w.nbytes):
            self._join()
            got = self._answer.get(name)
            if got is not None:
                return got
        from snnc.costmodel.counting import _no_zero

        return _no_zero(w)


def _jobs(weights: dict[str, np.ndarray], where: dict) -> list:
    """[(float32 view of an arena from its first listed tensor to its last, bounds, names)]:
    `bounds` holds each tensor's (start, end) in values from the view's start, tensor after
    tensor, ascending and disjoint; `where` gets each listed name's (address, bytes)."""
    groups: dict[int, tuple[np.ndarray, list]] = {}
    for name, w in weights.items():
        if w.dtype != np.float32 or not w.size or not w.flags.c_contiguous:
            continue
        ptr = w.__array_interface__["data"][0]
        found = arenas.arena_of(ptr, w.nbytes)
        if found is None or found[1] % 4:
            continue
        arena, offset = found
        groups.setdefault(id(arena), (arena, []))[1].append(
            (offset, offset + w.nbytes, name, ptr))
    jobs = []
    for arena, spans in groups.values():
        spans.sort()
        kept, end = [], -1
        for span in spans:  # a tensor overlapping the one before: left to the caller
            if span[0] >= end:
                kept.append(span)
                end = span[1]
        lo, hi = kept[0][0], kept[-1][1]
        data = arena.reshape(-1).view(np.uint8)[lo:hi].view(np.float32)
        bounds = np.array([b for s, e, _, _ in kept for b in ((s - lo) // 4, (e - lo) // 4)],
                          dtype=np.intp)
        for s, e, name, ptr in kept:
            where[name] = (ptr, e - s)
        jobs.append((data, bounds, [name for _, _, name, _ in kept]))
    return jobs


def _runs(bounds: np.ndarray, count: int):
    """(lo, hi, first, last): tensors first..last-1, spanning values lo..hi of the view, at
    most _CHUNK values unless one tensor alone is longer."""
    first = 0
    while first < count:
        lo = int(bounds[2 * first])
        last = first + 1
        while last < count and int(bounds[2 * last + 1]) - lo <= _CHUNK:
            last += 1
        yield lo, int(bounds[2 * last - 1]), first, last
        first = last
