"""The IR core: text form, JSON, attributes, builder and verifier (docs/design.md "The IR")."""

import copy
import dataclasses
import pickle

import pytest

from snnc.compiler.errors import ParseError, VerifyError
from snnc.compiler.ir import Attrs, Edge, EdgeKind, Form, GraphBuilder, Node, Payload
from snnc.compiler.serialize import from_json, to_json
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify

BASIC = """graph basic_block(%x: f32[1,4,8,8]) ann {
  %conv1 = conv2d(%x) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv1.weight] : f32[1,4,8,8]
  %relu1 = relu(%conv1) : f32[1,4,8,8]
  %conv2 = conv2d(%relu1) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv2.weight] : f32[1,4,8,8]
  %add = add(%conv2, %x ~ASC n=2) : f32[1,4,8,8]
  %relu2 = relu(%add) : f32[1,4,8,8]
  return %relu2
}
"""

SNN = """graph s2m_block(%x: f32[1,4,8,8]) snn {timesteps=4, semantics=paper, lowered=true} {
  %enc = encoder(%x graded) {kind=direct} : f32[1,4,8,8]
  %lif0 = lif(%enc graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %conv1 = conv2d(%lif0 binary) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv1.weight] : f32[1,4,8,8]
  %lif1 = lif(%conv1 graded) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %conv2 = conv2d(%lif1 binary) {in=4, out=4, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [conv2.weight] : f32[1,4,8,8]
  %lif2 = lif(%conv2 graded, %lif0 ~S2M n=2 scale=1.0 binary) {leak=0.9, vth=1.0, reset=subtract} : f32[1,4,8,8]
  %add = add(%lif2 binary, %lif0 ~S2S n=2 binary) : f32[1,4,8,8]
  return %add
}
"""


@pytest.mark.parametrize("text", [BASIC, SNN], ids=["ann", "snn"])
def test_text_and_json_round_trip(text):
    g = verify(parse(text))
    assert parse(print_ir(g)) == g
    assert print_ir(parse(print_ir(g))) == print_ir(g)
    assert from_json(to_json(g)) == g


def test_parsed_edges_keep_skip_annotations():
    g = parse(SNN)
    (s2m,) = [e for e in g.edges if e.kind is EdgeKind.S2M]
    assert (s2m.src, s2m.dst, s2m.port, s2m.hops) == ("lif0", "lif2", 1, 2)
    assert s2m.attrs["scale"] == 1.0 and s2m.payload is Payload.BINARY
    assert g.form is Form.SNN and g.attrs["timesteps"] == 4


def test_attribute_values_keep_their_types():
    a = Attrs({"i": 3, "f": 3.0, "t": (1, 2), "s": "a b", "b": True, "n": None, "e": 1e-05})
    g = GraphBuilder("g")
    g.add(Node("x", "input", shape=(1, 2)))
    g.add(Node("y", "identity", a, (1, 2)), ["x"])
    g.outputs = ["y"]
    built = g.build()
    back = parse(print_ir(built))
    y = back.node("y").attrs
    assert y == a
    assert type(y["i"]) is int and type(y["f"]) is float and y["t"] == (1, 2)


def test_graph_equality_is_structural_and_ignores_weights():
    import torch

    g = parse(BASIC)
    params = {"conv1.weight": torch.zeros(4, 4, 3, 3), "conv2.weight": torch.ones(4, 4, 3, 3)}
    with_w = g.with_params(params)
    assert with_w == g
    assert not with_w.same_params(g.with_params({k: v + 1 for k, v in params.items()}))


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("f32[1,4,8,8]\n  %relu1", "f32[1,4,9,8]\n  %relu1"),
     r"node 'conv1' \(op conv2d\) records shape \[1, 4, 9, 8\] but its inputs give \[1, 4, 8, 8\]"),
    (lambda t: t.replace("%conv2, %x ~ASC n=2", "%conv2, %x ~ASC n=0"), r"hops=0"),
    (lambda t: t.replace("add(%conv2, %x ~ASC n=2)", "add(%conv2, %x ~S2S n=2)"),
     r"S2S edge %x -> %add in an ANN-form graph"),
    (lambda t: t.replace("%relu1 = relu(%conv1)", "%relu1 = lif(%conv1)"),
     r"spiking op 'lif' at node 'relu1' in an ANN-form graph"),
    (lambda t: t.replace("return %relu2", "return %nothing"), r"output 'nothing' is not a node"),
])
def test_verifier_names_node_and_rule(mutate, message):
    with pytest.raises(VerifyError, match=message):
        verify(parse(mutate(BASIC)))


