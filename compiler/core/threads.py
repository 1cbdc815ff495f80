"""Helper threads beside the interpreter's: the switch interval while they need the GIL.

The importer reads weights on helper threads (compiler/frontends/onnx_wire.py) and the cost
model tests them for zeros on one (costmodel/zeros.py); each calls numpy or the OS with the
GIL released and then needs it back, briefly, while this thread runs Python.
"""

from __future__ import annotations

import contextlib
import sys
import threading

# While a helper thread runs, the interpreter's switch interval is lowered to this (s). A
# thread that waits for the GIL asks the running one to give it up only after the interval
# (5 ms by default); the ONNX reader's weight thread waits for it twice (after its read,
# after its test),
# mostly while the main thread runs onnx's checks in C++, which hold the GIL throughout: with
# the default it then waited until `PendingSplit.wait()` (densenet121: the main thread waited
# ~2 ms there for a test that could have run meanwhile).
SWITCH_INTERVAL = 1e-4
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005


@contextlib.contextmanager
def prompt_switches():
    """Within this block, the interpreter's switch interval is at most SWITCH_INTERVAL; the
    previous one is put back when the last of the (possibly concurrent) blocks ends. Nothing
    changes while no other thread waits for the GIL."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if not _switch_users:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(SWITCH_INTERVAL, _switch_saved))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if not _switch_users:
                sys.setswitchinterval(_switch_saved)
