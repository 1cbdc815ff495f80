"""Per-channel bias correction with the SNN's own neuron (docs/passes.md "Conversion",
`--calibrate-bias`; backends/pytorch/calibrate.py `calibrate_biases`, after Li et al. 2021's
bias correction and Nagel et al. 2019).

A neuron that resets to zero loses the charge above its threshold at every spike, a loss that
grows with its rate, so after the layer-wise threshold calibration some channels still fire
below the ANN's clip(a / lambda, 0, 1) and others above. Moving each channel's bias by the
rate error (times the threshold) must bring every layer's per-channel rates closer to the ANN's,
keep quantised biases on their grid, and leave the weights and thresholds alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnc.backends.pytorch import build_module
from snnc.backends.pytorch.calibrate import (_ann_values, bias_carrier, calibrate_biases,
                                             calibrate_classifier)
from snnc.compiler import compile
from tests.conversion.nets import Chain


def channel_errors(g, ann, x):
    """{lif: mean over channels of |SNN rate - ANN clip(a / lambda, 0, 1)| (second half of T)}."""
    steps = int(g.attrs["timesteps"])
    rec = {}

    def observe(node, ins, out):
        if node.op == "lif":
            rec[node.name] = out[steps // 2:].float().mean([0, 1, 3, 4])

    m = build_module(g).eval()
    m.observer = observe
    with torch.no_grad():
        m(x)
    acts = _ann_values(ann, x, set(rec))
    out = {}
    for n in g.by_op("lif"):
        want = (acts[n.name] / n.attrs["lambda"]).clamp(0, 1).mean([0, 2, 3])
        out[n.name] = float((rec[n.name] - want).abs().mean())
    return out


def _chain(**kw):
    torch.manual_seed(0)
    model = Chain().eval()
    x = torch.rand(64, 1, 16, 16)
    return compile(model, example_input=x[:1], leak=1.0, normalize=x, percentile=99.0,
                   timesteps=32, calibrate_bias=0, **kw), x


def test_bias_correction_brings_every_channel_closer_to_the_ann():
    c, x = _chain(reset="zero", calibrate_rates=3)
    assert "bias_calibration" not in c.graph.attrs
    before = channel_errors(c.graph, c.ann, x)
    g = calibrate_biases(c.graph, c.ann, x, iterations=4)
    after = channel_errors(g, c.ann, x)
    assert g.attrs["bias_calibration"] == 4
    assert len(before) == 3
    for name in before:
        assert after[name] < 0.6 * before[name], (name, before[name], after[name])
    for n in g.nodes:  # only biases move; thresholds and weights are the threshold rounds'
        assert n.attrs == c.graph.node(n.name).attrs
        if n.op in ("conv2d", "linear"):
            assert torch.equal(g.params[n.param("weight")], c.graph.params[n.param("weight")])
    assert torch.equal(g.params[g.node("fc").param("bias")],
                       c.graph.params[c.graph.node("fc").param("bias")])  # no lif after fc


class PoolFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):  # the lif reads an average pool of the conv's current
        return self.fc(torch.flatten(F.relu(F.avg_pool2d(self.c1(x), 2)), 1))


class SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(2 * 4 * 8 * 8, 3)

    def forward(self, x):  # c1's current is read by the lif and by the concat
        y = self.c1(x)
        return self.fc(torch.flatten(torch.cat([F.relu(y), y], 1), 1))


def test_bias_carrier_is_the_layer_feeding_each_lif_through_pools():
    c, _ = _chain(reset="zero", calibrate_rates=0)
    g = c.graph
    assert {n.name: bias_carrier(g, n.name) for n in g.by_op("lif")} == {
        "relu": "c1", "relu_1": "c2", "relu_2": "c3"}
    torch.manual_seed(0)
    x = torch.rand(8, 1, 16, 16)
    p = compile(PoolFirst().eval(), example_input=x[:1], leak=1.0, normalize=x, timesteps=4)
    (lif,) = p.graph.by_op("lif")
    assert p.graph.node(p.graph.inputs_of(lif.name)[0].src).op == "avgpool"
    assert bias_carrier(p.graph, lif.name) == "c1"
    x = torch.rand(8, 1, 8, 8)
    s = compile(SharedConv().eval(), example_input=x[:1], leak=1.0, normalize=x, timesteps=4)
    (lif,) = s.graph.by_op("lif")
    assert bias_carrier(s.graph, lif.name) is None  # its bias would move the concat's too


def test_quantised_biases_stay_on_their_grid_and_thresholds_untouched():
    c, x = _chain(target="loihi2", calibrate_rates=1)
    g = calibrate_biases(c.graph, c.ann, x[:32], iterations=2)
    moved = 0
    for n in g.by_op("conv2d"):
        b, step = g.params[n.param("bias")], float(n.attrs["bias_step"])
        assert torch.equal(torch.round(b / step) * step, b), n.name
        moved += int(not torch.equal(b, c.graph.params[n.param("bias")]))
    assert moved == 3
    assert [n.attrs["vth_mant"] for n in g.by_op("lif")] == \
        [n.attrs["vth_mant"] for n in c.graph.by_op("lif")]


def class_offsets(g, ann, x):
    """|mean ANN logit / a - mean SNN readout| per class, a the least-squares scale."""
    m = build_module(g).eval()
    with torch.no_grad():
        s = m(x)
    a = _ann_values(ann, x, {"fc"})["fc"]
    sc, ac = s - s.mean(0), a - a.mean(0)
    scale = float((ac * sc).sum() / (sc * sc).sum())
    return (a.mean(0) / scale - s.mean(0)).abs()


def test_classifier_correction_moves_each_class_mean_to_the_anns():
    c, x = _chain(reset="zero", calibrate_rates=3)
    assert "classifier_calibration" not in c.graph.attrs
    before = class_offsets(c.graph, c.ann, x)
    g = calibrate_classifier(c.graph, c.ann, x)
    after = class_offsets(g, c.ann, x)
    assert g.attrs["classifier_calibration"] == len(x)
    assert float(after.max()) < 0.2 * float(before.max()), (before, after)
    for n in g.nodes:  # the classifier's bias alone moves
        for key in n.params:
            same = torch.equal(g.params[key], c.graph.params[key])
            assert same == (key != g.node("fc").param("bias")), key


def test_compile_corrects_biases_for_reset_to_zero_by_default_and_not_subtraction():
    torch.manual_seed(0)
    model = Chain().eval()
    x = torch.rand(32, 1, 16, 16)
    zero = compile(model, example_input=x[:1], leak=1.0, reset="zero", normalize=x,
                   timesteps=8)
    sub = compile(model, example_input=x[:1], leak=1.0, normalize=x, timesteps=8)
    assert zero.graph.attrs["bias_calibration"] == 4
    assert zero.graph.attrs["classifier_calibration"] == 32
    assert "bias_calibration" not in sub.graph.attrs
    assert "classifier_calibration" not in sub.graph.attrs
    off = compile(model, example_input=x[:1], leak=1.0, reset="zero", normalize=x,
                  timesteps=8, calibrate_bias=0)
    assert "bias_calibration" not in off.graph.attrs
    assert "classifier_calibration" not in off.graph.attrs
