"""Measured mode (docs/costmodel.md "Measured mode"): per layer, the SOPs counted from the
recorded events equal NeuroBench's synaptic-operation count (Effective ACs and MACs, inputs and
weights binarised, per sample summed over T) exactly, and sinabs' synops (value x fan-out) where
sinabs defines one, on the same inputs, for every kind of synaptic input: spikes, S2S counts,
pooled, concatenated, projected (a current read by a V2V projection), direct frames, S2M and
V2V membrane inputs. The reference is computed independently: forward hooks on the PyTorch
module's layers capture what each layer really received, and NeuroBench's and sinabs' own
functions count it with torch layers carrying the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnc.compiler.api import compile as snnc_compile
from snnc.compiler.api import cost_report, record_activity
from tests import cvnets

T = 3


def _reference(module, x, batch_size):
    """{layer: [NeuroBench ACs, MACs, sinabs synops]} summed over the samples (not divided),
    and {lif: membrane events}, from hooks on `module` fed `x` in batches of `batch_size`."""
    from neurobench.metrics.utils.layers import single_layer_MACs
    from sinabs.hooks import conv_layer_synops_hook, linear_layer_synops_hook

    from snnc.backends.pytorch.module import LIF
    from snnc.backends.pytorch.ops import Weighted

    nb: dict[str, list[float]] = {}
    membrane: dict[str, int] = {}
    handles = []

    def weighted_hook(name, layer):
        def hook(mod, args, out):
            xin = args[0][0]  # [T', B, ...]
            w = layer.weight.detach()
            if layer.conv:
                ref = torch.nn.Conv2d(w.shape[1] * layer.groups, w.shape[0], w.shape[2:],
                                      layer.stride, 0, layer.dil, layer.groups, bias=False)
                sin = conv_layer_synops_hook
            else:
                ref = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
                sin = linear_layer_synops_hook
            ref.weight.data = w.clone()
            acc = nb.setdefault(name, [0, 0, 0.0])
            for t in range(T):
                xt = xin[0 if xin.shape[0] == 1 else t]
                if layer.conv:
                    xt = F.pad(xt, layer.fpad)
                ops, spiking = single_layer_MACs(xt, ref)
                acc[0 if spiking else 1] += ops
                h = ref.register_forward_hook(sin)
                ref(xt)
                h.remove()
                acc[2] += float(ref.hook_data["layer_synops_per_timestep"]) * xt.shape[0]
        return hook

    def lif_hook(name, layer):
        def hook(mod, args, out):
            ins = args[0]
            for e, xp in zip(module.graph.inputs_of(name)[1:], ins[1:]):
                # a projected input is the projection layer's output (counted at that layer)
                if e.kind.value in ("S2M", "V2V") and e.projection is None:
                    rep = T if xp.shape[0] == 1 else 1
                    membrane[name] = membrane.get(name, 0) + int((xp != 0).sum()) * rep
        return hook

    for name, layer in module.layers.items():
        if isinstance(layer, Weighted):
            handles.append(layer.register_forward_hook(weighted_hook(name, layer)))
        elif isinstance(layer, LIF):
            handles.append(layer.register_forward_hook(lif_hook(name, layer)))
    module.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            module(x[i:i + batch_size])
    for h in handles:
        h.remove()
    return nb, membrane


def _avgpool_scale(g, name):
    """sinabs' SNNAnalyzer multiplies the layer after an AvgPool2d by kernel size^2."""
    src = g.node(g.inputs_of(name)[0].value_src)
    while src.op in ("flatten", "reshape", "identity"):
        src = g.node(g.inputs_of(src.name)[0].value_src)
    if src.op != "avgpool":
        return 1
    k = src.attrs["k"]
    return k * k if isinstance(k, int) else k[0] * k[1]


def check_against_peers(c, x, module=None, batch_size=3):
    """Measured-mode report of compiled `c` on samples `x`; asserts per-layer equality with
    NeuroBench (exact) and sinabs; returns the report and the layer kinds seen."""
    from snnc.backends.pytorch import build_module

    g = c.graph
    act = record_activity(g, x, module=module, batch_size=batch_size)
    rep = cost_report(g, "generic", rates=act, ann=c.ann)
    ref_module = module if module is not None else build_module(g)
    nb, membrane = _reference(ref_module, x, batch_size)
    n = len(x)
    kinds = set()
    weighted = [r for r in rep.rows if r.op in ("conv2d", "linear")]
    assert {r.name for r in weighted} == set(nb)
    for r in weighted:
        ac, mac, syn = nb[r.name]
        assert r.measured
        assert (r.nb_ac, r.nb_mac) == (ac / n, mac / n), r.name  # exact: 0 difference
        assert r.sinabs_synops == pytest.approx(syn * _avgpool_scale(g, r.name) / n,
                                                rel=1e-5, abs=1e-6), r.name  # float32 sums
        kinds.add(r.in_kind)
    for r in rep.rows:
        if r.neuron in membrane:
            got = r.sops + r.graded_sops - (r.in_sops if r.name != r.neuron else 0.0)
            assert got * n == pytest.approx(membrane[r.neuron], abs=1e-6), r.neuron
            kinds.add("membrane")
    return rep, kinds