def test_verifier_rejects_wrong_payload():
    bad = SNN.replace("%add = add(%lif2 binary", "%add = add(%lif2 graded")
    with pytest.raises(VerifyError, match=r"marked graded but carries binary"):
        verify(parse(bad))


def test_verifier_rejects_skip_into_wrong_op():
    bad = SNN.replace("%lif0 ~S2M n=2 scale=1.0 binary", "%lif0 ~DSC n=2 binary")
    with pytest.raises(VerifyError, match=r"DSC edge %lif0 -> %lif2 enters op 'lif'"):
        verify(parse(bad))


def test_builder_detects_cycles():
    b = GraphBuilder("cyc")
    b.add(Node("x", "input", shape=(1, 2)))
    b.add(Node("a", "identity", shape=(1, 2)), ["x"])
    b.add(Node("b", "identity", shape=(1, 2)), ["a"])
    b.edges.append(Edge("b", "a", 1))
    b.outputs = ["b"]
    with pytest.raises(VerifyError, match="cycle"):
        b.build()


@pytest.mark.parametrize("text, message", [
    ("", "empty IR text"),
    ("graph g(%x: f32[1,2]) ann {\n  %y = relu(%x) : f32[1,2]\n  return %y\n", "missing the closing"),
    ("graph g(%x: f32[1,2]) ann {\n  %y = relu(%x ~XYZ) : f32[1,2]\n}\n", "unknown edge kind"),
    ("graph g(%x: f32[1,2]) ann {\n  %y = relu(%x) f32[1,2]\n}\n", "expected ':'"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ParseError, match=message):
        parse(text, source="case.snnc")


def _edited(g, change):
    b = g.edit()
    change(b)
    return b.build(check=False)


@pytest.mark.parametrize("change, message", [
    # the edited node itself
    (lambda b: b.replace_node(Node("conv1", "conv2d", b.nodes["conv1"].attrs, (1, 4, 9, 8),
                                   b.nodes["conv1"].params)),
     r"node 'conv1' \(op conv2d\) records shape \[1, 4, 9, 8\]"),
    # an unchanged reader of a node whose shape changed (conv1 itself is consistent)
    (lambda b: b.replace_node(Node("conv1", "conv2d", b.nodes["conv1"].attrs.set(out=5),
                                   (1, 5, 8, 8), b.nodes["conv1"].params)),
     r"node 'relu1' \(op relu\) records shape \[1, 4, 8, 8\] but its inputs give \[1, 5, 8, 8\]"),
    # an unchanged node whose input edge now comes from a node of another shape
    (lambda b: (b.add(Node("x2", "input", shape=(1, 3, 8, 8))),
                b.replace_edge(b.inputs_of("relu1")[0], Edge("x2", "relu1", 0))),
     r"node 'relu1' \(op relu\) records shape \[1, 4, 8, 8\] but its inputs give \[1, 3, 8, 8\]"),
])
def test_verifier_rechecks_what_an_edit_changed(change, message):
    """A graph derived from a verified one re-runs the shape rules of the nodes whose node,
    input edges or input shapes changed (compiler/core/verify.py): each break is found."""
    g = verify(parse(BASIC))
    with pytest.raises(VerifyError, match=message):
        verify(_edited(g, change))


def _insert_after(b, layer, name, node):
    """Put `node` (fed by `layer`) between `layer` and its readers, as bn-to-bntt's identity
    norms are put."""
    for e in b.users(layer):
        b.replace_edge(e, e.moved(src=name) if e.projection is None else e.moved(projection=name))
    b.add(node, [layer])


@pytest.mark.parametrize("shape, message", [
    ((1, 4, 8, 8), None),  # the readers' values keep their shape: their facts stand
    ((1, 4, 8, 8, 1), r"node 'x_id' \(op identity\) records shape \[1, 4, 8, 8, 1\]"),
])
def test_verifier_compares_renamed_values_by_shape(shape, message):
    """A reader whose value now comes from another node of the same shape keeps its shape
    fact (compiler/core/verify.py `_same_inputs`); the check with the prior facts and the
    check from scratch agree, on a pass and on a break (docs/ir.md)."""
    import dataclasses

    g = verify(parse(BASIC))
    derived = _edited(g, lambda b: _insert_after(b, "x", "x_id", Node("x_id", "identity",
                                                                       shape=shape)))
    assert "prior" in derived._index
    scratch = dataclasses.replace(derived)
    assert "prior" not in scratch._index
    if message is None:
        assert verify(derived) is derived and verify(scratch) == derived
        return
    errors = []
    for h in (derived, scratch):
        with pytest.raises(VerifyError, match=message) as err:
            verify(h)
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_verifier_rechecks_a_reader_of_a_renamed_value_of_another_shape():
    """The inserted node is consistent, its reader is not: found with the prior facts as
    from scratch (the shape rule of every reader whose value changed shape runs again)."""
    import dataclasses

    g = verify(parse(BASIC))
    derived = _edited(g, lambda b: _insert_after(
        b, "conv1", "pool", Node("pool", "avgpool", Attrs({"k": 2}), (1, 4, 4, 4))))
    errors = []
    for h in (derived, dataclasses.replace(derived)):
        with pytest.raises(VerifyError, match=r"node 'relu1' \(op relu\) records shape "
                                              r"\[1, 4, 8, 8\] but its inputs give "
                                              r"\[1, 4, 4, 4\]") as err:
            verify(h)
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_verifier_keeps_the_facts_of_an_equal_copy_of_a_node():
    """A node a pass made again, equal to the one before (same op, attrs, shape, params),
    keeps its shape fact like the node itself; one with other attrs is checked again."""
    import dataclasses

    g = verify(parse(BASIC))
    conv1 = g.node("conv1")
    same = _edited(g, lambda b: b.replace_node(Node("conv1", "conv2d", conv1.attrs.set(),
                                                    conv1.shape, conv1.params)))
    assert same.node("conv1") is not conv1 and same.node("conv1") == conv1
    assert verify(same) is same and verify(dataclasses.replace(same)) == same
    other = _edited(g, lambda b: b.replace_node(Node("conv1", "conv2d", conv1.attrs.set(k=1),
                                                     conv1.shape, conv1.params)))
    for h in (other, dataclasses.replace(other)):
        with pytest.raises(VerifyError, match=r"node 'conv1' \(op conv2d\) records shape "
                                              r"\[1, 4, 8, 8\] but its inputs give "
                                              r"\[1, 4, 10, 10\]"):
            verify(h)


def test_derived_graphs_verify_like_fresh_ones():
    """with_attrs / with_params / an unchanged edit of a verified graph pass; so does the same
    graph verified from scratch."""
    import dataclasses

    g = verify(parse(SNN))
    for d in (g.with_attrs(timesteps=8), g.with_params(None), _edited(g, lambda b: None)):
        assert "prior" in d._index
        assert verify(d) is d and "prior" not in d._index
        assert verify(dataclasses.replace(d)) == d


def test_sanitize_shortcut_equals_the_rule():
    """`sanitize` returns ASCII module paths with their dots made "_" without the regex; on
    names of every kind (dots, slashes, %, leading/trailing "_" or ".", digits first, spaces,
    non-ASCII) it must give what the rule gives (strip "/%", non-word characters to "_",
    strip "_", "node" if empty, "n" before a leading digit)."""
    import re

    from snnc.compiler.core.ir import sanitize

    def rule(name):
        out = re.sub(r"\W", "_", name.strip("/%")).strip("_") or "node"
        return "n" + out if out[0].isdigit() else out

    names = ["features.denseblock1.denselayer1.conv1", "layer1.0.conv1", "fc", "_x", "x_",
             ".x", "x.", "x..y", "0.conv", "conv.0", "/layer1/conv/Conv", "%x", "a b", "",
             "_", "...", "é.conv", "conv.é", "a-b.c", "A1.B2", "x__y", "1", "a.1", "Ωmega"]
    for name in names:
        assert sanitize(name) == rule(name), name


def test_builder_answers_node_lookups_as_the_graph_does():
    """`GraphBuilder.node` gives the node a pass is editing, and for a missing name the same
    VerifyError as `Graph.node` (passes ask their builder: docs/ir.md)."""
    import pytest

    from snnc.compiler.core.errors import VerifyError
    from snnc.compiler.core.ir import GraphBuilder, Node

    b = GraphBuilder("g")
    b.add(Node("x", "input", shape=(1, 4)))
    b.add(Node("r", "relu", shape=(1, 4)), ["x"])
    b.outputs = ["r"]
    g = b.build()
    e = g.edit()
    assert e.node("r") is g.node("r")
    for who in (g, e):
        with pytest.raises(VerifyError, match="graph 'g' has no node 'nope'"):
            who.node("nope")


@pytest.mark.parametrize("make, changes", [
    (lambda: Edge("a", "b", 1), {"port": 2}),
    (lambda: Edge("a", "b", 0, EdgeKind.DSC, 3, "p", Payload.GRADED, Attrs({"fraction": 0.5})),
     {"projection": None}),
    (lambda: Node("c", "conv2d", Attrs({"k": (3, 3)}), (1, 4, 8, 8), ("c.weight",)),
     {"shape": (1, 4, 4, 4)}),
    (lambda: Node("x", "input"), {"op": "lif"}),
])
def test_edges_and_nodes_are_the_frozen_dataclasses_they_were(make, changes):
    """Edge and Node build themselves as an unfrozen twin class (ir.py `_twin`): what comes out
    is the frozen dataclass, field by field as the dataclass's own __init__ would set it."""
    obj = make()
    cls = type(obj)
    assert cls in (Edge, Node) and dataclasses.is_dataclass(obj)
    want = {f.name: getattr(obj, f.name) for f in dataclasses.fields(cls) if f.init}
    assert dataclasses.asdict(obj) == {**want, **({"_hash": None} if cls is Edge else {})}
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, next(iter(want)), "z")
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):  # frozen slots dataclass
        obj.__class__ = object
    other = dataclasses.replace(obj, **changes)
    assert type(other) is cls and other != obj
    assert dataclasses.replace(other, **{k: want[k] for k in changes}) == obj
    again = pickle.loads(pickle.dumps(obj))
    assert type(again) is cls and again == obj and hash(again) == hash(obj)
    assert copy.deepcopy(obj) == obj and repr(obj).startswith(cls.__name__ + "(")
    if cls is Edge:
        assert obj.moved(payload=None) == dataclasses.replace(obj, payload=None)


