"""GPU check (docs/pytorch-backend.md "Devices"): the same training on CUDA and on the CPU.

From one seed and the same initial weights, trains a small SNN (direct encoder, BNTT, an S2M
residual) for a few Adam steps on the same digits batches on both devices and compares:

* the loss curves: every step within LOSS_TOL (relative), which float differences between
  devices allow while the trajectories stay together;
* spikes at the initial weights: the fraction of spikes that differ, paper semantics (floats:
  a membrane on the threshold may flip) below SPIKE_TOL, and on loihi2 target semantics
  (Lava's fixed-point neuron and 8-bit weights: integer arithmetic) exactly equal;
* `snnc train --device cuda` end to end (one short epoch; the directory is written).

Prints one line per check and a JSON summary; exits 1 if a check fails, 2 without a GPU.
Usage: python scripts/gpu_check.py [--steps 30] [--against cuda]   (--against cpu: dry run)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSS_TOL = 0.02    # relative difference of the loss at any step
SPIKE_TOL = 1e-3   # fraction of spikes that may differ (paper semantics, floats)


class Net(nn.Module):
    """conv-bn-relu, a residual pair, pool, linear: S2M residuals after compilation."""

    def __init__(self):
        super().__init__()
        self.c0, self.b0 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c1, self.b1 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        a = F.relu(self.b0(self.c0(x)))
        b = F.relu(self.b1(self.c1(a)) + a)
        return self.fc(F.avg_pool2d(b, 2).flatten(1))


def _module(device, **options):
    from snnc.compiler import compile as snnc_compile

    torch.manual_seed(0)
    c = snnc_compile(Net().eval(), input_shape=(1, 8, 8), timesteps=4, residual="s2m", **options)
    return c.to_torch().to(device), c


def _losses(device, steps, xs, ys):
    m, _ = _module(device)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    out = []
    m.train()
    for k in range(steps):
        x, y = xs[k].to(device), ys[k].to(device)
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def _spikes(device, x, **options):
    m, _ = _module(device, **options)
    seen = {}
    m.observer = lambda n, ins, out: seen.__setitem__(n.name, out.detach().cpu()) \
        if n.op == "lif" else None
    m.eval()
    with torch.no_grad():
        m(x.to(device))
    return seen


def _spike_diff(a, b) -> float:
    total = sum(v.numel() for v in a.values())
    return sum(int((a[k] != b[k]).sum()) for k in a) / max(total, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--against", default="cuda", help="device compared with the CPU")
    args = ap.parse_args()
    if args.against.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no CUDA GPU; nothing to check.")
        return 2
    from snnc.data import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset("digits", "train")
    g = torch.Generator().manual_seed(0)
    idx = [torch.randint(len(ds), (args.batch,), generator=g) for _ in range(args.steps)]
    xs, ys = [ds.x[i] for i in idx], [ds.y[i] for i in idx]
    res = {"torch": torch.__version__, "python": sys.version.split()[0],
           "device": torch.cuda.get_device_name(0) if args.against.startswith("cuda")
           else args.against, "steps": args.steps}
    cpu, dev = _losses("cpu", args.steps, xs, ys), _losses(args.against, args.steps, xs, ys)
    rel = [abs(a - b) / max(abs(a), 1e-6) for a, b in zip(cpu, dev)]
    res["loss_cpu"], res["loss_dev"], res["loss_max_rel_diff"] = cpu, dev, max(rel)
    ok = {"loss curves close": max(rel) <= LOSS_TOL}
    x = load_dataset("digits", "test", limit=128).x
    paper = _spike_diff(_spikes("cpu", x), _spikes(args.against, x))
    fixed = _spike_diff(_spikes("cpu", x, target="loihi2", semantics="target"),
                        _spikes(args.against, x, target="loihi2", semantics="target"))
    res["spike_diff_paper"], res["spike_diff_loihi2_fixed"] = paper, fixed
    ok["spikes (paper, floats) within tolerance"] = paper <= SPIKE_TOL
    ok["spikes (loihi2 fixed point) equal"] = fixed == 0.0
    with tempfile.TemporaryDirectory() as tmp:
        _, c = _module("cpu")
        c.save(f"{tmp}/net")
        r = subprocess.run([sys.executable, "-m", "snnc.compiler", "train", f"{tmp}/net",
                            "--data", "digits", "--epochs", "1", "--limit", "512", "--val",
                            "128", "--device", args.against], capture_output=True, text=True,
                           timeout=300)
        res["train_cli_rc"] = r.returncode
        ok["snnc train --device " + args.against] = (
            r.returncode == 0 and f"device: {args.against}" in r.stdout)
        if r.returncode:
            print(r.stdout[-2000:], r.stderr[-2000:])
    res["seconds"] = time.perf_counter() - t0
    res["checks"] = ok
    for name, good in ok.items():
        print(f"{'PASS' if good else 'FAIL'}  {name}")
    print(f"loss (cpu vs {args.against}) max relative difference {max(rel):.2e}; spikes "
          f"differing: paper {paper:.2e}, loihi2 fixed {fixed:.2e}; {res['seconds']:.0f} s")
    print(json.dumps(res))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
