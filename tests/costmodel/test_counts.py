"""Counts against the tools that define them (sinabs, NeuroBench) and hand-computed cases."""

import pytest
import torch

from snnc.compiler.text import parse
from snnc.costmodel import estimate
from snnc.costmodel.connectivity import connectivity, taps_inside
from snnc.costmodel.counting import nonzero_synapses
from snnc.costmodel.mapping import bits_per_axon

CONV = """graph c(%x: f32[1,{cin},{h},{w}]) snn {{timesteps=3}} {{
  %enc = encoder(%x binary) {{kind=poisson}} : f32[1,{cin},{h},{w}]
  %conv = conv2d(%enc binary) {{in={cin}, out={cout}, k=({k},{k}), stride=({s},{s}), pad=({p},{p},{p},{p}), dilation=(1,1), groups={gr}}} [conv.weight] : f32[1,{cout},{ho},{wo}]
  %lif = lif(%conv graded) {{leak=0.9, vth=1.0, reset=subtract}} : f32[1,{cout},{ho},{wo}]
  return %lif
}}
"""
CASES = [dict(cin=4, cout=6, h=9, w=7, k=3, s=2, p=1, gr=2),
         dict(cin=3, cout=3, h=8, w=8, k=5, s=1, p=0, gr=3),
         dict(cin=2, cout=4, h=6, w=10, k=3, s=3, p=2, gr=1)]


def _graph(case):
    c = dict(case)
    c["ho"] = (c["h"] + 2 * c["p"] - c["k"]) // c["s"] + 1
    c["wo"] = (c["w"] + 2 * c["p"] - c["k"]) // c["s"] + 1
    g = parse(CONV.format(**c))
    torch.manual_seed(0)
    w = torch.randn(c["cout"], c["cin"] // c["gr"], c["k"], c["k"])
    w[w.abs() < 0.5] = 0.0  # zero weights: NeuroBench skips them, sinabs does not
    conv = torch.nn.Conv2d(c["cin"], c["cout"], c["k"], c["s"], c["p"], groups=c["gr"],
                           bias=False)
    conv.weight.data = w
    return g.with_params({"conv.weight": w}), conv, c


@pytest.mark.parametrize("case", CASES, ids=str)
def test_connection_map_equals_sinabs(case):
    from sinabs.hooks import conv_connection_map

    g, conv, c = _graph(case)
    ref = conv_connection_map(conv, (c["cin"], c["h"], c["w"]), (c["cout"], c["ho"], c["wo"]))
    mine = connectivity(g, g.node("conv")).fanout_map()
    assert torch.equal(torch.from_numpy(mine).to(ref.dtype), ref[0])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_sops_equal_sinabs_and_neurobench_on_data(case):
    """Same seeded spikes: sinabs synops = sum(x * map) per step; NeuroBench effective ACs =
    conv(bin x, bin W).sum() per sample summed over T; Dense = all-ones."""
    from neurobench.metrics.utils.layers import single_layer_MACs
    from sinabs.hooks import conv_layer_synops_hook

    g, conv, c = _graph(case)
    T = 3
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(T, c["cin"], c["h"], c["w"], generator=gen) < 0.3).float()
    conv.register_forward_hook(conv_layer_synops_hook)
    sinabs = 0.0
    nb, nb_dense = 0.0, 0.0
    for t in range(T):
        conv(x[t:t + 1])
        sinabs += float(conv.hook_data["layer_synops_per_timestep"])
        ops, spiking = single_layer_MACs(x[t:t + 1], conv)
        dense, _ = single_layer_MACs(x[t:t + 1], conv, total=True)
        assert spiking
        nb += float(ops)
        nb_dense += float(dense)
    con = connectivity(g, g.node("conv"))
    fan = torch.from_numpy(con.fanout_map()).float()
    assert float((x * fan).sum()) == pytest.approx(sinabs, rel=1e-6)
    # the cost model's per-layer counts at the measured rate
    rate = float(x.mean())
    rep = estimate(g, target="generic", rates={"enc": rate, "*": 0.0})
    row = rep.rows[0]
    assert row.sops == pytest.approx(sinabs, rel=0.15)  # uniform-rate estimate
    assert row.nb_dense == pytest.approx(nb_dense)
    # exact with the measured spikes and binarised weights (nonzero connection map)
    wb = (conv.weight != 0).float().requires_grad_(False)
    xg = torch.zeros(1, c["cin"], c["h"], c["w"], requires_grad=True)
    torch.nn.functional.conv2d(xg, wb, None, conv.stride, conv.padding, conv.dilation,
                               conv.groups).sum().backward()
    assert float((x * xg.grad[0]).sum()) == pytest.approx(nb)
    assert nonzero_synapses(g, g.node("conv")) == int(xg.grad.sum())


