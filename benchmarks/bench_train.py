"""Training throughput and peak memory: snnc's module vs SpikingJelly and snnTorch.

Paper 2's S-ResNet20 (16 base filters, 3x32x32 input, T = 8, batch 32, leak 0.874, threshold 1,
S2S residuals, BNTT, direct encoding, triangle surrogate, readout u_T / T), trained with SGD
for a fixed number of steps on random data in each framework. Each framework runs in a fresh
subprocess, so each peak is clean: peak RSS growth from just before the first step (model and
batch built) to the end. Prints samples/s, peak memory and the ratios against the peers.

    .venv/bin/python benchmarks/bench_train.py [--steps 6] [--warmup 2] [--threads 1]

Targets (issue 3): throughput >= 1.25x SpikingJelly's, peak memory <= 0.5x the best peer's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

T, BATCH, LEAK, VTH, TAU = 8, 32, 0.874, 1.0, 1.0 / (1.0 - 0.874)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tri():
    import torch

    class Tri(torch.autograd.Function):  # paper 2 eq. 24 on x = u - theta
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 0.3 * (1 - x.abs()).clamp(min=0)

    return Tri


# -- snnc ---------------------------------------------------------------------------------------
def build_snnc():
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    c = compile(resnet20(base=16, in_channels=3, num_classes=10), residual="s2s", timesteps=T,
                leak=LEAK, threshold=VTH)
    return c.to_torch(), lambda m, x: m(x)


# -- SpikingJelly (multi-step) ------------------------------------------------------------------
def build_spikingjelly():
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron

    Tri = _tri()

    class Sur(nn.Module):
        def forward(self, x):
            return Tri.apply(x)

    class BNTT(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bn = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(T))

        def forward(self, x):
            return torch.stack([self.bn[t](x[t]) for t in range(T)])

    def lif():
        return neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=VTH, v_reset=None,
                              surrogate_function=Sur(), step_mode="m")

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = layer.Conv2d(cin, cout, 3, stride, 1, bias=False, step_mode="m")
            self.b1, self.l1 = BNTT(cout), lif()
            self.c2 = layer.Conv2d(cout, cout, 3, 1, 1, bias=False, step_mode="m")
            self.b2, self.l2 = BNTT(cout), lif()
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(
                    layer.Conv2d(cin, cout, 1, stride, bias=False, step_mode="m"), BNTT(cout))

        def forward(self, x):
            o = self.l2(self.b2(self.c2(self.l1(self.b1(self.c1(x))))))
            return o + (x if self.proj is None else self.proj(x))  # S2S, eq. 10 / 13

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = layer.Conv2d(3, 16, 3, 1, 1, bias=False, step_mode="m")
            self.b, self.l = BNTT(16), lif()
            blocks, cin = [], 16
            for cout, s in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    blocks.append(Block(cin, cout, s if i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = x.unsqueeze(0).repeat(T, 1, 1, 1, 1)
            x = self.blocks(self.l(self.b(self.c(x))))
            return self.fc(x.mean((3, 4))).mean(0)

    def step(m, x):
        out = m(x)
        functional.reset_net(m)
        return out

    return Net(), step


# -- snnTorch (single-step loop, the idiomatic form) --------------------------------------------
def build_snntorch():
    import snntorch as snn
    import torch.nn as nn
    from snntorch import utils

    Tri = _tri()

    def lif():
        return snn.Leaky(beta=LEAK, threshold=VTH, reset_mechanism="subtract",
                         reset_delay=False, spike_grad=Tri.apply, init_hidden=True)

    def bntt(c):
        return nn.ModuleList(nn.BatchNorm2d(c) for _ in range(T))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1, self.l1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), \
                bntt(cout), lif()
            self.c2, self.b2, self.l2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), \
                bntt(cout), lif()
            self.pc = nn.Conv2d(cin, cout, 1, stride, bias=False) \
                if stride != 1 or cin != cout else None
            self.pb = bntt(cout) if self.pc is not None else None

        def forward(self, x, t):
            o = self.l2(self.b2[t](self.c2(self.l1(self.b1[t](self.c1(x))))))
            return o + (x if self.pc is None else self.pb[t](self.pc(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.b, self.l = nn.Conv2d(3, 16, 3, 1, 1, bias=False), bntt(16), lif()
            self.blocks, cin = nn.ModuleList(), 16
            for cout, s in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    self.blocks.append(Block(cin, cout, s if i == 0 else 1))
                    cin = cout
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            utils.reset(self)
            acc = 0
            for t in range(T):
                h = self.l(self.b[t](self.c(x)))
                for blk in self.blocks:
                    h = blk(h, t)
                acc = acc + self.fc(h.mean((2, 3)))
            return acc / T

    return Net(), lambda m, x: m(x)


BUILDERS = {"snnc": build_snnc, "spikingjelly": build_spikingjelly, "snntorch": build_snntorch}


def run_one(name: str, steps: int, warmup: int, threads: int) -> dict:
    """Train `name`'s S-ResNet20 for warmup + steps SGD steps; time the last `steps`."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, fwd = BUILDERS[name]()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.rand(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))
    base = _rss_mb()
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss = F.cross_entropy(fwd(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"framework": name, "samples_per_s": steps * BATCH / dt, "peak_rss_mb": peak,
            "peak_growth_mb": peak - base, "loss": float(loss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2,
                    help="interleaved rounds per framework; the best of each is kept (the "
                         "machine is shared, so the best round is the least disturbed one)")
    ap.add_argument("--only", choices=sorted(BUILDERS))
    ap.add_argument("--json", action="store_true", help="(internal) print one result as JSON")
    a = ap.parse_args()
    if a.only and a.json:
        print(json.dumps(run_one(a.only, a.steps, a.warmup, a.threads)))
        return
    results: dict[str, dict] = {}
    for _ in range(a.rounds):
        for name in ([a.only] if a.only else ["snnc", "spikingjelly", "snntorch"]):
            out = subprocess.run([sys.executable, __file__, "--only", name, "--json", "--steps",
                                  str(a.steps), "--warmup", str(a.warmup), "--threads",
                                  str(a.threads)], capture_output=True, text=True)
            if out.returncode:
                print(f"{name}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            best = results.setdefault(name, r)
            best["samples_per_s"] = max(best["samples_per_s"], r["samples_per_s"])
            best["peak_rss_mb"] = min(best["peak_rss_mb"], r["peak_rss_mb"])
            best["peak_growth_mb"] = min(best["peak_growth_mb"], r["peak_growth_mb"])
    print(f"S-ResNet20 S2S, T={T}, batch {BATCH}, {a.steps} timed steps, {a.threads} thread(s), "
          f"best of {a.rounds} round(s)")
    print(f"{'framework':14s} {'samples/s':>10s} {'peak RSS MB':>12s} {'growth MB':>10s}")
    for r in results.values():
        print(f"{r['framework']:14s} {r['samples_per_s']:10.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['peak_growth_mb']:10.0f}")
    if "snnc" in results and len(results) > 1:
        s = results["snnc"]
        peers = [r for k, r in results.items() if k != "snnc"]
        best = min(peers, key=lambda r: r["peak_growth_mb"])
        for r in peers:
            speed = s["samples_per_s"] / r["samples_per_s"]
            mem = s["peak_growth_mb"] / r["peak_growth_mb"]
            print(f"snnc / {r['framework']}: throughput x{speed:.2f}, peak growth x{mem:.2f}")
        if "spikingjelly" in results:
            sj = results["spikingjelly"]["samples_per_s"]
            print(f"target throughput >= 1.25x SpikingJelly: x{s['samples_per_s'] / sj:.2f}")
        print(f"target memory <= 0.5x best peer ({best['framework']}): "
              f"x{s['peak_growth_mb'] / best['peak_growth_mb']:.2f}")


if __name__ == "__main__":
    main()
