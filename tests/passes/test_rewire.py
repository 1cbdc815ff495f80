"""`rewire_all` (passes/_common.py) gives exactly what `rewire_readers` called once per rename
gives: the same edges at the same positions, and the same outputs."""

from __future__ import annotations

import itertools

from snnc.compiler.core.ir import Edge, EdgeKind, GraphBuilder, Payload
from snnc.passes._common import rewire_all, rewire_readers

G = Payload.GRADED


def _edges() -> list[Edge]:
    return [
        Edge("a", "b", 0, payload=G),  # plain reader of a renamed node
        Edge("a", "c", 0),
        Edge("b", "c", 1, payload=G),
        Edge("x", "d", 0),  # not renamed
        Edge("a", "d", 1, EdgeKind.S2M, 2, projection="p", payload=G),  # source renamed
        Edge("x", "e", 0, EdgeKind.S2S, 2, projection="a", payload=G),  # projection renamed
        Edge("a", "e", 1, EdgeKind.S2M, 3, projection="b", payload=G),  # both renamed
        Edge("b", "f", 0, EdgeKind.S2M, 2, projection="a", payload=G),  # both, the other way
        Edge("a", "f", 1, EdgeKind.V2V, 2, projection="a", payload=G),  # source = projection
        Edge("b", "s", 0, payload=G),  # into a skipped node
    ]


def _builder() -> GraphBuilder:
    b = GraphBuilder("g")
    b.edges = _edges()
    b.outputs = ["a", "x", "b"]
    return b


def test_rewire_all_is_rewire_readers_in_order():
    for order in itertools.permutations(["a", "b"]):
        renames = {old: f"{old}_new" for old in order}
        one = _builder()
        for old, new in renames.items():
            rewire_readers(one, old, new, skip={"s"})
        many = _builder()
        rewire_all(many, renames, skip={"s"})
        assert list(many.edges) == list(one.edges)
        assert [(e.src, e.projection, e.payload) for e in many.edges] == \
            [(e.src, e.projection, e.payload) for e in one.edges]
        assert many.outputs == one.outputs == ["a_new", "x", "b_new"]
        # the builder's index follows: readers of the new names are found
        assert {e.dst for e in many.users("a_new")} == {e.dst for e in one.users("a_new")}


def test_rewire_all_without_renames_changes_nothing():
    b = _builder()
    rewire_all(b, {}, skip=set())
    assert list(b.edges) == _edges() and b.outputs == ["a", "x", "b"]