@pytest.mark.parametrize("case", CASES, ids=str)
def test_nonzero_synapses_without_zero_weights(case):
    """No zero weight: the shortcut (size/(kh kw) x the fan-out map's sum over positions)
    gives the count of the binarised convolution, which is then every real connection."""
    g, conv, c = _graph(case)
    w = torch.randn(c["cout"], c["cin"] // c["gr"], c["k"], c["k"]).abs() + 0.1
    g = g.with_params({"conv.weight": w})
    xg = torch.zeros(1, c["cin"], c["h"], c["w"], requires_grad=True)
    torch.nn.functional.conv2d(xg, torch.ones_like(w), None, conv.stride, conv.padding,
                               conv.dilation, conv.groups).sum().backward()
    n = g.node("conv")
    assert nonzero_synapses(g, n) == int(xg.grad.sum()) == connectivity(g, n).synapses
    # positions: the (output position, tap) pairs reading inside the input, counted per tap
    # from the taps' own reach along each axis (taps_inside), not from the fan-out map
    rows = taps_inside(c["h"], c["ho"], c["k"], c["s"], c["p"], 1)
    cols = taps_inside(c["w"], c["wo"], c["k"], c["s"], c["p"], 1)
    assert connectivity(g, n).positions == int(rows.sum() * cols.sum())
    assert nonzero_synapses(g, n, conn=connectivity(g, n)) == int(xg.grad.sum())


def test_bits_per_axon_hand():
    # 64 weights of 8 bits: 512 + 10 = 522 -> 576; 65: 576 + (8 + 10 -> 64) = 640
    assert bits_per_axon(64, 8) == 576
    assert bits_per_axon(65, 8) == 640
    assert bits_per_axon(1, 1) == 64


S2S = """graph blk(%x: f32[1,4,8,8]) snn {timesteps=4, lowered=true} {
  %enc = encoder(%x graded) {kind=poisson} : f32[1,4,8,8]
  %lif0 = lif(%enc binary) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %conv1 = conv2d(%lif0 binary) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv1.weight] : f32[1,4,8,8]
  %lif1 = lif(%conv1 graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %conv2 = conv2d(%lif1 binary) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv2.weight] : f32[1,4,8,8]
  %lif2 = lif(%conv2 graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %add = add(%lif2 binary, %lif0 ~S2S n=2 binary) : f32[1,4,8,8]
  %conv3 = conv2d(%add count) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv3.weight] : f32[1,4,8,8]
  %lif3 = lif(%conv3 graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  return %lif3
}
"""


def test_s2s_graded_edge_and_eq12_synapses():
    g = parse(S2S)
    # 3x3 pad 1 on 8x8: per axis 6 inner positions see 3 taps, 2 borders see 2 -> 22
    syn = 22 * 22 * 4 * 4
    gen = estimate(g, target="loihi2", rates=0.1)
    (e,) = gen.graded_edges
    assert (e.kind, e.payload, e.bits, e.fits) == ("s2s_sum", "count", 2, True)
    assert gen.rows[2].graded_sops == pytest.approx((1 - 0.9 ** 2) * 4 * syn)
    l1 = estimate(g, target="loihi1", rates=0.1)
    (e,) = l1.graded_edges
    assert (e.lowering, e.equation, e.extra_synapses) == ("split", "paper 2 eq. 12", syn)
    assert l1.totals["extra_synapses"] == syn and l1.totals["graded_sops"] == 0
    assert l1.rows[2].sops == pytest.approx(0.2 * 4 * syn)  # each copy driven by its source


def test_loihi2_energy_never_printed():
    rep = estimate(parse(S2S), target="loihi2", rates=0.1)
    assert rep.energy["value"] is None and rep.energy["band"] is None
    assert rep.totals["cores"] >= 4



def test_qat_folded_conv_counts_the_deployed_weights():
    """On loihi2's `--bn shared` default a conv trained with its BN folded runs the folded,
    quantised weights q(clip(W s)) (docs/lava.md "Deployable default"): its non-zero synapses
    are those of the weights the Lava plan holds (BN scales of 0.05 and 0.02 round two of its
    output channels to zero), not of the float W in the graph; off loihi2 the float W."""
    import numpy as np
    import torch.nn as nn
    import torch.nn.functional as F

    from snnc.backends.lava.lowering import lower
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import cost_report

    class BNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.c(x))).flatten(1))

    torch.manual_seed(0)
    net = BNNet().eval()
    with torch.no_grad():
        net.c.weight.uniform_(0.05, 0.5)
        net.bn.weight.copy_(torch.tensor([1.0, 0.05, 1.0, 0.02]))
    x = torch.ones(1, 2, 8, 8)

    def connections(w) -> int:  # padding excluded: an all-ones input, binarised weights
        return int(F.conv2d(x, (torch.as_tensor(w) != 0).float(), padding=1).sum())

    c = snnc_compile(net, target="loihi2", example_input=torch.zeros(1, 2, 8, 8))
    (syn,) = [s for layer in lower(c.graph).layers for s in layer.synapses if s.origin == "c"]
    row = next(r for r in cost_report(c.graph, "loihi2").rows if r.name == "c")
    assert row.nonzero_synapses == connections(np.asarray(syn.weight)) == 2483
    assert connections(c.graph.params["c.weight"]) == row.synapses == 3872  # float W: none 0
    g = snnc_compile(net, target="generic", example_input=torch.zeros(1, 2, 8, 8)).graph
    row = next(r for r in cost_report(g, "generic").rows if r.name == "c")
    assert row.nonzero_synapses == connections(g.params["c.weight"]) == 3872


