"""The readout is modelled, not assumed (docs/lava.md "Readout range"): Lava's readout neuron
fires and resets above ~2048 and saturates at -2048; the PyTorch target-exact model does the
same and warns (ReadoutSaturation), so a confident net at T = 128 predicts alike in both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnc.backends import lava
from snnc.backends.pytorch import build_module
from snnc.backends.pytorch.module import ReadoutSaturation
from snnc.compiler.api import compile as snnc_compile
from tests.lava import nets

T = 128


def _confident():
    torch.manual_seed(0)
    m = nets.SeqConv().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.0)
        m.fc.weight[:5].fill_(3.5)  # classes 0-4: large positive logits, growing with T
        m.fc.weight[5:].fill_(-3.5)  # classes 5-9: large negative ones
        m.fc.bias.fill_(0.5)
    return m


def test_confident_readout_t128_matches_lava(tmp_path):
    from snnc.backends.lava.sim import Session

    c = snnc_compile(_confident(), target="loihi2", timesteps=T, encoder="events",
                     example_input=torch.zeros(1, *nets.SHAPE))
    rng = np.random.default_rng(0)
    xs = (rng.random((3, T, *nets.SHAPE)) < 0.3).astype(np.float32)
    mod = build_module(c.graph).eval()
    with pytest.warns(ReadoutSaturation, match="left Loihi 2's range"):
        with torch.no_grad():
            y = mod(torch.from_numpy(xs).transpose(0, 1)).numpy()
    assert mod.saturated == 3
    plain = build_module(c.graph).eval()
    plain._readout_scale = {}  # the unmodelled readout (plain sum) for comparison
    with torch.no_grad():
        y0 = plain(torch.from_numpy(xs).transpose(0, 1)).numpy()
    assert np.any(y0 > 2048 / T) and np.any(y0 < -2048 / T)  # it would saturate ...
    assert not np.array_equal(y, y0)  # ... and the model differs from the plain sum
    path = lava.export(c.graph, tmp_path)
    with Session(path, nets.SHAPE) as sim:
        for x, yi in zip(xs, y):
            (v,) = sim.run(x)["voltage"].values()
            np.testing.assert_array_equal(v, yi * T)