def test_verifier_takes_a_shape_fact_only_for_its_own_node_and_input_shapes():
    """A front end that ran a node's shape rule leaves the fact (node, input shapes) under
    `_index["facts"]` (compiler/core/verify.py); `verify` skips that rule only for the very
    node object with inputs of exactly those shapes (a rule is a function of the node and
    its inputs' shapes), and runs it everywhere else."""
    import dataclasses

    def broken():  # relu2 (the output) records a shape its input does not give
        g = parse(BASIC)
        b = g.edit()
        relu2 = b.nodes["relu2"]
        b.replace_node(Node("relu2", "relu", relu2.attrs, (1, 4, 9, 8)))
        return b.build(check=False)

    g = broken()
    relu2, given = g.node("relu2"), [(1, 4, 8, 8)]
    message = r"node 'relu2' \(op relu\) records shape \[1, 4, 9, 8\] but its inputs give"
    for fact in [(dataclasses.replace(relu2), given),  # an equal node, not this one
                 (relu2, [(1, 4, 9, 8)]),  # other input shapes
                 (relu2, [])]:
        h = broken()
        h._index["facts"] = {"relu2": (h.node("relu2") if fact[0] is relu2 else fact[0],
                                       fact[1])}
        with pytest.raises(VerifyError, match=message):
            verify(h)
    # the fact is taken (it is its maker's word: the front end ran the rule itself)
    h = broken()
    h._index["facts"] = {"relu2": (h.node("relu2"), given)}
    assert verify(h) is h and "facts" not in h._index
    # a derived graph keeps the facts of an unverified one, and drops them once verified
    g = parse(BASIC)
    g._index["facts"] = {"relu1": (g.node("relu1"), given)}
    assert g.with_attrs(x=1)._index["facts"] is g._index["facts"]
    verify(g)
    assert "facts" not in g._index and "facts" not in g.with_attrs(x=1)._index


