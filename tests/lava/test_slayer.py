"""The slayer network (lava-dl's training model) built from a sequential plan equals the
PyTorch backend's target-exact forward: every spiking layer's spikes bit for bit and the
readout exactly, with biases; and it trains (gradients reach the weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnc.backends import lava
from snnc.compiler.errors import UnsupportedOp
from tests.lava import nets


def test_slayer_forward_equals_target_exact(tmp_path):
    from snnc.backends.lava.slayer import build

    g = nets.compile_net(nets.SeqConv(bias=True))
    net = build(lava.export(g, tmp_path)).eval()
    spikes = {}
    for i, block in enumerate(net.blocks[:-1], start=1):
        block.register_forward_hook(
            lambda m, inp, out, name=net.plan.layers[i].name: spikes.__setitem__(name, out))
    total = 0
    for x in nets.events(3, seed=4):
        ref, y = nets.torch_reference(g, x)
        with torch.no_grad():
            out = net(torch.from_numpy(np.moveaxis(x, 0, -1)[None]))
        assert len(spikes) == 3
        for name, s in spikes.items():  # (1, ..., T) -> (T, ...)
            got = np.moveaxis(s[0].numpy(), -1, 0).reshape(ref[name].shape)
            np.testing.assert_array_equal(got, ref[name], err_msg=f"layer {name}")
            total += int(got.sum())
        np.testing.assert_array_equal(out[0].numpy(), y)
    assert total > 0 and np.abs(y).sum() > 0


def test_slayer_network_trains_and_refuses_skips(tmp_path):
    from snnc.backends.lava.slayer import build

    net = build(lava.export(nets.compile_net(nets.SeqConv(bias=True)), tmp_path / "a"))
    x = torch.from_numpy(np.moveaxis(nets.events(4, seed=1), 1, -1).copy())
    loss = torch.nn.functional.cross_entropy(net(x), torch.arange(4))
    loss.backward()
    assert all(b.synapse.weight.grad is not None for b in net.blocks)
    assert net.blocks[0].synapse.weight.grad.abs().sum() > 0
    with pytest.raises(UnsupportedOp, match="sequential plans only"):
        build(lava.export(nets.compile_net(nets.Residual(), residual="s2s"), tmp_path / "b"))
