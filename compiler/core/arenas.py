"""Weight arenas: buffers an importer allocated to hold many weights at once.

Both ONNX readers (compiler/frontends/onnx_wire.py) read a file's weights into one
64-byte-aligned buffer, each tensor a view of it (densenet121: its 121 conv/linear weights,
BN parameters and biases, 32 MB in one array). `hold` records such a buffer, weakly: the
entry lives as long as the buffer does, that is as long as any tensor viewing it. `arena_of`
finds the live buffer holding a given array's memory, so that code reading many weights can
read them through the buffer with a few numpy calls instead of one or two per tensor (the
cost model's zero-weight test, costmodel/zeros.py). An arena records where weights lie,
nothing about their values: whatever reads through one reads the memory as it is then.
"""

from __future__ import annotations

import bisect
import threading
import weakref

import numpy as np

_lock = threading.Lock()
_arenas: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # address -> buffer
_starts: list[int] = []  # the live addresses of _arenas, sorted (refreshed by `hold`)


def owner(a: np.ndarray) -> np.ndarray:
    """The array owning `a`'s memory (numpy collapses a view's base onto it), or for memory
    that numpy does not own (a bytes or bytearray object) the first array over it."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def hold(block: np.ndarray) -> None:
    """Record the buffer owning `block`'s memory as an arena for as long as it lives."""
    own = owner(block)
    if not own.nbytes or not own.flags.c_contiguous:
        return
    with _lock:
        _arenas[own.__array_interface__["data"][0]] = own
        _starts[:] = sorted(_arenas.keys())  # the freed ones' addresses dropped


def arena_of(ptr: int, nbytes: int) -> tuple[np.ndarray, int] | None:
    """(live arena, offset of address `ptr` in it) when the `nbytes` bytes at `ptr` lie inside
    one arena, else None. The caller's reference keeps the arena alive while it reads."""
    with _lock:
        i = bisect.bisect_right(_starts, ptr) - 1
        if i < 0:
            return None
        at = _starts[i]
        own = _arenas.get(at)
        if own is None or ptr + nbytes > at + own.nbytes:
            return None  # (arenas never overlap: a live buffer's memory is its own)
        return own, ptr - at
