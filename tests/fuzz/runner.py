"""Run mutated ONNX files through snnc in capped worker processes and classify each outcome.

A worker (`python -m tests.fuzz.runner --worker`) runs with an address-space cap
(`resource.setrlimit(RLIMIT_AS)`, 6 GiB by default) and takes one file path per line; for each
it compiles the file (T=2), prices it (cost model) and runs the module forward on one sample,
then answers one JSON line. The parent restarts a worker that dies or exceeds the per-file
timeout. Outcomes:

- ``refused``: an SnncError (a clean refusal; its message must start with the file's path and
  stay short, else ``bad_message``);
- ``accepted``: compiled, priced, and the module's forward ran (``forward_refused``: the
  forward raised an SnncError, which `compile` is meant to rule out: a problem);
- ``crash``: any other exception (with its signature: type and innermost snnc frame), or a
  forward that raised;
- ``blowup``: MemoryError / an allocator failure under the cap, or the worker killed;
- ``hang``: no answer within the timeout.

For accepted files onnxruntime is asked too: ``ort_rejects`` counts files snnc accepted that
onnxruntime refuses to load or run; ``ort_differs`` those whose imported (ANN-form) graph does
not compute what onnxruntime computes (the tolerance of `snnc inspect --check`); ``ort_skipped``
those whose input (e.g. a fixed batch of 2**40) is too large for onnxruntime to be run on.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MESSAGE_LINES = 14


def _signature(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if "/snnc" in f.filename or "/.snncpath/" in f.filename
           or str(ROOT) in f.filename]
    f = (own or frames or [None])[-1]
    where = f"{Path(f.filename).name}:{f.lineno}" if f else "?"
    return f"{type(err).__name__} at {where}"


def _ort_ok(path: str, shape) -> bool:
    try:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        s.run(None, {s.get_inputs()[0].name: x})
        return True
    except Exception:
        return False


def _same_as_ort(ann, path: str, shape) -> bool:
    """The ANN-form IR interpreted on a seeded input matches onnxruntime on the file (the
    tolerance of `snnc inspect --check`, docs/frontends.md)."""
    import torch

    from snnc.compiler.compare import check_equivalence

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    try:
        return check_equivalence(ann, path, x).ok
    except Exception:
        return False


def check_one(path: str, timesteps: int = 2) -> dict:
    """Compile, price and run `path`; the outcome as a dict (see the module docstring)."""
    import torch

    from snnc.compiler import compile
    from snnc.compiler.core.errors import SnncError

    out: dict = {"path": path}
    try:
        c = compile(path, timesteps=timesteps)
        c.cost()
    except SnncError as err:
        msg = str(err)
        ok = msg.startswith(f"{path}: ") and len(msg.splitlines()) <= MAX_MESSAGE_LINES
        out.update(outcome="refused" if ok else "bad_message", error=type(err).__name__,
                   message=msg[:400])
        return out
    except MemoryError as err:
        out.update(outcome="blowup", error=_signature(err))
        return out
    except Exception as err:
        kind = "blowup" if "can't allocate memory" in str(err) else "crash"
        out.update(outcome=kind, error=_signature(err), message=str(err)[:300])
        return out
    shape = c.ann.input_nodes()[0].shape
    try:
        x = torch.randn(1, *shape[1:], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            y = c.to_torch()(x)
        out.update(outcome="accepted", output=list(y.shape))
    except SnncError as err:
        out.update(outcome="forward_refused", error=type(err).__name__, message=str(err)[:300])
    except MemoryError as err:
        out.update(outcome="blowup", error="forward " + _signature(err))
    except Exception as err:
        out.update(outcome="crash", error="forward " + _signature(err), message=str(err)[:300])
    if out["outcome"] == "accepted":
        import math

        if math.prod(shape) > 1 << 20:  # e.g. a fixed batch of 2**40: onnxruntime needs it all
            out["ort_skipped"] = True
        elif not _ort_ok(path, shape):
            out["ort_rejects"] = True
        elif not _same_as_ort(c.ann, path, shape):
            out["ort_differs"] = True
    return out


def _worker() -> None:
    import torch

    torch.set_num_threads(1)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints go to stderr, the protocol keeps its own pipe
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            result = check_one(path)
        except BaseException as err:  # pragma: no cover - reported as a crash
            result = {"path": path, "outcome": "crash", "error": _signature(err)}
        proto.write(json.dumps(result) + "\n")


class Worker:
    """One capped worker process; `run(path, timeout)` -> outcome dict."""

    def __init__(self, cap_bytes: int, pythonpath: str | None = None):
        self.cap = cap_bytes
        self.pythonpath = pythonpath  # put another snnc checkout first (baseline runs)
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        cap = self.cap

        def limit():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            os.nice(5)

        path = os.pathsep.join(p for p in (self.pythonpath, str(ROOT)) if p)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        env.pop("SNNC_MAX_MEMORY", None)  # the default limit: half of what the cap leaves
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.runner", "--worker"], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, preexec_fn=limit)

    def run(self, path: Path, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        t0 = time.monotonic()
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died(path, t0)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            return {"path": str(path), "outcome": "hang", "seconds": timeout}
        line = self.proc.stdout.readline()
        if not line:
            return self._died(path, t0)
        out = json.loads(line)
        out["seconds"] = round(time.monotonic() - t0, 3)
        return out

    def _died(self, path: Path, t0: float) -> dict:
        code = self.proc.wait()
        self.proc = None
        kind = "blowup" if code in (-9, 137) else "crash"
        return {"path": str(path), "outcome": kind, "error": f"worker exit {code}",
                "seconds": round(time.monotonic() - t0, 3)}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def run_many(paths: list[Path], *, workers: int = 2, cap_bytes: int = 6 << 30,
             timeout: float = 60.0, progress=None, pythonpath: str | None = None
             ) -> list[dict]:
    """Outcomes of `paths` (in order) from `workers` capped worker processes."""
    import queue
    import threading

    todo: queue.Queue = queue.Queue()
    for i, p in enumerate(paths):
        todo.put((i, p))
    results: list[dict | None] = [None] * len(paths)

    def loop():
        w = Worker(cap_bytes, pythonpath)
        try:
            while True:
                try:
                    i, p = todo.get_nowait()
                except queue.Empty:
                    return
                results[i] = w.run(p, timeout)
                if progress:
                    progress(results[i])
        finally:
            w.close()

    threads = [threading.Thread(target=loop) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results  # type: ignore[return-value]


def summary(results: list[dict]) -> dict:
    """Counts per outcome, crash signatures, files onnxruntime rejects that snnc accepted."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    sigs: dict[str, int] = {}
    for r in results:
        if r["outcome"] in ("crash", "blowup", "hang", "bad_message", "forward_refused"):
            key = f"{r['outcome']}: {r.get('error', '')}"
            sigs[key] = sigs.get(key, 0) + 1
    return {"files": len(results), "counts": counts, "signatures": sigs,
            "ort_rejects_accepted": sum(1 for r in results if r.get("ort_rejects")),
            "ort_skipped": sum(1 for r in results if r.get("ort_skipped")),
            "ort_differs": sum(1 for r in results if r.get("ort_differs"))}


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker()
