"""Time of Lava export and of one simulated inference per test network (run in .venv-lava).

    .venv-lava/bin/python benchmarks/bench_lava.py [--samples 3]

Prints, per network: export time (lower + HDF5 write), simulator build+compile time, seconds
per simulated inference (T + 1 steps, Loihi2SimCfg fixed_pt, CPU), and the PyTorch backend's
time for the same sample with the ratio. What runs is Lava's simulator, not silicon."""

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
from snnc.backends.lava.sim import Session  # noqa: E402
from tests.lava import nets  # noqa: E402

NETS = [("seq-conv+pool", nets.SeqConv, "s2s"), ("residual-s2m", nets.Residual, "s2m"),
        ("residual-s2s", nets.Residual, "s2s"), ("residual-v2v", nets.Residual, "v2v"),
        ("dsc-concat", nets.Dense, "s2s")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'network':16s} {'export s':>9s} {'build s':>8s} {'sim s/inf':>10s} "
          f"{'torch s/inf':>11s} {'ratio':>7s} {'equal':>6s}")
    for label, cls, res in NETS:
        g = nets.compile_net(cls(), residual=res)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            path = lava.export(g, d)
            t_exp = time.perf_counter() - t0
            xs = nets.events(args.samples, seed=7)
            t0 = time.perf_counter()
            with Session(path, nets.SHAPE) as sim:
                sim.run(xs[0])  # compile + first run
                t_build = time.perf_counter() - t0
                sims, tors, same = [], [], True
                for x in xs:
                    t0 = time.perf_counter()
                    got = sim.run(x)
                    sims.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    ref, y = nets.torch_reference(g, x)
                    tors.append(time.perf_counter() - t0)
                    same &= all(np.array_equal(s, ref[k]) for k, s in got["spikes"].items())
                    same &= all(np.array_equal(v, y * nets.T) for v in got["voltage"].values())
        s, t = float(np.median(sims)), float(np.median(tors))
        print(f"{label:16s} {t_exp:9.3f} {t_build:8.2f} {s:10.3f} {t:11.4f} {s / t:7.0f} "
              f"{str(same):>6s}")


if __name__ == "__main__":
    main()
