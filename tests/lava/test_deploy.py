"""Standard CIFAR ResNets deploy to Loihi 2 with default options (docs/lava.md "Deployable
default", "Relays"): `snnc compile --target loihi2` trains batch norm folded into the
quantised weights (or folds it before training with --bn fold), lowers the stride-2
projection shortcuts of S2S and V2V through graded relays (backends/relay.py) and the global
average pool into a pooled readout, and Lava's fixed-point simulator equals the PyTorch
backend's target-exact model on every spike bit of every lif layer and on the readout.

Three inputs, T = 16, integer-valued direct input (the default encoder on loihi2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnc.backends import lava
from snnc.backends.pytorch import build_module
from snnc.compiler.api import compile as snnc_compile
from tests import cvnets

T = 16
SHAPE = (2, 8, 8)


def _reference(g, x: np.ndarray):
    """PyTorch target-exact forward of one direct-encoded image (C, H, W): every lif's
    (T, ...) spikes and the readout."""
    mod = build_module(g).eval()
    spikes: dict = {}
    hooks = [layer.register_forward_hook(
        lambda m, i, o, name=name: spikes.__setitem__(name, o[:, 0].detach().numpy()))
        for name, layer in mod.layers.items() if type(layer).__name__ == "LIF"]
    with torch.no_grad():
        y = mod(torch.from_numpy(x[None]))
    for h in hooks:
        h.remove()
    return spikes, y[0].numpy()


def _parity(g, tmp_path, n=3, seed=0):
    from snnc.backends.lava.sim import Session

    path = lava.export(g, tmp_path)
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 3, (n, *SHAPE)).astype(np.float32)
    fired = 0
    with Session(path, SHAPE, probe_all=True) as sim:
        lifs = {layer.name for layer in sim.plan.layers if layer.op == "lif"}
        for x in xs:
            ref, y = _reference(g, x)
            got = sim.run(np.repeat(x[None], T, 0))
            assert set(got["spikes"]) == lifs == set(ref)
            for name, s in got["spikes"].items():
                np.testing.assert_array_equal(s, ref[name], err_msg=f"layer {name}")
                fired += int(s.sum())
            (v,) = got["voltage"].values()
            np.testing.assert_array_equal(v, y * T)
            last = max(sim.plan.index(n) for n in lifs)
            assert got["spikes"][sim.plan.layers[last].name].sum() > 0, "input never reached"
    assert fired > 0
    return lava.read(path)


@pytest.mark.parametrize("residual,bn", [("s2s", "auto"), ("v2v", "auto"), ("s2m", "auto"),
                                         ("s2s", "fold")])
def test_resnet_cifar_default_options(tmp_path, residual, bn):
    """The loihi2 default (`--bn shared`: every BN kept, trained folded QAT-style into its
    conv, ops.Weighted.fold_bn) and `--bn fold` (folded before training)."""
    torch.manual_seed(0)
    m = cvnets.init_bn(cvnets.CIFARResNet((4, 8, 8), blocks=3, cin=2))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.5)
    c = snnc_compile(m, residual=residual, target="loihi2", timesteps=T, bn=bn,
                     example_input=torch.zeros(1, *SHAPE))
    assert not c.graph.by_op("bntt")
    if bn == "auto":  # the loihi2 default: one BN per conv, shared over time, trained folded
        assert c.options.bn == "shared" and len(c.graph.by_op("batchnorm")) == 21
        mod = build_module(c.graph)
        assert sum(getattr(la, "folded", False) for la in mod.layers.values()) == 21
    else:
        assert c.options.bn == "fold" and not c.graph.by_op("batchnorm")
    # as after training: float parameters off the Loihi grids (each backend rounds every op's
    # weights and bias itself; sums of biases must add rounded values)
    gen = torch.Generator().manual_seed(1)
    g = c.graph.with_params({k: v + 0.004 * torch.randn(v.shape, generator=gen)
                             for k, v in c.graph.params.items()})
    plan = _parity(g, tmp_path)
    ops = [layer.op for layer in plan.layers]
    if residual in ("s2s", "v2v"):  # two stride-2 projections, each through a relay
        assert ops.count("relay") == 2
    readout = plan.layers[-1]
    assert readout.readout and readout.scale == 4  # 2x2 map summed, not averaged


@pytest.mark.parametrize("net", ["preresnet", "densenet"])
def test_pre_activation_default_options(tmp_path, net):
    """Pre-activation nets (BN-ReLU-conv; skips and concatenations carry conv outputs):
    each unfolded BN reads a relay of the current sum (docs/lava.md "Relays"). No add is
    followed by a neuron, so S2S, S2M and V2V give the same network (checked) and one Lava run
    covers the three modes."""
    torch.manual_seed(0)
    m = (cvnets.PreResNet((4, 8, 8), blocks=3, cin=2) if net == "preresnet"
         else cvnets.DenseNet(init=8, growth=4, units=(3, 3), cin=2, bottleneck=False))
    m = cvnets.init_bn(m)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.5)
    graphs = {r: snnc_compile(m, residual=r, target="loihi2", timesteps=T,
                              example_input=torch.zeros(1, *SHAPE)).graph
              for r in ("s2s", "s2m", "v2v")}
    plans = [lava.lower(g) for g in graphs.values()]
    sig = [[(la.name, la.op, [(s.src, s.kind, s.weight.tobytes()) for s in la.synapses])
            for la in p.layers] for p in plans]
    assert sig[0] == sig[1] == sig[2]  # (edges record fallback=no-neuron-after-add)
    plan = _parity(graphs["s2s"], tmp_path)
    assert [layer.op for layer in plan.layers].count("relay") >= 6