def test_row_as_dict_fields_in_order_lists_copied():
    from dataclasses import fields

    from snnc.costmodel.counting import LayerCost

    names = [f.name for f in fields(LayerCost)]
    row = LayerCost("a", "conv2d", hosted_on=["x"], macs=3)
    d = row.as_dict()
    assert list(d) == names and d["macs"] == 3 and d["hosted_on"] == ["x"]
    assert d["hosted_on"] is not row.hosted_on
    row.extra = 1  # not a field: left out, order kept
    del row.name
    row.name = "b"  # re-set last in the instance dict: still field order
    d = row.as_dict()
    assert list(d) == names and d["name"] == "b" and d["hosted_on"] is not row.hosted_on


def test_row_fast_constructor_equals_the_dataclass():
    """counting._row (a copy of the defaults' dict) makes what LayerCost(...) makes: equal
    rows, the instance dict in field order, no value shared between rows."""
    from dataclasses import MISSING, fields

    from snnc.costmodel.counting import LayerCost, _row

    for f in fields(LayerCost)[2:]:  # what makes the dict copy safe: immutable defaults
        assert f.default_factory is MISSING
        assert type(f.default) in (type(None), int, float, str, bool), f.name
    assert not hasattr(LayerCost, "__post_init__")
    cases = [{}, {"neuron": "lif"}, {"macs": 3, "synapses": 2, "weights": 7, "weight_bytes": 3.5},
             {"hosted_on": ["x"], "measured": True, "nb_kind": "MAC", "sops": -0.0}]
    for kw in cases:
        fast, plain = _row("a", "conv2d", **kw), LayerCost("a", "conv2d", **kw)
        assert fast == plain and type(fast) is LayerCost
        assert list(vars(fast).items()) == list(vars(plain).items())
        assert fast.as_view() is vars(fast)  # the JSON's no-copy path holds
    a, b = _row("a", "lif"), _row("b", "lif")
    a.extra_synapses += 5
    assert b.extra_synapses == 0 and vars(a) is not vars(b)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_baseline_totals_are_the_rows_totals(case):
    """The ANN baseline's light count sums what the rows would: MACs and weight bytes."""
    from snnc.compiler.targets import load_target
    from snnc.costmodel.counting import baseline_totals, count_layers, totals

    g, _, _ = _graph(case)
    for name in ("cmos45", "cmos45:int8", "loihi1"):
        t = load_target(name)
        full = totals(count_layers(g, t, None, exact_weights=False))
        light = baseline_totals(g, t)
        assert light == {k: full[k] for k in light} and set(light) == {"macs", "weight_bytes"}
        assert [type(light[k]) for k in light] == [type(full[k]) for k in light]


LINEAR = """graph l(%x: f32[1,6]) snn {timesteps=2} {
  %enc = encoder(%x binary) {kind=poisson} : f32[1,6]
  %fc = linear(%enc binary) {in=6, out=4, bias=false} [fc.weight] : f32[1,4]
  %lif = lif(%fc graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4]
  return %lif
}
"""


def test_nonzero_synapses_of_a_linear_layer():
    """A linear layer's non-zero synapses are its non-zero weights (NeuroBench binarises
    weights): every weight when none is zero (the shortcut), else the count of w != 0, where
    -0.0 is zero and a weight that is only tiny is not."""
    g = parse(LINEAR)
    n = g.node("fc")
    w = torch.randn(4, 6).abs() + 0.1
    assert nonzero_synapses(g.with_params({"fc.weight": w}), n) == 24
    w[0, :3] = 0.0
    w[2, 5] = -0.0
    w[3, 1] = 1e-30
    assert nonzero_synapses(g.with_params({"fc.weight": w}), n) == 20 == int((w != 0).sum())
    # the deployed weight (e.g. quantised integers) replaces the graph's
    q = torch.tensor([[0, 3, -1, 0, 0, 2]] * 4, dtype=torch.int8)
    assert nonzero_synapses(g.with_params({"fc.weight": w}), n, weight=q) == 12


