"""Measured-mode SOPs against NeuroBench (and sinabs) per layer at full CIFAR size
(docs/costmodel.md "Two modes"): resnet20_cifar10's structure (16/32/64 channels, 3 basic
blocks per stage) under s2s, s2m and v2v, preresnet20, a DenseNet-BC (growth 12, 3 stages of 4
units) with pre- and post-activation units, and the small net trained on the digits; 32x32
inputs (digits padded, grey channel repeated), T = 4.

For every conv/linear layer: NeuroBench's Effective ACs and MACs (its own `single_layer_MACs`
on the inputs hooked from the PyTorch module) against the measured mode's `nb_ac`/`nb_mac`, and
sinabs' synops against `sinabs_synops`. Prints, per network, the layers compared, how many are
exactly equal to NeuroBench, and the largest sinabs relative difference.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/measured_vs_neurobench.py [--samples 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import cvnets  # noqa: E402
from tests.costmodel import test_measured as tm  # noqa: E402


def cases():
    torch.manual_seed(0)
    res = cvnets.init_bn(cvnets.CIFARResNet((16, 32, 64), blocks=3))
    yield "resnet20_cifar10 (s2s)", res, (3, 32, 32), "s2s"
    yield "resnet20_cifar10 (s2m)", res, (3, 32, 32), "s2m"
    yield "resnet20_cifar10 (v2v)", res, (3, 32, 32), "v2v"
    torch.manual_seed(0)
    yield "preresnet20 (s2s)", cvnets.init_bn(cvnets.PreResNet((16, 32, 64), blocks=3)), \
        (3, 32, 32), "s2s"
    torch.manual_seed(0)
    yield "densenet-BC pre-act", cvnets.init_bn(cvnets.DenseNet(24, 12, (4, 4, 4))), \
        (3, 32, 32), "s2s"
    torch.manual_seed(0)
    yield "densenet-BC post-act", cvnets.init_bn(cvnets.DenseNet(24, 12, (4, 4, 4), preact=False)), \
        (3, 32, 32), "s2s"


def compare(c, x, module=None, batch_size=2):
    from snnc.backends.pytorch import build_module
    from snnc.compiler.api import cost_report, record_activity

    g = c.graph
    rep = cost_report(g, "generic", rates=record_activity(g, x, module=module,
                                                           batch_size=batch_size))
    nb, _ = tm._reference(module if module is not None else build_module(g), x, batch_size)
    n, equal, worst, kinds = len(x), 0, 0.0, set()
    rows = [r for r in rep.rows if r.op in ("conv2d", "linear")]
    for r in rows:
        ac, mac, syn = nb[r.name]
        equal += (r.nb_ac, r.nb_mac) == (ac / n, mac / n)
        ref = syn * tm._avgpool_scale(g, r.name) / n
        worst = max(worst, abs(r.sinabs_synops - ref) / max(abs(ref), 1e-12))
        kinds.add(r.in_kind)
    return len(rows), equal, worst, kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tm.T = 4
    from snnc.backends.pytorch import build_module, train
    from snnc.backends.pytorch.activity import calibration_samples
    from snnc.compiler.api import compile as snnc_compile

    print(f"{'network':24s} {'layers':>6s} {'= NeuroBench':>12s} {'sinabs max rel':>14s}  kinds")
    for name, net, shape, res in cases():
        c = snnc_compile(net, residual=res, timesteps=4, input_shape=shape)
        x, _ = calibration_samples("digits", c.graph, args.samples)
        layers, equal, worst, kinds = compare(c, x)
        print(f"{name:24s} {layers:6d} {equal:12d} {worst:14.2e}  {', '.join(sorted(kinds))}")
    torch.manual_seed(0)
    c = snnc_compile(cvnets.SmallNet().eval(), timesteps=4, input_shape=(1, 8, 8))
    module = build_module(c.graph)
    res = train(module, data="digits", epochs=2, limit=1024, test_limit=256, batch_size=32,
                progress=False, recalibrate=0)
    x, _ = calibration_samples("digits", c.graph, args.samples)
    layers, equal, worst, kinds = compare(c, x, module=module)
    print(f"{'small net, trained':24s} {layers:6d} {equal:12d} {worst:14.2e}  "
          f"{', '.join(sorted(kinds))} (test accuracy {res.accuracy:.3g})")


if __name__ == "__main__":
    main()
