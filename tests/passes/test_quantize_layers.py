"""Quantisation of real (trained-size) weights: one exponent per layer (docs/passes.md
"Quantisation"), statistics per layer, no refusal for large weights, options from the CLI."""

from __future__ import annotations

import logging

import pytest
import torch

from snnc.compiler.core.errors import ConstraintViolation, SnncError
from snnc.compiler.core.passmanager import apply_pass_options, parse_pass_option
from snnc.passes.encode import encode
from snnc.passes.lower_residual import lower_residual
from snnc.passes.pipeline import conversion_pipeline
from snnc.passes.quantize import best_exponent, quantize
from snnc.passes.readout import readout
from snnc.passes.relu_to_lif import relu_to_lif
from tests.passes.test_numeric import _resnet


def _snn(factor: dict[str, float] | None = None):
    g = readout(encode(lower_residual(relu_to_lif(_resnet(), leak=0.9, vth=1.0)), kind="direct"))
    params = dict(g.params)
    for key, f in (factor or {}).items():
        params[key] = params[key] * f
    return g.with_params(params)


def _on_grid(q, step):
    m = q / step
    return torch.equal(m, m.round()) and float(m.abs().max()) <= 128


def test_large_weights_scale_their_neuron_down_and_do_not_clip():
    g = _snn({"b0_conv2.weight": 40.0})  # far beyond the fixed grid's [-4, 3.97]
    with pytest.raises(ConstraintViolation):
        quantize(g, exp=1)
    out = quantize(g)
    n, lif = out.node("b0_conv2"), out.node("b0_relu2")
    c = n.attrs["neuron_scale"]
    assert c < 1 and lif.attrs["neuron_scale"] == c and "clipped" not in n.attrs
    assert lif.attrs["vth"] == pytest.approx(c)  # the threshold scaled with the weights
    w, q = g.params["b0_conv2.weight"] * c, out.params["b0_conv2.weight"]
    step = n.attrs["weight_step"]
    assert n.attrs["weight_exp"] == 1 and step == 1 / 32 and _on_grid(q, step)
    assert float((q - w).abs().max()) <= step / 2 + 1e-6  # rounded to nearest, not clipped
    assert float(w.abs().max()) > 2.0  # the whole mantissa is used
    assert n.attrs["weight_qerr"] == pytest.approx(float((q - w).norm() / w.norm()), abs=1e-6)
    assert n.attrs["weight_levels"] == int(torch.unique((q / step).round()).numel())


def test_small_weights_scale_up_and_use_many_levels():
    g = _snn({"b0_conv1.weight": 0.01})
    fixed, auto = quantize(g, exp=1), quantize(g)
    name = "b0_conv1"
    assert fixed.node(name).attrs["weight_levels"] <= 3  # the "2-3 levels"
    assert auto.node(name).attrs["weight_levels"] >= 16
    assert auto.node(name).attrs["weight_qerr"] < fixed.node(name).attrs["weight_qerr"] / 10
    lif = auto.node("b0_relu1")
    c = lif.attrs["neuron_scale"]
    assert c > 1 and lif.attrs["width"] == pytest.approx(c) and lif.attrs["alpha"] == \
        pytest.approx(0.3 / c)


def test_scaling_keeps_every_spike():
    """c = 2^k multiplies every input current and the threshold exactly: the float SNN's
    spikes, and so its logits, are bit-identical."""
    from snnc.backends.pytorch.module import build_module
    from snnc.passes._neuron_scale import scale_neurons

    g = _snn({"b0_conv1.weight": 0.01, "b0_conv2.weight": 30.0})
    s = scale_neurons(g)
    assert {n.name for n in s.nodes if "neuron_scale" in n.attrs} >= {"b0_conv1", "b0_conv2"}
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        a = build_module(g, compact=False).eval()(x)
        b = build_module(s, compact=False).eval()(x)
    torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_best_exponent_is_the_finest_that_holds_every_value():
    def fits(w, e):  # the mantissa round(w / step) lies in [-128, 127]
        m = (w / (2.0 ** e / 64)).round()
        return bool((m >= -128).all() and (m <= 127).all())

    for w in (torch.tensor([0.5, -1.0, 0.25]), torch.tensor([0.9, -0.3]), torch.randn(50) * 7):
        e = best_exponent(w, 8, 64, (-8, 7))
        assert fits(w, e) and not fits(w, e - 1)
    assert best_exponent(torch.zeros(3), 8, 64, (-8, 7)) == -8


def test_few_levels_are_a_warning(caplog):
    g = _snn({"fc.weight": 0.01, "b0_conv1.weight": 0.01})
    with caplog.at_level(logging.WARNING, logger="snnc.passes"):
        quantize(g, exp=1)  # the fixed grid, no scaling
    assert "fewer than 16 weight levels" in caplog.text and "'b0_conv1'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="snnc.passes"):
        quantize(g)
    # the neuron is scaled; the classifier keeps its scale and is named (not silent)
    assert "'b0_conv1'" not in caplog.text and "'fc'" in caplog.text


def test_quantize_is_idempotent_with_per_layer_exponents():
    out = quantize(_snn({"b0_conv2.weight": 40.0}))
    again = quantize(out)
    assert again == out and again.same_params(out)


def test_beyond_the_exponent_range_the_pipeline_reports_instead_of_refusing():
    g = _snn({"b0_conv2.weight": 1e6})  # beyond any exponent and neuron scale
    with pytest.raises(ConstraintViolation, match="b0_conv2"):
        quantize(g)
    out = quantize(g, on_clip="report")
    assert out.node("b0_conv2").attrs["clipped"] > 0


def test_pass_option_reaches_a_pass_inside_the_pipeline():
    assert parse_pass_option("quantize.on_clip=report") == ("quantize", "on_clip", "report")
    assert parse_pass_option("normalize.percentile=99.99")[2] == pytest.approx(99.99)
    specs = conversion_pipeline(target="loihi2", pass_options=["quantize.exp=1"])
    q = [s for s in specs if s.name == "quantize"][0]
    assert q.options["exp"] == 1 and q.options["on_clip"] == "report"
    with pytest.raises(SnncError, match="not in this pipeline"):
        conversion_pipeline(target="generic", pass_options=["quantize.exp=1"])
    with pytest.raises(SnncError, match="has no option 'nope'"):
        apply_pass_options(specs, ["quantize.nope=1"])
    with pytest.raises(SnncError, match="PASS.KEY=VALUE"):
        parse_pass_option("quantize")