def test_add_inferred_gives_the_rules_shape_and_leaves_its_fact():
    """`GraphBuilder.add_inferred` adds the node with the shape its rule gives on the shapes
    passed (the rule's error propagates) and leaves (node, shapes) for the verifier on the
    graph it builds; both front ends build through it (docs/passes.md "Facts the verifier
    takes")."""
    from snnc.compiler.core.errors import ShapeMismatch
    from snnc.compiler.core.ir import deferred_verify
    from snnc.compiler.frontends.fx import from_torch
    from snnc.models import get

    b = GraphBuilder("g")
    b.add(Node("x", "input", shape=(1, 4, 8, 8)))
    r = b.add_inferred(Node("r", "relu", shape=(9,)), ["x"], [(1, 4, 8, 8)])
    assert r.shape == (1, 4, 8, 8) and b.nodes["r"] is r
    with pytest.raises(ShapeMismatch):
        b.add_inferred(Node("a", "add"), ["x", "r"], [(1, 4, 8, 8), (1, 3, 8, 8)])
    b.outputs = ["r"]
    g = b.build(check=False)
    assert g._index["facts"] == {"r": (r, [(1, 4, 8, 8)])} and verify(g) is g
    with deferred_verify():
        h = from_torch(get("resnet20").eval())
    facts = h._index["facts"]
    assert all(facts[n.name][0] is n for n in h.nodes if n.op != "input")
