"""Rate calibration with the SNN's own neuron (docs/passes.md "Conversion", `--calibrate-rates`;
backends/pytorch/calibrate.py `calibrate_thresholds`, after Li et al. 2021's layer-wise calibration).

A neuron that resets to zero loses the charge above its threshold at every spike: for a
constant input x its rate is 1 / (floor(vth / x) + 1), below x / vth, and the deficit compounds
over layers. The calibration scales each lif's threshold by (its mean rate) / (the ANN's mean
clip(a / lambda, 0, 1)) on calibration images; it must bring every layer's mean rate closer
to the ANN's.
"""

from __future__ import annotations

import torch

from snnc.backends.pytorch import build_module
from snnc.backends.pytorch.calibrate import _ann_values, calibrate_thresholds
from snnc.compiler import compile
from tests.conversion.nets import Chain


def layer_errors(g, ann, x):
    """{lif: |SNN mean rate over the second half of T - ANN mean clip(a / lambda, 0, 1)|}."""
    m = build_module(g).eval()
    m.record_rates = True
    with torch.no_grad():
        m(x)
    rates = m.rates()
    acts = _ann_values(ann, x, {n.name for n in g.by_op("lif")})
    steps = int(g.attrs["timesteps"])
    out = {}
    for n in g.by_op("lif"):
        want = float((acts[n.name] / n.attrs["lambda"]).clamp(0, 1).mean())
        out[n.name] = abs(float(rates[n.name][steps // 2:].mean()) - want)
    return out


def test_calibration_brings_every_layer_of_a_reset_to_zero_net_closer_to_the_ann():
    torch.manual_seed(0)
    model = Chain().eval()
    x = torch.rand(64, 1, 16, 16)
    c = compile(model, example_input=x[:1], leak=1.0, reset="zero", normalize=x,
                percentile=99.0, timesteps=32, calibrate_rates=0,
                calibrate_bias=0)
    assert "rate_calibration" not in c.graph.attrs
    before = layer_errors(c.graph, c.ann, x)
    g = calibrate_thresholds(c.graph, c.ann, x, iterations=3)
    after = layer_errors(g, c.ann, x)
    assert g.attrs["rate_calibration"] == 3
    assert len(before) == 3
    for name in before:  # reset to zero: below the ANN, by a margin, in every layer
        assert after[name] < 0.5 * before[name], (name, before[name], after[name])
    lowered = [g.node(n).attrs["vth"] < c.graph.node(n).attrs["vth"] for n in before]
    assert all(lowered)


def test_compile_calibrates_reset_to_zero_by_default_and_not_subtraction():
    torch.manual_seed(0)
    model = Chain().eval()
    x = torch.rand(32, 1, 16, 16)
    zero = compile(model, example_input=x[:1], leak=1.0, reset="zero", normalize=x,
                   timesteps=8)
    sub = compile(model, example_input=x[:1], leak=1.0, normalize=x, timesteps=8)
    assert zero.graph.attrs["rate_calibration"] == 3
    assert "rate_calibration" not in sub.graph.attrs
    # the initial membrane: vth/2 for reset by subtraction, none for reset to zero
    assert {n.attrs.get("v_init") for n in sub.graph.by_op("lif")} == {0.5}
    assert {n.attrs.get("v_init") for n in zero.graph.by_op("lif")} == {None}
    off = compile(model, example_input=x[:1], leak=1.0, normalize=x, timesteps=8,
                  init_membrane=0.0)
    assert {n.attrs.get("v_init") for n in off.graph.by_op("lif")} == {None}
