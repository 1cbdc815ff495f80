"""The trained nets users bring (tests/trained/make_nets.py) compile for every target in every
residual mode the net has, with no weight-range refusal; what a target cannot hold is a
violation in the cost report (docs/passes.md "Quantisation")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snnc.compiler import compile

HERE = Path(__file__).resolve().parent
# net -> residual modes it has (VGG and the concat net have no ASC skip to lower)
NETS = {"vgg": ("s2s",), "resnet": ("s2s", "s2m", "v2v"), "preact": ("s2s", "s2m", "v2v"),
        "densenet": ("s2s",)}
TARGETS = ("generic", "loihi1", "loihi2", "truenorth", "speck")


def test_the_nets_are_trained_and_small():
    acc = json.loads((HERE / "accuracy.json").read_text())
    for net in NETS:
        assert acc[net]["ann_test_accuracy"] >= 0.88, net
        assert (HERE / f"{net}.onnx").stat().st_size < 500_000, net


@pytest.mark.parametrize("net,residual,target", [
    (n, r, t) for n, modes in NETS.items() for r in modes for t in TARGETS])
def test_compiles_everywhere(net, residual, target):
    c = compile(str(HERE / f"{net}.onnx"), residual=residual, target=target, timesteps=4)
    report = c.cost()
    assert report.totals["synapses"] > 0
    if target == "loihi2":
        layers = [n for n in c.graph.nodes if "weight_exp" in n.attrs]
        assert layers and not any(n.attrs.get("clipped") for n in layers)
        assert len(report.quantization) == len(layers)
        # scaled neurons use the whole mantissa (docs/passes.md "Quantisation"); unscaled layers
        # (S2S projections, V2V chains, a pre-activation net's residual stream, the classifier)
        # keep their values on the standard grid: coarser (reported, warned) but not clipped
        scaled = [r for r in report.quantization if r["scale"] != 1.0]
        assert scaled and all(r["rel_l2_error"] < 0.05 for r in scaled)
