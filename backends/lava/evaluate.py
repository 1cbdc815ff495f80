"""Run a compiled network in Lava's Loihi 2 simulator on data and compare it with the PyTorch
backend (docs/lava.md "Evaluating in the simulator"). Needs .venv-lava (Python 3.10).

    from snnc.backends.lava.evaluate import evaluate
    r = evaluate("model.snnc", data="digits-events", limit=300)
    # r["agree"]: fraction of predictions equal; r["acc_lava"], r["acc_torch"], timings

    .venv-lava/bin/python -m snnc.backends.lava.evaluate model.snnc --data digits-events
    snnc eval model.snnc --data digits-events --backend lava     # from the main environment

`snnc eval --backend lava` runs this module in the Lava environment found by `lava_python()`.

The simulator is slow (hundreds to thousands of times the batched PyTorch model per sample),
so the run first times the build and one sample and prints the estimated remaining time
before it goes on, with a progress bar. What runs is Lava's bit-accurate CPU simulator, not silicon.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snnc.compiler.core.errors import SnncError


SETUP = "scripts/setup-lava.sh"  # builds .venv-lava beside the checkout (docs/lava.md)
_HAS_LAVA = ("import importlib.util as u, sys; "
             "sys.exit(0 if u.find_spec('lava') and u.find_spec('snnc') else 3)")


def lava_python() -> str:
    """The Python of the Lava environment (3.10 with lava-dl and snnc), looked up in this order
    (docs/lava.md "Evaluating in the simulator"): `$SNNC_LAVA_PYTHON`; the running interpreter
    when it is one (Python 3.10 that finds lava); `$SNNC_LAVA_VENV/bin/python`; `.venv-lava/
    bin/python` beside the checkout (where scripts/setup-lava.sh builds it). Raises SnncError
    (exit 2) naming what was tried and the setup command when none has lava."""
    env = os.environ.get("SNNC_LAVA_PYTHON")
    if env:
        cands = [("SNNC_LAVA_PYTHON", env)]
    else:
        if sys.version_info[:2] == (3, 10) and importlib.util.find_spec("lava") is not None:
            return sys.executable
        root = Path(__file__).resolve().parents[2]
        cands = ([("SNNC_LAVA_VENV", str(Path(os.environ["SNNC_LAVA_VENV"]) / "bin" / "python"))]
                 if os.environ.get("SNNC_LAVA_VENV") else [])
        cands.append(("the checkout", str(root / ".venv-lava" / "bin" / "python")))
    tried = []
    for where, py in cands:
        if not Path(py).is_file():
            tried.append(f"{py} ({where}): not found")
            continue
        rc = subprocess.run([py, "-c", _HAS_LAVA], capture_output=True).returncode
        if rc == 0:
            return py
        tried.append(f"{py} ({where}): cannot import lava and snnc")
    raise SnncError("the Lava backend needs its own Python 3.10 environment with lava-dl 0.6.0 "
                    "and snnc (lava-nc does not import on Python >= 3.11); tried "
                    + "; ".join(tried) + f". Build it with {SETUP} (creates .venv-lava beside "
                    "the checkout), or set SNNC_LAVA_PYTHON=/path/to/.venv-lava/bin/python.")


def run_in_lava_env(argv: list[str]) -> int:
    """Run `python -m snnc.backends.lava.evaluate ARGV` in the Lava environment
    (`lava_python()`); its output (estimate, progress bar, result) streams through. Returns
    its exit code."""
    py = lava_python()
    return subprocess.run([py, "-m", "snnc.backends.lava.evaluate", *argv]).returncode


def _frames(x: np.ndarray, T: int, encoder: str) -> np.ndarray:
    """One sample as the (T, ...) integer frames the Lava input receives."""
    if encoder == "events":
        return x
    if encoder != "direct":
        raise SnncError(f"encoder '{encoder}': the Lava evaluation takes event frames or "
                        f"integer direct input (Poisson draws differ between the backends)")
    return np.repeat(x[None], T, 0)


def evaluate(directory: str | Path, *, data="digits-events", split: str = "test",
             limit: int | None = 100, progress: bool = True, out=sys.stderr) -> dict:
    """PyTorch target-exact vs Lava's simulator on `limit` samples of `data` for the compiled
    (or trained) directory. Returns samples, T, acc_torch / acc_lava (when labelled), agree
    (fraction of equal predictions), max_readout_diff, s_per_sample_torch / _lava (after the
    build), build_s, slowdown,
    and saturated (samples whose readout left Loihi's range, docs/lava.md "Readout range")."""
    import torch

    from snnc.backends import lava
    from snnc.backends.lava.sim import Session, readouts
    from snnc.backends.pytorch.io import load_graph, load_module
    from snnc.data import load_dataset

    g, _ = load_graph(directory)
    module = load_module(directory).eval()
    T = module.timesteps
    enc = next((n.attrs.get("kind", "direct") for n in g.by_op("encoder")), "direct")
    ds = load_dataset(data, split, limit=limit, timesteps=T)
    x = ds.x.numpy()
    labels = ds.y.numpy() if ds.y is not None else None
    t0 = time.perf_counter()
    with torch.no_grad():
        batch = ds.x.transpose(0, 1).contiguous() if enc == "events" else ds.x
        y_torch = module(batch).numpy()
    t_torch = (time.perf_counter() - t0) / len(x)
    frames = [_frames(s, T, enc) for s in x]
    with tempfile.TemporaryDirectory() as tmp:  # the directory itself is left unchanged
        path = lava.export(g, tmp)
        t0 = time.perf_counter()
        with Session(path, tuple(frames[0].shape[1:])) as sim:
            first = readouts(sim, frames[:1])  # builds and compiles the process graph
            t_build = time.perf_counter() - t0
            t1 = time.perf_counter()
            if len(frames) > 1:
                first = np.concatenate([first, readouts(sim, frames[1:2])])
            each = (time.perf_counter() - t1) / max(1, len(frames[1:2]))
            if progress:
                left = each * max(0, len(frames) - 2)
                print(f"Lava simulator: {len(frames)} samples, T = {T}; build + first sample "
                      f"{t_build:.1f} s, then {each:.2f} s/sample ({each / t_torch:.0f}x the "
                      f"PyTorch model's {t_torch * 1e3:.2f} ms/sample): estimated "
                      f"{left / 60:.1f} min more", file=out, flush=True)
            bar = None
            if progress and len(frames) > 2:
                from tqdm import tqdm

                bar = tqdm(total=len(frames) - 2, desc="lava", unit="sample", file=out)
            rest = (readouts(sim, frames[2:], (lambda i: bar.update(1)) if bar else None)
                    if len(frames) > 2 else np.zeros((0, first.shape[1])))
            if bar:
                bar.close()
        t_lava = (time.perf_counter() - t1) / max(1, len(frames) - 1)  # after the build
    y_lava = np.concatenate([first, rest]) if len(rest) else first
    p_t, p_l = y_torch.argmax(1), y_lava.argmax(1)
    r = {"samples": len(frames), "timesteps": T, "agree": float((p_t == p_l).mean()),
         "max_readout_diff": float(np.abs(y_torch - y_lava).max()),
         "s_per_sample_torch": t_torch, "s_per_sample_lava": t_lava, "build_s": t_build,
         "slowdown": t_lava / t_torch, "saturated": int(module.saturated)}
    if labels is not None:
        r["acc_torch"] = float((p_t == labels).mean())
        r["acc_lava"] = float((p_l == labels).mean())
    return r


def main(argv=None) -> int:
    """`python -m snnc.backends.lava.evaluate DIR --data NAME [--keys K] [--layout L] [--mean M
    --std S] [--limit N] [--json]` (the data options as `snnc eval`'s)."""
    from snnc.data.options import spec_from

    ap = argparse.ArgumentParser(prog="python -m snnc.backends.lava.evaluate",
                                 description="Lava simulator vs the PyTorch model on data.")
    ap.add_argument("directory")
    ap.add_argument("--data", default="digits-events")
    ap.add_argument("--keys", default=None)
    ap.add_argument("--layout", default=None)
    ap.add_argument("--mean", default=None)
    ap.add_argument("--std", default=None)
    ap.add_argument("--split", default="test", choices=("train", "test"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        data = spec_from(a.data, a.keys, a.layout, a.mean, a.std)
        # lava prints notices on import ("Prophesee Dataset Toolbox could not be found"):
        # stdout carries only the result (--json pipes into other tools)
        with contextlib.redirect_stdout(sys.stderr):
            r = evaluate(a.directory, data=data, split=a.split, limit=a.limit)
    except SnncError as err:
        print(f"snnc: error: {err}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(r))
    else:
        acc = (f", accuracy PyTorch {r['acc_torch']:.4f} / Lava {r['acc_lava']:.4f}"
               if "acc_lava" in r else "")
        print(f"{r['samples']} samples, T = {r['timesteps']}: predictions equal "
              f"{100 * r['agree']:.1f} %{acc}, max |readout difference| "
              f"{r['max_readout_diff']:.3g}; Lava {r['s_per_sample_lava']:.2f} s/sample "
              f"({r['slowdown']:.0f}x PyTorch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
