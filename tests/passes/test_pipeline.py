"""conversion_pipeline: order, target semantics, graph attributes, the neuron options."""

from __future__ import annotations

import pytest

from snnc.compiler.errors import SnncError
from snnc.compiler.passmanager import run_pipeline
from snnc.compiler.text import parse
from snnc.passes.pipeline import conversion_pipeline, neuron_options
from tests.passes.passes_golden import GOLDEN

BASIC = (GOLDEN / "relu_to_lif" / "basic.before.snnc").read_text()


def names(**kw):
    return [s.name for s in conversion_pipeline(**kw) if s.name != "annotate-skips"]


def test_default_order():
    assert names() == ["snn-attrs", "relu-to-lif", "bn-to-bntt", "lower-residual", "encode",
                       "readout", "annotate-payloads"]


def test_targets_add_their_legalisations():
    assert names(target="loihi1", boost=True)[-4:] == ["readout", "boost", "annotate-payloads",
                                                      "legalize-graded"]
    assert "maxpool-to-avgpool" in names(target="loihi1")
    assert names(target="loihi2")[-1] == "quantize"
    assert "quantize" not in names(target="loihi2", semantics="paper")
    assert names(extra=["maxpool-to-avgpool"])[-1] == "maxpool-to-avgpool"


def test_loihi2_target_neuron():
    opts = neuron_options("loihi2", "target", 0.874, 1.3)
    assert opts == dict(leak=1 - 516 / 4096, vth=83 / 64, reset="zero", fire="gt")
    assert neuron_options("loihi2", "paper", 0.874, 1.3) == dict(
        leak=0.874, vth=1.3, reset="subtract", fire="ge")
    with pytest.raises(SnncError, match="threshold 0.01 is below loihi2.s threshold step 1/64"):
        neuron_options("loihi2", "target", 0.9, 0.01)


@pytest.mark.parametrize("target,delay", [("generic", 0), ("loihi2", 1)])
def test_graph_attrs(target, delay):
    out = run_pipeline(parse(BASIC), conversion_pipeline(target=target, timesteps=6,
                                                         encoder="poisson", residual="s2m"))
    a = out.attrs
    assert (a["timesteps"], a["target"], a["synaptic_delay"], a["residual"], a["encoder"]) == (
        6, target, delay, "s2m", "poisson")
    assert all(n.attrs["timesteps"] == 6 for n in out.by_op("bntt"))
    fire = {n.attrs["fire"] for n in out.by_op("lif")}
    assert fire == ({"gt"} if target == "loihi2" else {"ge"})


def test_bad_residual_is_a_clear_error():
    with pytest.raises(SnncError, match="option residual='x' is not one of"):
        conversion_pipeline(residual="x")
