"""Every lowering priced, or a violation (docs/costmodel.md "Graded edges and legalisation",
"Currents passed on"): V2V projections at the current they read, refusals as violations naming
node, edge and rule with no energy, and every synapse of pre-activation and concatenating nets
on a core (hosted on the neurons its current reaches, or relayed as graded spikes)."""

from __future__ import annotations

import pytest

from snnc.compiler.api import compile as snnc_compile
from snnc.compiler.api import cost_report
from snnc.compiler.text import parse
from tests import cvnets


def _compile(net, target, residual="s2s", T=2):
    return snnc_compile(cvnets.init_bn(net), residual=residual, target=target, timesteps=T,
                        input_shape=(3, 8, 8))


def _unplaced(rep) -> int:
    """Synapses on no core: not on their own row's cores, not hosted, not merged away."""
    return sum(r.synapses for r in rep.rows if r.synapses and not r.cores and not r.hosted_on
               and r.extra_synapses != -r.synapses)


def test_v2v_projection_priced_at_the_current():
    """A projection reading a current (tap=current) gets a value every step: density 1,
    T x synapses graded SOPs, whatever the firing-rate prior."""
    c = _compile(cvnets.CIFARResNet(), "generic", "v2v", T=3)
    for rate in (0.05, 0.3):
        rep = cost_report(c.graph, "generic", rates=rate)
        proj = [r for r in rep.rows if r.in_kind == "current"]
        assert proj
        for r in proj:
            assert r.in_density == 1.0 and r.graded_sops == pytest.approx(3 * r.synapses)


def test_v2v_projection_merged_on_loihi1():
    c = _compile(cvnets.CIFARResNet(), "loihi1", "v2v")
    rep = cost_report(c.graph, "loihi1", rates=0.1)
    proj = [e for e in rep.graded_edges if e.dst.startswith("stages_") and "proj" in e.dst]
    assert proj and all(e.lowering == "merged-into-reader" for e in proj)
    for e in proj:
        row = next(r for r in rep.rows if r.name == e.dst)
        assert row.extra_synapses == -row.synapses and row.sops == row.graded_sops == 0
    assert not rep.violations and rep.energy["value"] is not None
    assert _unplaced(rep) == 0


CURRENT_TO_SYNAPSE = """graph g(%x: f32[1,2,6,6]) snn {timesteps=2, lowered=true} {
  %enc = encoder(%x binary) {kind=poisson} : f32[1,2,6,6]
  %c1 = conv2d(%enc binary) {in=2, out=2, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [c1.weight] : f32[1,2,6,6]
  %c2 = conv2d(%c1 graded) {in=2, out=2, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [c2.weight] : f32[1,2,6,6]
  %lif = lif(%c2 graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,2,6,6]
  return %lif
}
"""


def test_refused_lowering_is_a_violation_without_energy():
    rep = cost_report(parse(CURRENT_TO_SYNAPSE), "loihi1", rates=0.1)
    assert any("'c2'" in v and "'c1'" in v and "binary spikes" in v for v in rep.violations)
    assert rep.energy["value"] is None and rep.energy["status"] == "violations"
    assert "violation" in rep.energy["reason"]
    gen = cost_report(parse(CURRENT_TO_SYNAPSE), "loihi2", rates=0.1)  # graded spikes: relay
    row = next(r for r in gen.rows if r.name == "c1")
    assert row.relay_neurons == 2 * 6 * 6 and row.cores >= 1 and not gen.violations


@pytest.mark.parametrize("target", ["loihi2", "generic", "loihi1"])
@pytest.mark.parametrize("net", ["preresnet", "densenet"])
def test_every_synapse_on_a_core(net, target):
    model = cvnets.PreResNet() if net == "preresnet" else cvnets.DenseNet()
    c = _compile(model, target)
    rep = cost_report(c.graph, target, rates=0.1)
    if target == "generic":  # no mapping model: nothing is placed, counts only
        assert rep.totals["cores"] == 0
        return
    assert _unplaced(rep) == 0
    assert not rep.violations


def test_preactivation_currents_hosted_on_later_neurons():
    """preresnet: the init conv's current reaches stage 0's neurons (its own) and, through the
    identity skip, stage 1's pre-activation neurons: one more copy of its synapses there."""
    c = _compile(cvnets.PreResNet(), "loihi2")
    rep = cost_report(c.graph, "loihi2", rates=0.1)
    init = next(r for r in rep.rows if r.name == "init")
    assert init.hosted_on == ["stages_1_relu"] and init.extra_synapses == init.synapses
    host = next(r for r in rep.rows if r.neuron == "stages_1_relu")
    conv2 = next(r for r in rep.rows if r.name == "stages_0_conv2")
    assert conv2.hosted_on == ["stages_1_relu"] and conv2.extra_synapses == 0
    assert host.hosted_synapses == init.synapses + conv2.synapses and host.cores >= 1


def test_densenet_concat_currents_copied_per_later_unit():
    """densenet (pre-activation units): a unit's conv2 current is concatenated into the input
    of every later unit of its stage and of the transition: one copy per such neuron layer."""
    c = _compile(cvnets.DenseNet(units=(3,)), "loihi2")
    rep = cost_report(c.graph, "loihi2", rates=0.1)
    convs = [r for r in rep.rows if r.op == "conv2d" and r.name.endswith("conv2")]
    assert [len(r.hosted_on) for r in convs] == [3, 2, 1]  # 2, 1, 0 later units + the post
    for r in convs:
        assert r.extra_synapses == (len(r.hosted_on) - 1) * r.synapses


@pytest.mark.parametrize("residual", ["s2s", "v2v"])
def test_lava_relays_priced_as_the_lowering_builds_them(residual):
    """loihi2 (target-exact): the graded relays and bias units the Lava lowering adds for the
    stride-2 projections are neurons of the report, exactly as many as in the Lava plan
    (backends/lava/lowering.py; costmodel/relays.py); a V2V relay is fed by a copy of its
    source's synapses."""
    import math

    import torch

    from snnc.backends import lava

    net = cvnets.init_bn(cvnets.CIFARResNet((4, 8, 8), blocks=3, cin=2))
    c = snnc_compile(net, residual=residual, target="loihi2", timesteps=20,
                     example_input=torch.zeros(1, 2, 8, 8))
    plan = lava.lower(c.graph)
    rep = cost_report(c.graph, "loihi2", rates=0.1)
    added = sum(math.prod(la.shape) for la in plan.layers if la.op in ("relay", "bias"))
    assert added > 0 and sum(r.relay_neurons for r in rep.rows) == added
    inputs = sum(math.prod(la.shape) for la in plan.layers if la.op == "input")
    assert rep.totals["neurons"] == sum(math.prod(la.shape) for la in plan.layers) - inputs
    base = cost_report(c.graph.with_attrs(synaptic_delay=0), "loihi2", rates=0.1)  # no relays
    for r in rep.rows:
        b = next(x for x in base.rows if x.name == r.name)
        if residual == "v2v" and r.relay_neurons:
            src = next(x for x in rep.rows if x.neuron and any(
                e.attrs.get("tap") == "current" and e.dst == r.name
                for e in c.graph.users(x.neuron)))
            assert r.extra_synapses - b.extra_synapses >= src.synapses - src.residual_synapses
