"""The NIR route (`--target nir`, docs/lava.md "NIR"): training and export agree by
construction. A net with a 3x5 kernel and 2x2 pool neurons (whose membranes land exactly on
the threshold when all four inputs spike), trained briefly, exports to NIR; snnTorch's and
SpikingJelly's importers reproduce snnc's readout within 1e-6 and every prediction. Pre-
activation and dense nets (unfolded BN as Affine / 1x1 conv, concats as placements) and a
resnet20_cifar10-style net export too; loihi2 nets are refused, suggesting --target nir."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("nir")
pytest.importorskip("snntorch")

import nir  # noqa: E402

from snnc.backends import nir as snir  # noqa: E402
from snnc.backends.pytorch import build_module  # noqa: E402
from snnc.compiler.api import compile as snnc_compile  # noqa: E402
from tests import cvnets  # noqa: E402

T = 8
TOL = 1e-6


class PoolNet(nn.Module):
    """conv 3x5 - lif - 2x2 average pool - lif (pool neurons) - linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, (3, 5), padding=(1, 2))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.pool(torch.relu(self.c1(x)))).flatten(1))


def _trained():
    from snnc.data import load_dataset

    torch.manual_seed(0)
    m = PoolNet().eval()
    with torch.no_grad():
        m.c1.weight.mul_(3.0)
    c = snnc_compile(m, target="nir", timesteps=T, example_input=torch.zeros(1, 1, 8, 8))
    mod = build_module(c.graph).train()
    ds = load_dataset("digits", "train", limit=256)
    opt = torch.optim.Adam(mod.parameters(), lr=0.01)
    for i in range(0, 256, 32):
        loss = nn.functional.cross_entropy(mod(ds.x[i:i + 32]), ds.y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mod.eval().to_graph(), load_dataset("digits", "test", limit=32).x


def _run(make, x):
    """A fresh importer network per sample (`make()`; batch 1: NIR's Flatten has no batch
    axis, and the importers keep state between calls), the mean of its output over T steps
    (snnc's readout)."""
    res = []
    with torch.no_grad():
        for xi in x:
            net, outs, state = make(), [], None
            for _ in range(T):
                o, state = net(xi[None], state)
                outs.append(o.reshape(1, -1))
            res.append(torch.stack(outs).mean(0))
    return torch.cat(res)


def _importers(path):
    from snntorch.import_nir import import_from_nir as snntorch_import
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir as sj_import

    graph = nir.read(str(path))
    return {"snntorch": lambda: snntorch_import(graph), "spikingjelly": lambda: sj_import(graph)}


def test_trained_pool_net_3x5_agrees_with_snntorch_and_spikingjelly(tmp_path):
    g, x = _trained()
    assert g.attrs["target"] == "nir" and int(g.attrs.get("synaptic_delay", 0)) == 0
    with torch.no_grad():
        y = build_module(g).eval()(x)
    path = snir.export(g, tmp_path / "pool.nir")
    conv = nir.read(str(path)).nodes["c1"]
    assert conv.weight.shape[2:] == (5, 5) and np.all(conv.weight[:, :, [0, 4]] == 0)
    for name, make in _importers(path).items():
        got = _run(make, x)
        assert torch.max(torch.abs(got - y)) <= TOL, name
        assert torch.equal(got.argmax(1), y.argmax(1)), name
    # the pool neurons do sit on the threshold: with v_threshold = θ itself SpikingJelly
    # (v >= θ) would fire where snnc (v > θ) does not
    mod = build_module(g).eval()
    pooled = {}
    mod.layers["relu_1"].register_forward_hook(lambda m, i, o: pooled.update(i=i[0][0]))
    with torch.no_grad():
        mod(x)
    assert bool((pooled["i"] == 1.0).any())


@pytest.mark.parametrize("net", ["resnet", "preresnet", "densenet"])
def test_cifar_style_nets_export_on_the_nir_route(tmp_path, net):
    torch.manual_seed(0)
    m = {"resnet": lambda: cvnets.CIFARResNet((4, 8, 8), blocks=3, cin=2),
         "preresnet": lambda: cvnets.PreResNet((4, 8, 8), blocks=3, cin=2),
         "densenet": lambda: cvnets.DenseNet(units=(3, 3), cin=2, bottleneck=False)}[net]()
    m = cvnets.init_bn(m)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.5)
    c = snnc_compile(m, target="nir", timesteps=T, example_input=torch.zeros(1, 2, 8, 8))
    x = torch.rand(4, 2, 8, 8)
    with torch.no_grad():
        y = build_module(c.graph).eval()(x)
    path = snir.export(c.graph, tmp_path / f"{net}.nir")
    from snntorch.import_nir import import_from_nir

    graph = nir.read(str(path))
    got = _run(lambda: import_from_nir(graph), x)
    assert torch.max(torch.abs(got - y)) <= 1e-5 * max(1.0, float(y.abs().max()))


def test_loihi2_net_refused_with_target_nir_suggested(tmp_path, capsys):
    from snnc.compiler.cli import main

    torch.onnx.export(PoolNet().eval(), (torch.zeros(1, 1, 8, 8),), str(tmp_path / "p.onnx"),
                      dynamo=False)
    rc = main(["compile", str(tmp_path / "p.onnx"), "-o", str(tmp_path / "o"), "--target",
               "loihi2", "--no-cost", "--emit", "nir"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--target nir" in err and "(op lif)" in err