def test_the_zero_weight_test_is_numpys_all(monkeypatch):
    """counting._no_zero (the dense shortcut's test, chunk by chunk) answers as `w.all()`:
    -0.0 is a zero, NaN, infinities and subnormals are not; a zero in any chunk, at a chunk's
    first or last value or in the short last chunk, is found; non-contiguous, empty, 0-d,
    integer, bool and float16 arrays too; and the non-zero count of a layer follows it."""
    import numpy as np

    from snnc.costmodel import counting

    monkeypatch.setattr(counting, "_ZERO_CHUNK", 8)  # chunk boundaries in small arrays
    base = np.linspace(0.5, 3.0, 27, dtype=np.float32)  # 3 full chunks and a short one
    cases = [base, base.reshape(3, 9), base.reshape(3, 9).T, base[::2], base[:0],
             np.float32(2.0).reshape(()), np.float32(0.0).reshape(()),
             np.array([np.nan, np.inf, -np.inf, 1e-45], np.float32),
             np.arange(1, 20, dtype=np.int8), np.ones(9, bool), base.astype(np.float16)]
    for value, at in [(0.0, 0), (-0.0, 7), (0.0, 8), (-0.0, 15), (0.0, 24), (0.0, 26)]:
        w = base.copy()
        w[at] = value
        cases += [w, w.reshape(3, 9).T, np.zeros(9, bool), np.arange(-4, 5, dtype=np.int8)]
    for w in cases:
        assert counting._no_zero(w) is bool(w.all()), (w.dtype, w.shape, w)
    g = parse(LINEAR)
    n = g.node("fc")
    w = torch.full((4, 6), 0.25)
    w[3, 5] = -0.0  # the last value of the last chunk (24 values: 3 chunks of 8)
    assert nonzero_synapses(g.with_params({"fc.weight": w}), n) == 23


def test_propagate_concat_sums_in_input_order():
    """propagate's one-pass concat figure equals the channel-weighted means summed in input
    order with sum() (bit for bit), for rates that round differently in another order, with
    inputs read as currents (V2V, tap=current: (1, 1)) and edges with other attributes."""
    import math

    from snnc.compiler.core.ir import Attrs, Edge, EdgeKind, Form, Graph, Node
    from snnc.compiler.core.payload import reads_current
    from snnc.costmodel.activity import as_activity, propagate

    rates = {"a": 0.1, "b": 0.7, "c": 1e-9, "d": 0.3}
    shapes = {"a": (1, 3, 4, 4), "b": (1, 1, 4, 4), "c": (1, 7, 4, 4), "d": (1, 2, 4, 4)}
    nodes = [Node("x", "input", shape=(1, 3, 4, 4))]
    nodes += [Node(k, "lif", shape=s) for k, s in shapes.items()]
    kinds = [(EdgeKind.DSC, Attrs()), (EdgeKind.DSC, Attrs({"fraction": 0.5})),
             (EdgeKind.V2V, Attrs()), (EdgeKind.DATA, Attrs({"tap": "current"})),
             (EdgeKind.DATA, Attrs({"tap": "spikes"}))]
    srcs = ["a", "b", "c", "d", "a"]
    edges = [Edge("x", k, 0) for k in shapes]
    edges += [Edge(s, "cat", i, kind, attrs=at) for i, (s, (kind, at)) in
              enumerate(zip(srcs, kinds))]
    nodes.append(Node("cat", "concat", Attrs({"axis": 1}), (1, 16, 4, 4)))
    g = Graph("cat", tuple(nodes), tuple(edges), ("cat",), Form.SNN)
    out = propagate(g, as_activity(rates))
    ins = g.inputs_of("cat")
    main = [(1.0, 1.0) if reads_current(e) else (rates[e.src], rates[e.src]) for e in ins]
    assert [reads_current(e) for e in ins] == [False, False, True, True, False]
    sizes = [math.prod(shapes[e.src][1:]) for e in ins]
    tot = sum(sizes)
    want = (sum(s * d for s, (d, _) in zip(sizes, main)) / tot,
            sum(s * v for s, (_, v) in zip(sizes, main)) / tot)
    assert out["cat"] == want  # exact: the same additions in the same order
