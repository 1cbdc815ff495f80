"""Lava's Loihi 2 simulator vs the PyTorch backend, target-exact loihi2: every spiking layer's
spikes equal bit for bit, and the readout's accumulated membrane equals T times its output.

What this verifies is Lava's bit-accurate CPU simulator (Loihi2SimCfg(select_tag="fixed_pt")),
not silicon. Residual timing follows docs/design.md: one synaptic delay per layer, so a skip over n
layers arrives n - 1 steps early (the PyTorch backend replicates it).
"""

from __future__ import annotations

import numpy as np
import pytest

from snnc.backends import lava
from tests.lava import nets

SAMPLES = 3


def _parity(g, tmp_path, n=SAMPLES, seed=0):
    from snnc.backends.lava.sim import Session

    path = lava.export(g, tmp_path)
    xs = nets.events(n, seed)
    bits = total = 0
    with Session(path, nets.SHAPE, probe_all=True) as sim:
        lifs = [layer for layer in sim.plan.layers if layer.op == "lif"]
        assert len(sim.net.sinks) == len(lifs)  # every lif layer is probed
        for x in xs:
            ref, y = nets.torch_reference(g, x)
            got = sim.run(x)
            assert set(got["spikes"]) <= set(ref)
            for name, s in got["spikes"].items():
                np.testing.assert_array_equal(s, ref[name], err_msg=f"layer {name}")
                bits += s.size
                total += int(s.sum())
            (v,) = got["voltage"].values()
            np.testing.assert_array_equal(v, y * nets.T)
    assert total > 0, "no layer spiked: the comparison would be vacuous"
    return path, bits


def test_sequential_conv_netx_layout(tmp_path):
    g = nets.compile_net(nets.SeqConv())
    path, bits = _parity(g, tmp_path)
    plan = lava.read(path)
    assert plan.sequential and [layer.kind for layer in plan.layers[1:]] == [
        "conv", "conv", "conv", "dense"]  # the pool is a depthwise conv layer
    pool = plan.layers[3].synapses[0]
    assert pool.conv["groups"] == 6 and np.all(pool.weight == 16)  # 1/4 x 64
    assert bits > 0


@pytest.mark.parametrize("residual,kinds", [
    ("s2m", {"s2m"}),  # paper 2 eq. 7: W' = U_th synapse into the membrane
    ("s2s", {"s2s"}),  # eq. 12/14: the consumer's weights on a second synapse
    ("v2v", {"v2v"}),  # eq. 15-16: copy of layer l-n's input synapse
])
def test_residual(tmp_path, residual, kinds):
    g = nets.compile_net(nets.Residual(), residual=residual)
    assert g.attrs["residual"] == residual
    path, _ = _parity(g, tmp_path)
    plan = lava.read(path)
    assert not plan.sequential
    extra = {s.kind for layer in plan.layers for s in layer.synapses if s.kind != "main"}
    assert extra == kinds


def test_dsc_concat(tmp_path):
    g = nets.compile_net(nets.Dense())
    path, _ = _parity(g, tmp_path)
    plan = lava.read(path)
    c3 = plan.layers[plan.index("relu_2")]
    assert [s.kind for s in c3.synapses] == ["main", "concat"]
    assert [s.src for s in c3.synapses] == [2, 1]  # [main input, skip source] (docs/ir.md)
