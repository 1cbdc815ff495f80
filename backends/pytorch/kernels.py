"""The fused C LIF kernel (lif_kernel.c): built on first use with the system C compiler.

The shared library goes to ``$SNNC_KERNEL_CACHE`` (default ~/.cache/snnc/kernels), named by a
hash of the source, and is loaded with ctypes: no torch headers, so the build takes well under a
second. Without a compiler, or with ``SNNC_NO_KERNEL=1``, :func:`kernel` returns None and the
backend runs the pure-torch loop in neuron.py, which gives the same spikes bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_SRC = Path(__file__).with_name("lif_kernel.c")
_LIB: ctypes.CDLL | None | bool = False  # False = not tried yet
SURROGATE_IDS = {"triangle": 0, "fast_sigmoid": 1, "arctan": 2}


def _build() -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None or os.environ.get("SNNC_NO_KERNEL"):
        return None
    src = _SRC.read_bytes()
    flags = _cpu_flags()
    tag = hashlib.sha256(src + cc.encode() + flags.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SNNC_KERNEL_CACHE", Path.home() / ".cache" / "snnc" / "kernels"))
    lib = cache / f"lif_{tag}.so"
    if not lib.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".so")
        os.close(fd)
        cmd = [cc, "-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math",
               *(["-march=native"] if flags else []), str(_SRC), "-o", tmp, "-lm"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            os.unlink(tmp)
            return None
        os.replace(tmp, lib)
    dll = ctypes.CDLL(str(lib))
    p, i64, f32, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
    dll.lif_forward.argtypes = [p, i64, i64, i64, f32, f32, i32, i32, p, p, p, p, p]
    dll.lif_backward.argtypes = [p, p, p, p, i64, i64, f32, f32, i32, i32, i32, f32, f32, i32, p,
                                 p]
    return dll


def _cpu_flags() -> str:
    """This CPU's feature flags (the library is built with -march=native and cached per CPU)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def kernel() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when it cannot be built (then torch is used)."""
    global _LIB
    if _LIB is False:
        try:
            _LIB = _build()
        except OSError:
            _LIB = None
    return _LIB