def _samples(shape, n=5, seed=1):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("residual", ["s2s", "s2m", "v2v"])
def test_cifar_resnet_equals_neurobench(residual):
    net = cvnets.init_bn(cvnets.CIFARResNet())
    c = snnc_compile(net, residual=residual, timesteps=T, input_shape=(3, 8, 8))
    rep, kinds = check_against_peers(c, _samples((3, 8, 8)))
    assert {"direct_input", "spikes", "avgpool"} <= kinds
    want = {"s2s": "s2s_count", "s2m": "membrane", "v2v": "current"}[residual]
    assert want in kinds, kinds
    if residual == "v2v":
        assert "membrane" in kinds


@pytest.mark.parametrize("residual", ["s2s", "v2v"])
def test_preresnet_equals_neurobench(residual):
    net = cvnets.init_bn(cvnets.PreResNet())
    c = snnc_compile(net, residual=residual, timesteps=T, input_shape=(3, 8, 8))
    rep, kinds = check_against_peers(c, _samples((3, 8, 8)))
    assert {"direct_input", "spikes"} <= kinds


@pytest.mark.parametrize("preact", [True, False], ids=["preact", "postact"])
def test_densenet_equals_neurobench(preact):
    net = cvnets.init_bn(cvnets.DenseNet(preact=preact))
    c = snnc_compile(net, timesteps=T, input_shape=(3, 8, 8))
    rep, kinds = check_against_peers(c, _samples((3, 8, 8)))
    assert "spikes" in kinds and ("concat" in kinds or preact)


def test_trained_small_net_equals_neurobench():
    """A net trained on the digits (1 epoch, 256 samples) with grouped, dilated and strided
    convolutions and a max pool, measured on digits."""
    from snnc.backends.pytorch import build_module, train
    from snnc.backends.pytorch.activity import calibration_samples

    torch.manual_seed(0)
    c = snnc_compile(cvnets.SmallNet().eval(), timesteps=T, input_shape=(1, 8, 8))
    module = build_module(c.graph)
    res = train(module, data="digits", epochs=1, limit=256, test_limit=64, batch_size=32,
                progress=False, recalibrate=0)
    assert res is not None
    x, _ = calibration_samples("digits", c.graph, 6)
    rep, kinds = check_against_peers(c, x, module=module)
    assert {"direct_input", "maxpool", "spikes"} <= kinds
    grouped = next(r for r in rep.rows if r.op == "conv2d" and r.nb_effective and
                   c.graph.node(r.name).attrs.get("groups", 1) == 2)
    assert grouped.nb_effective > 0


def test_measured_mode_is_named_and_counts_graded_inputs():
    """Graded inputs are counted from the recorded values, not assumed dense; the report says
    measured, an estimate says estimate with its error table."""
    net = cvnets.init_bn(cvnets.CIFARResNet())
    c = snnc_compile(net, timesteps=T, input_shape=(3, 8, 8))
    x = _samples((3, 8, 8))
    x[:, :, :4] = 0  # half of every frame is zero: a direct input is not dense
    meas = cost_report(c.graph, "generic", rates=record_activity(c.graph, x), ann=c.ann)
    first = next(r for r in meas.rows if r.in_kind == "direct_input")
    assert 0.3 < first.in_density < 0.7
    assert "measured mode" in meas.activity and "measured" in meas.to_markdown().split("\n")[0]
    est = cost_report(c.graph, "generic", rates=0.1, ann=c.ann)
    assert "estimate mode" in est.activity
    assert any(n.startswith("estimate mode") for n in est.notes)


ASYM = """graph asym(%x: f32[1,2,7,9]) snn {timesteps=3} {
  %enc = encoder(%x graded) {kind=direct} : f32[1,2,7,9]
  %c1 = conv2d(%enc graded) {in=2, out=4, k=(3,2), stride=(2,3), pad=(0,1,1,0), dilation=(1,2), groups=2} [c1.weight] : f32[1,4,3,3]
  %l1 = lif(%c1 graded) {leak=0.9, vth=0.5, reset=subtract} : f32[1,4,3,3]
  %f = flatten(%l1 binary) {start=1} : f32[1,36]
  %fc = linear(%f binary) {in=36, out=3, bias=false} [fc.weight] : f32[1,3]
  %out = readout(%fc graded) : f32[1,3]
  return %out
}
"""


def test_asymmetric_padding_stride_dilation_groups_equal_neurobench():
    """Asymmetric padding (top 0, left 1, bottom 1, right 0), unequal strides and dilation,
    groups, and zero weights: still 0 difference per layer."""
    from types import SimpleNamespace

    from snnc.compiler.text import parse

    g = parse(ASYM)
    gen = torch.Generator().manual_seed(3)
    w1 = torch.randn(4, 1, 3, 2, generator=gen)
    w1[w1.abs() < 0.4] = 0
    wf = torch.randn(3, 36, generator=gen)
    wf[wf.abs() < 0.4] = 0
    g = g.with_params({"c1.weight": w1, "fc.weight": wf})
    c = SimpleNamespace(graph=g, ann=None)
    rep, kinds = check_against_peers(c, _samples((2, 7, 9), n=4))
    assert {"direct_input", "spikes"} <= kinds
