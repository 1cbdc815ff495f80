"""Currents that cross a graded relay on loihi2 (backends/relay.py: floor to RELAY_STEP = 1/2)
get a unit that survives the floor (docs/passes.md "Conversion", "Target semantics"): a
pre-activation net's residual stream in ANN units was floored to 0 or -1/2, and the relayed BN's
per-channel scale rounded to a few steps of its fixed 8-bit grid, so the output did not depend
on the input."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnc.backends.pytorch.neuron import WEIGHT_GRID
from snnc.backends.relay import RELAY_STEP, folded_bn, is_relay_edge
from snnc.compiler import compile


class PreAct(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.b1, self.c1 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)
        self.b2, self.c2 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.c2(F.relu(self.b2(self.c1(F.relu(self.b1(x))))))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_relayed_currents_span_many_relay_steps_and_the_output_follows_the_input():
    torch.manual_seed(0)
    model = PreAct().eval()
    for bn in (model.b1, model.b2, model.bn):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.rand(64, 1, 8, 8)
    c = compile(model, example_input=x[:1], leak=1.0, normalize=x, target="loihi2",
                residual="s2m", timesteps=16, calibrate_rates=0, calibrate_bias=0)
    g = c.graph
    relayed = {e.value_src for e in g.edges if is_relay_edge(g, e)}
    assert relayed  # the BNs read the residual stream through relays
    m = c.to_torch().eval()
    seen = {}

    def observe(n, ins, out):
        if n.name in relayed:
            seen[n.name] = out.detach()
    m.observer = observe
    with torch.no_grad():
        y = m(x)
    for name, v in seen.items():
        # the floor to 1/2 loses little: the values span many relay steps
        big = v.abs().flatten().kthvalue(int(0.99 * v.numel())).values
        assert float(big) > 50 * RELAY_STEP, (name, float(big))
    for bn in g.by_op("batchnorm"):  # its quantised per-channel scales are not rounded away
        if folded_bn(g, bn.name) is not None:
            continue  # a BN after a conv (loihi2 default --bn shared): folded, not relayed
        scale, _ = m.layers[bn.name].affine()
        assert int((scale != 0).sum()) == len(scale)
        assert float(scale.abs().max()) >= 4 * WEIGHT_GRID[0]  # at least 4 grid steps
    assert float(y.std(0).mean()) > 1e-3  # the output depends on the input


def test_the_classifier_keeps_loihi2s_readout_in_range():
    """The readout's membrane holds k T logits (k pooled positions; backends/relay.py) and
    resets above READOUT_CEILING: the normalised classifier's unit keeps it within half of it."""
    torch.manual_seed(0)
    model = PreAct().eval()
    with torch.no_grad():
        model.fc.weight.mul_(4.0)  # logits of several units
    x = torch.rand(32, 1, 8, 8)
    c = compile(model, example_input=x[:1], leak=1.0, normalize=x, target="loihi2",
                residual="s2m", timesteps=128, calibrate_rates=0, calibrate_bias=0)
    m = c.to_torch().eval()
    with torch.no_grad():
        m(x)
    assert m.saturated == 0
