"""Training throughput and peak memory: snnc against SpikingJelly, snnTorch and the ANN.

Every row trains the same network: paper 2's S-ResNet20 (16 base filters, 3x32x32 input,
T = 8, batch 32, leak 0.874, threshold 1, S2S residuals, direct input, readout u_T / T), with
SGD on one batch of random uniform images, all built from the same seeded ANN
(`snnc.models.sresnet.resnet20`, seed 0: the peers copy its conv, BN and linear tensors).
Each row runs in a fresh subprocess, so each peak is clean (peak RSS growth from just before the
first step, model and batch built; on CUDA, peak allocated memory above the start).

Rows and the implementation each uses (the fastest idiomatic form its users would write):

* snnc `--bn bntt` (the default), `--bn shared`, `--bn fold`: `compile(...).to_torch()`.
* SpikingJelly 2.0, multi-step (`step_mode="m"`, `layer.Conv2d`, `neuron.LIFNode` with
  `decay_input=False, v_reset=None`: the paper's neuron). Its built-in surrogate
  `PiecewiseQuadratic(alpha=1)` (a triangle, max(0, 1 - |x|)) is used because only built-in
  surrogates reach SpikingJelly's registered LIF op (`torch.ops.sj_lif`, Triton/CuPy on CUDA); a
  Python surrogate such as the paper's 0.3-high triangle falls back to its slower reference loop.
  The surrogate's height changes gradients, not the work done.
  * `sj-bntt` (against `--bn bntt`): BNTT written as ONE `nn.BatchNorm2d(T * C)` over the
    input viewed as [B, T*C, H, W]. SpikingJelly's own `BatchNormThroughTime2d` runs a Python
    loop of T BatchNorms (and has no bias); the T*C form computes the same per-step statistics
    in one call and is what a user who cares about speed writes.
  * `sj-shared` (against `--bn shared`): `layer.BatchNorm2d(C, step_mode="m")`, one BN over
    all T*B samples, as SpikingJelly's converted and tutorial networks train.
* snnTorch 1.0: the idiomatic per-step loop, `Leaky(reset_mechanism="subtract",
  reset_delay=False)`, BNTT as a list of T BatchNorms indexed by the step, the paper's
  triangle surrogate as an autograd function.
* `ann`: the ANN itself on the same batch; ANN samples/s / T is the dense bound, what an SNN
  would reach doing the ANN's work at every step and nothing else.

    .venv/bin/python benchmarks/bench_train.py                  # 2 threads and 1 thread
    .venv/bin/python benchmarks/bench_train.py --threads 2 --rounds 3 --only snnc-bntt sj-bntt
    .venv/bin/python benchmarks/bench_train.py --device cuda    # SpikingJelly picks Triton/CuPy

Targets (issue 13): snnc >= 1.25x SpikingJelly in both BN comparisons, `--bn bntt` within 10 %
of `--bn shared`, peak memory <= 0.5x the best peer's (stretch 0.4x).

Measuring on a shared machine: every row runs `--rounds` times, interleaved (A B C ..., then
... C B A, each row at every thread count in turn), so load from other processes falls on all
rows alike; within a run, throughput is the batch over the median step time (one step slowed
by a burst of load moves it by nothing); each figure is the median over the rounds, and each ratio is the ratio of medians
with the spread of the per-round ratios. Samples per CPU-second (the process's CPU time, all its
threads) is printed beside wall samples/s: it counts the work a row does, which a loaded
machine disturbs far less than the wall clock. The load average is printed per run.

Memory: "peak RSS" is the growth of the process's peak resident set over the training steps,
what the operating system sees; it includes freed memory that glibc's heap keeps. "Live peak" is
the same measured in a separate run of one training step with
`MALLOC_MMAP_THRESHOLD_=131072`: every block over 128 KiB is then mmapped and returned when
freed, so the peak is that of memory actually in use (tensors, oneDNN buffers), for every
framework alike. That run is slower, so it is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

T, BATCH, LEAK, VTH = 8, 32, 0.874, 1.0
TAU = 1.0 / (1.0 - LEAK)  # SpikingJelly: v <- v (1 - 1/tau) + x  (decay_input=False)
ROWS = ("snnc-bntt", "snnc-shared", "snnc-fold", "sj-bntt", "sj-shared", "snntorch", "ann")
PAIRS = (("snnc-bntt", "sj-bntt"), ("snnc-shared", "sj-shared"), ("snnc-fold", "sj-shared"),
         ("snnc-bntt", "snntorch"))
PEERS = ("sj-bntt", "sj-shared", "snntorch")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _ann():
    import torch

    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    return resnet20(base=16, in_channels=3, num_classes=10)


def _copy_from_ann(net, bns) -> None:
    """Copy the seeded ANN's conv, BN and linear tensors into `net`, in construction order.

    `bns` are the peer's BN modules in that order; a BN with k * C channels (BNTT) gets the
    ANN's tensors repeated k times."""
    import torch.nn as nn

    ann = _ann()
    pairs = [(nn.Conv2d, [m for m in net.modules() if isinstance(m, nn.Conv2d)]),
             (nn.Linear, [m for m in net.modules() if isinstance(m, nn.Linear)])]
    for kind, mine in pairs:
        theirs = [m for m in ann.modules() if isinstance(m, kind)]
        assert len(mine) == len(theirs), (kind, len(mine), len(theirs))
        for a, b in zip(mine, theirs):
            a.weight.data.copy_(b.weight.data)
            if b.bias is not None:
                a.bias.data.copy_(b.bias.data)
    ann_bns = [m for m in ann.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == len(ann_bns), (len(bns), len(ann_bns))
    for mine, src in zip(bns, ann_bns):
        for group in (mine if isinstance(mine, (list, nn.ModuleList)) else [mine]):
            k = group.num_features // src.num_features
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(group, name).data.copy_(getattr(src, name).data.repeat(k))


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
def build_snnc(bn: str):
    from snnc.compiler import compile

    c = compile(_ann(), residual="s2s", timesteps=T, leak=LEAK, threshold=VTH, bn=bn,
                encoder="direct")
    return c.to_torch(), lambda m, x: m(x)


# -- SpikingJelly (multi-step) ------------------------------------------------------------------
def build_spikingjelly(bn: str):
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    class TCBatchNorm(nn.BatchNorm2d):
        """BNTT as one BatchNorm2d over T*C channels: [T, B, C, H, W] -> [B, T*C, H, W]."""

        def __init__(self, c):
            super().__init__(T * c)

        def forward(self, x):
            t, b, c, h, w = x.shape
            y = super().forward(x.transpose(0, 1).reshape(b, t * c, h, w))
            return y.view(b, t, c, h, w).transpose(0, 1)

    bns = []

    def norm(c):
        m = TCBatchNorm(c) if bn == "bntt" else layer.BatchNorm2d(c, step_mode="m")
        bns.append(m)
        return m

    def lif():
        return neuron.LIFNode(tau=TAU, decay_input=False, v_threshold=VTH, v_reset=None,
                              surrogate_function=surrogate.PiecewiseQuadratic(alpha=1.0),
                              step_mode="m")

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = layer.Conv2d(cin, cout, 3, stride, 1, bias=False, step_mode="m")
            self.b1, self.l1 = norm(cout), lif()
            self.c2 = layer.Conv2d(cout, cout, 3, 1, 1, bias=False, step_mode="m")
            self.b2, self.l2 = norm(cout), lif()
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(
                    layer.Conv2d(cin, cout, 1, stride, bias=False, step_mode="m"), norm(cout))

        def forward(self, x):
            o = self.l2(self.b2(self.c2(self.l1(self.b1(self.c1(x))))))
            return o + (x if self.proj is None else self.proj(x))  # S2S, eq. 10 / 13

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = layer.Conv2d(3, 16, 3, 1, 1, bias=False, step_mode="m")
            self.b, self.l = norm(16), lif()
            blocks, cin = [], 16
            for cout, s in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    blocks.append(Block(cin, cout, s if i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = layer.Linear(64, 10, step_mode="m")

        def forward(self, x):
            x = x.unsqueeze(0).repeat(T, 1, 1, 1, 1)  # direct input, SpikingJelly's idiom
            x = self.blocks(self.l(self.b(self.c(x))))
            return self.fc(x.mean((3, 4))).mean(0)

    net = Net()
    _copy_from_ann(net, bns)

    def step(m, x):
        out = m(x)
        functional.reset_net(m)
        return out

    return net, step


# -- snnTorch (single-step loop, the idiomatic form) --------------------------------------------
def build_snntorch(bn: str):
    import snntorch as snn
    import torch.nn as nn
    from snntorch import utils

    Tri = _tri()
    bns = []

    def lif():
        return snn.Leaky(beta=LEAK, threshold=VTH, reset_mechanism="subtract",
                         reset_delay=False, spike_grad=Tri.apply, init_hidden=True)

    def bntt(c):
        m = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(T))
        bns.append(m)
        return m

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1, self.l1 = bntt(cout), lif()
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2, self.l2 = bntt(cout), lif()
            self.pc = self.pb = None
            if stride != 1 or cin != cout:
                self.pc = nn.Conv2d(cin, cout, 1, stride, bias=False)
                self.pb = bntt(cout)

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

    net = Net()
    _copy_from_ann(net, bns)
    return net, lambda m, x: m(x)


def build_ann(bn: str):
    return _ann(), lambda m, x: m(x)


def build(name: str):
    """(model, forward) for row `name`."""
    if name.startswith("snnc-"):
        return build_snnc(name[5:])
    if name.startswith("sj-"):
        return build_spikingjelly(name[3:])
    return {"snntorch": build_snntorch, "ann": build_ann}[name]("bntt")


def run_one(name: str, steps: int, warmup: int, threads: int, device: str) -> dict:
    """Train row `name` for warmup + steps SGD steps; time the last `steps`."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    cuda = device == "cuda"
    model, fwd = build(name)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2 ** 20
    else:
        base = _rss_mb()
    walls, cpus = [], []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        loss = F.cross_entropy(fwd(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the median step, not the mean: one step slowed by another process's burst (a shared
    # 2-core machine) then moves the figure by nothing instead of by 1/steps of the burst
    return {"row": name, "threads": threads, "samples_per_s": BATCH / _median(walls),
            "samples_per_cpu_s": BATCH / _median(cpus), "peak_growth_mb": peak - base,
            "step_s": walls, "loss": loss.item()}


LIVE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # every block > 128 KiB mmapped, freed at once


def _child(name: str, a, threads: int, live: bool = False) -> dict | None:
    """Row `name` in a fresh process; `live`: one short run with glibc's heap retention off."""
    steps, warmup = (1, 0) if live else (a.steps, a.warmup)
    cmd = [sys.executable, __file__, "--child", name, "--steps", str(steps), "--warmup",
           str(warmup), "--device", a.device, "--threads", str(threads)]
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if a.omp_wait:
        env["OMP_WAIT_POLICY"] = a.omp_wait
    if live:
        env.update(LIVE_ENV)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    if out.returncode:
        print(f"{name} ({threads} thread(s)): failed\n{out.stderr[-2000:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(v: list[float]) -> float:
    return statistics.median(v) if v else float("nan")


def _summary(runs: list[dict], live: dict | None) -> dict:
    """Medians over the rounds of one row; the live peak from its separate run."""
    out = {"row": runs[0]["row"], "n": len(runs)}
    for key in ("samples_per_s", "samples_per_cpu_s", "peak_growth_mb"):
        out[key] = _median([r[key] for r in runs])
        out[key + "_all"] = [r[key] for r in runs]
    out["live_mb"] = live["peak_growth_mb"] if live else float("nan")
    return out


def _ratio(rows, a: str, b: str, key: str) -> str:
    """Ratio of medians, with the spread of the per-round ratios (rows run next to each other)."""
    ra, rb = rows[a], rows[b]
    per = [x / y for x, y in zip(ra[key + "_all"], rb[key + "_all"])]
    spread = f" [rounds {min(per):.2f}-{max(per):.2f}]" if len(per) > 1 else ""
    return f"x{ra[key] / rb[key]:.2f}{spread}"


def _report(rows: dict[str, dict], threads: int, rounds: int, device: str) -> None:
    live = not device == "cuda"
    print(f"\nS-ResNet20 S2S, T={T}, batch {BATCH}, {device}, {threads} thread(s), median of "
          f"{rounds} interleaved round(s)")
    ann = rows.get("ann")
    print("| row | samples/s | samples/CPU-s | peak RSS MB | live peak MB | of dense bound "
          "(wall, CPU) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ROWS:
        r = rows.get(name)
        if r is None:
            continue
        frac = ""
        if ann and name != "ann":
            frac = (f"{T * r['samples_per_s'] / ann['samples_per_s']:.2f}, "
                    f"{T * r['samples_per_cpu_s'] / ann['samples_per_cpu_s']:.2f}")
        extra = f" ({r['samples_per_s'] / T:.1f} /T)" if name == "ann" else ""
        cpu_extra = f" ({r['samples_per_cpu_s'] / T:.1f} /T)" if name == "ann" else ""
        print(f"| {name} | {r['samples_per_s']:.1f}{extra} | {r['samples_per_cpu_s']:.1f}"
              f"{cpu_extra} | {r['peak_growth_mb']:.0f} | {r['live_mb']:.0f} | {frac} |")
    for a, b in PAIRS:
        if a in rows and b in rows:
            print(f"{a} / {b}: samples/s {_ratio(rows, a, b, 'samples_per_s')}, per CPU-s "
                  f"{_ratio(rows, a, b, 'samples_per_cpu_s')}, peak RSS "
                  f"x{rows[a]['peak_growth_mb'] / rows[b]['peak_growth_mb']:.2f}")
    if "snnc-bntt" in rows and "snnc-shared" in rows:
        print(f"snnc-bntt / snnc-shared: samples/s "
              f"{_ratio(rows, 'snnc-bntt', 'snnc-shared', 'samples_per_s')}, per CPU-s "
              f"{_ratio(rows, 'snnc-bntt', 'snnc-shared', 'samples_per_cpu_s')} "
              f"(target >= 0.90)")
    peers = [rows[p] for p in PEERS if p in rows]
    if peers:
        keys = [("peak_growth_mb", "peak RSS")] + ([("live_mb", "live peak")] if live else [])
        for key, label in keys:
            best = min(peers, key=lambda r: r[key])
            for name in ("snnc-bntt", "snnc-shared", "snnc-fold"):
                if name in rows:
                    print(f"{name} {label} / best peer's ({best['row']}): "
                          f"x{rows[name][key] / best[key]:.2f} (target <= 0.5, stretch 0.4)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[2, 1],
                    help="thread counts, comma-separated (default 2,1: 2 is the headline)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds (A B C ... then ... C B A); figures are medians")
    ap.add_argument("--only", nargs="+", choices=ROWS, help="run only these rows")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--no-live", action="store_true",
                    help="skip the live-memory run (CPU: one more short run per row and thread "
                         "count with glibc's heap retention switched off)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per row and thread count")
    ap.add_argument("--omp-wait", choices=("active", "passive"), default=None,
                    help="OMP_WAIT_POLICY for every row (default: the environment's). On a "
                         "loaded, shared machine spinning OpenMP threads waste their time "
                         "slices; passive makes 2-thread figures comparable again")
    ap.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_one(a.child, a.steps, a.warmup, a.threads[0], a.device)))
        return
    names = list(a.only or ROWS)
    runs: dict[int, dict[str, list[dict]]] = {t: {n: [] for n in names} for t in a.threads}
    print(f"load average before: {os.getloadavg()}; OMP_WAIT_POLICY="
          f"{a.omp_wait or os.environ.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    for rnd in range(a.rounds):
        for name in (names if rnd % 2 == 0 else names[::-1]):  # A B C, C B A, ...
            for threads in a.threads:
                r = _child(name, a, threads)
                if r is None:
                    continue
                print(f"round {rnd + 1} {name} {threads}t: {r['samples_per_s']:.1f} samples/s, "
                      f"{r['samples_per_cpu_s']:.1f} per CPU-s, {r['peak_growth_mb']:.0f} MB "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                runs[threads][name].append(r)
    live: dict[int, dict[str, dict]] = {t: {} for t in a.threads}
    if a.device == "cpu" and not a.no_live:
        for name in names:
            for threads in a.threads:
                r = _child(name, a, threads, live=True)
                if r is not None:
                    live[threads][name] = r
                    print(f"live {name} {threads}t: {r['peak_growth_mb']:.0f} MB", flush=True)
    print(f"load average after: {os.getloadavg()}")
    for threads in a.threads:
        rows = {n: _summary(rs, live[threads].get(n)) for n, rs in runs[threads].items() if rs}
        _report(rows, threads, a.rounds, a.device)


if __name__ == "__main__":
    main()
