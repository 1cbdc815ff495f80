"""Does a network trained in target-exact mode keep its accuracy in Lava's Loihi 2 simulator?

    .venv-lava/bin/python benchmarks/lava_accuracy.py [--epochs 4] [--samples 300] [-T 16]

1. A small conv net (tests/lava/nets.py DigitsNet: conv-conv-avgpool-linear, with biases,
   PyTorch's default initialisation times 3 so that the untrained SNN fires) is
   exported to ONNX by torch and compiled with
   `snnc compile net.onnx --target loihi2 --encoder events -T 16 --no-bntt` (target-exact).
2. `snnc train DIR --data digits --epochs N --lr 0.01` trains it with BPTT on event frames
   of the 8x8 digits (`digits-events`: simulated saccades, integer ON/OFF counts per
   frame; results on it are labelled simulated). The event counts are the input encoding
   on both sides: the Lava input synapses carry them as graded integer messages (binary
   spikes are the message 1).
3. The trained graph is exported with `snnc.backends.lava.export` (HDF5) and the held-back
   test samples (digits test split, never trained on) run through one Lava `Session`
   (Loihi2SimCfg fixed_pt, CPU, T + 1 steps each).

Prints the PyTorch target-exact accuracy, the sample count, and for Lava with snnc's
protocol (`bias_start=1`, which the PyTorch backend models) and with biases from the cold
start (`bias_start=0`): the accuracy, the agreement of the predictions and the largest
readout difference. What runs is Lava's bit-accurate CPU
simulator, not Loihi 2 silicon."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's tests/, first
from snnc.backends import lava  # noqa: E402
from snnc.backends.lava.sim import Session, readouts  # noqa: E402
from snnc.backends.pytorch.io import load_graph, load_module  # noqa: E402
from snnc.data import load_dataset  # noqa: E402
from tests.lava import nets  # noqa: E402


def compare(trained_dir: Path, samples: int, progress: bool = False,
            bias_starts=(1, 0)) -> dict:
    """PyTorch target-exact vs Lava on the first `samples` digits test samples, for each
    `Session(bias_start=...)` in `bias_starts` (1: snnc's protocol, biases from the first
    input step; 0: biases from the cold start; docs/lava.md "Timing")."""
    g, _ = load_graph(trained_dir)
    module = load_module(trained_dir).eval()
    T = module.timesteps
    ds = load_dataset("digits-events", "test", limit=samples, timesteps=T)  # [N, T, 2, 8, 8]
    t0 = time.perf_counter()
    with torch.no_grad():
        y_torch = module(ds.x.transpose(0, 1).contiguous()).numpy()
    t_torch = time.perf_counter() - t0
    path = lava.export(g, trained_dir / "lava")
    labels = ds.y.numpy()
    p_torch = y_torch.argmax(1)
    r = {"samples": len(ds), "timesteps": T, "path": path,
         "acc_torch": float((p_torch == labels).mean()), "s_per_sample_torch": t_torch / len(ds)}
    for bias_start in bias_starts:
        t0 = time.perf_counter()
        with Session(path, tuple(ds.x.shape[2:]), bias_start=bias_start) as sim:
            step = (lambda i: print(f"  lava bias_start={bias_start}: {i + 1}/{len(ds)}",
                                    flush=True) if (i + 1) % 100 == 0 else None) \
                if progress else None
            y_lava = readouts(sim, ds.x.numpy(), step)
        p_lava = y_lava.argmax(1)
        r[bias_start] = {"acc_lava": float((p_lava == labels).mean()),
                         "agree": float((p_torch == p_lava).mean()),
                         "max_readout_diff": float(np.abs(y_torch - y_lava).max()),
                         "s_per_sample_lava": (time.perf_counter() - t0) / len(ds)}
    return r


def main() -> None:
    """Compile, train, export, simulate; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=300, help="held-back test samples (<= 360)")
    ap.add_argument("-T", "--timesteps", type=int, default=16)
    ap.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        d = nets.compile_and_train(out, args.timesteps, args.epochs)
        t_train = time.perf_counter() - t0
        r = compare(d, args.samples, progress=True)
    print(f"\ntrained {args.epochs} epochs on digits-events (1437 samples, T={r['timesteps']}) "
          f"in {t_train:.0f} s; held-back test samples: {r['samples']}")
    print(f"accuracy PyTorch target-exact : {r['acc_torch']:.4f}")
    for b in (1, 0):
        q = r[b]
        print(f"Lava simulator, bias_start={b} : accuracy {q['acc_lava']:.4f}, prediction "
              f"agreement {q['agree']:.4f}, max |readout torch - lava| "
              f"{q['max_readout_diff']:.3g}, {q['s_per_sample_lava']:.3f} s/sample "
              f"({q['s_per_sample_lava'] / r['s_per_sample_torch']:.0f}x torch's "
              f"{r['s_per_sample_torch'] * 1e3:.2f} ms)")

if __name__ == "__main__":
    main()
