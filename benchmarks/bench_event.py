"""Event-driven synapses on CPU: at which spike density does a sparse product beat the dense conv?

For each conv shape of S-ResNet20 (stages at 32x32 / 16x16 / 8x8 with 16 / 32 / 64 channels,
3x3 kernels), the forward product of binary spikes with the weights is timed three ways on
`--samples` images (T * B samples of a batch):

* `conv`: `F.conv2d` on channels-last float spikes, what snnc's backend runs (oneDNN);
* `dense mm`: the same product as one GEMM over the unfolded input [N*H*W, C*9] x [C*9, C'];
* `sparse mm`: that GEMM with the unfolded spikes as a CSR matrix (`torch.sparse.mm`),
  including building the CSR matrix from the spikes (an event list has to be made somewhere).

The unfolding itself is not timed for either GEMM, which favours the sparse side. The script
prints the times per density and the crossover: the highest density at which `sparse mm` is
faster than `conv`. It also prints the spike densities S-ResNet20 actually has (per-layer mean
firing rates of the compiled net on random uniform images, the bench_train.py network at
initialisation), to say whether event-driven products would pay there.

    .venv/bin/python benchmarks/bench_event.py [--samples 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

from _common import best_of

SHAPES = ((16, 16, 32), (32, 32, 16), (64, 64, 8))  # (C_in, C_out, H = W)
DENSITIES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def _times(cin: int, cout: int, hw: int, n: int, density: float, repeat: int):
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(n, cin, hw, hw, generator=g) < density).float()
    w = torch.randn(cout, cin, 3, 3, generator=g)
    x_cl = spikes.contiguous(memory_format=torch.channels_last)
    cols = F.unfold(spikes, 3, padding=1).transpose(1, 2).reshape(-1, cin * 9).contiguous()
    wm = w.reshape(cout, -1).t().contiguous()
    t_conv = best_of(lambda: F.conv2d(x_cl, w, padding=1), repeat)
    t_dense = best_of(lambda: cols @ wm, repeat)
    t_sparse = best_of(lambda: torch.sparse.mm(cols.to_sparse_csr(), wm), repeat)
    return t_conv, t_dense, t_sparse


def _net_densities() -> dict[str, float]:
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    net = resnet20(base=16, in_channels=3, num_classes=10)
    m = compile(net, residual="s2s", timesteps=8, encoder="direct").to_torch().train()
    m.record_rates = True
    with torch.no_grad():
        m(torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    return {k: float(v.mean()) for k, v in m.rates().items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64, help="N = T * B images per product")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    print(f"{a.samples} samples, {a.threads} thread(s); times in ms (best of {a.repeat})")
    print("| C_in -> C_out @ HxW | density | conv | dense mm | sparse mm (incl. CSR) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for cin, cout, hw in SHAPES:
        cross = None
        for d in DENSITIES:
            tc, td, ts = _times(cin, cout, hw, a.samples, d, a.repeat)
            print(f"| {cin} -> {cout} @ {hw}x{hw} | {d:.3f} | {1e3 * tc:.2f} | {1e3 * td:.2f} "
                  f"| {1e3 * ts:.2f} |")
            if ts < tc:
                cross = d
        print(f"crossover for {cin} -> {cout} @ {hw}x{hw}: "
              + (f"sparse faster up to density {cross}" if cross is not None
                 else f"sparse never faster down to density {DENSITIES[0]}"))
    rates = _net_densities()
    lo, hi = min(rates.values()), max(rates.values())
    mean = sum(rates.values()) / len(rates)
    print(f"S-ResNet20 spike densities at initialisation (random uniform images): mean "
          f"{mean:.3f}, per layer {lo:.3f} .. {hi:.3f}")


if __name__ == "__main__":
    main()
