"""Properties of the IR over generated graphs (tests/strategies.py): round trips, annotation,
and the block matrix API (paper 1 eq. 1; docs/design.md "Blocks and adjacency matrices")."""

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from snnc.compiler.blocks import annotate_skips, find_blocks, set_block
from snnc.compiler.blocks_write import skip_target_shape
from snnc.compiler.errors import SnncError
from snnc.compiler.interpret import interpret
from snnc.compiler.serialize import from_json, to_json
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify
from tests.strategies import adjacency_matrices, ann_graphs

FAST = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
# refusals set_block documents (a DSC that would change channels an add / grouped conv needs)
REFUSED = ("needs them unchanged", "grouped conv", "would upsample", "graph output")


@FAST
@given(ann_graphs(max_blocks=3))
def test_round_trips_and_annotation(g):
    verify(g)
    a = annotate_skips(g)
    verify(a)
    assert annotate_skips(a) == a
    for h in (g, a):
        assert parse(print_ir(h)) == h
        assert from_json(to_json(h)) == h
    assert a.same_params(g)  # annotation never touches weights


@FAST
@given(ann_graphs(max_blocks=3))
def test_graph_lookups_read_the_edges(g):
    """`inputs_of` (each node's input edges by port) and `users` (the edges reading a node's
    output as source or as projection, in edge order; an edge whose projection is its source
    twice) read the edges, whichever is asked first: the readers are indexed apart from the
    inputs, at the first `users` call (compiler/core/ir.py). Plain and skip-annotated graphs,
    fresh and verified (the verifier indexes the inputs only)."""
    def readers(h, name):
        return [e for e in h.edges for _ in range((e.src == name) + (e.projection == name))]

    a = annotate_skips(g)
    for h in (g, a, verify(from_json(to_json(a)))):
        for name in (n.name for n in h.nodes):
            assert h.users(name) == readers(h, name)
            assert h.inputs_of(name) == sorted((e for e in h.edges if e.dst == name),
                                               key=lambda e: e.port)


@FAST
@given(ann_graphs(max_blocks=3, with_params=False), st.data())
def test_write_then_read_gives_the_matrix_back(g, data):
    blocks = find_blocks(g)
    assume(blocks)
    idx = data.draw(st.integers(0, len(blocks) - 1))
    a = data.draw(adjacency_matrices(blocks[idx].d_b))
    try:
        g2 = set_block(g, idx, a, blocks=blocks)
    except SnncError as err:
        assume(not any(r in str(err) for r in REFUSED))
        raise
    b2 = find_blocks(g2)
    assert [b.layers for b in b2] == [b.layers for b in blocks]
    assert (b2[idx].matrix == a).all()
    for k, b in enumerate(blocks):
        if k != idx:
            assert (b2[k].matrix == b.matrix).all()
    assert parse(print_ir(g2)) == g2 and from_json(to_json(g2)) == g2
    assert annotate_skips(g2) == g2


@FAST
@given(ann_graphs(max_blocks=3), st.data())
def test_zero_init_keeps_the_function(g, data):
    """Added DSC entries (zero input weights) and added ASC entries that need a projection
    (zero weights) keep the output; existing entries are kept (docs/design.md 'Blocks')."""
    blocks = find_blocks(g)
    assume(blocks)
    idx = data.draw(st.integers(0, len(blocks) - 1))
    blk = blocks[idx]
    a = blk.matrix.copy()
    geo = blk.geometry
    for i, j in blk.writable():
        if a[i, j]:
            continue
        src = g.node(geo.src_node(g, i)).shape
        # the value an ASC into j is added to (before a dense block's concat, not the concat)
        dst = skip_target_shape(g, blk, j)
        choices = (0, 1, 2) if tuple(src) != tuple(dst) else (0, 1)
        a[i, j] = data.draw(st.sampled_from(choices))
    try:
        g2 = set_block(g, idx, a, blocks=blocks)
    except SnncError as err:
        assume(not any(r in str(err) for r in REFUSED))
        raise
    x = torch.randn(2, *g.input_nodes()[0].shape[1:], generator=torch.Generator().manual_seed(0))
    want = interpret(g, x)
    torch.testing.assert_close(interpret(g2, x), want, rtol=1e-4,
                               atol=1e-4 * float(want.abs().max()))
    assert (find_blocks(g2)[idx].matrix == a).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.data())
def test_adjacency_matrices_are_upper_beyond_the_main_path(d, data):
    a = data.draw(adjacency_matrices(d))
    assert a.shape == (d + 2, d + 2)
    assert not np.tril(a, k=1).any()  # j >= i + 2 only (paper 1: no backward connections)
    assert set(np.unique(a)) <= {0, 1, 2}


def _preact_dense_block():
    """The counterexample hypothesis found: stem, one pre-activation dense block of 2 layers
    (growth 2, width 2), head. Vertex 3 (b0_l2_conv1) has the value b0_l2_relu2 [1,2,8,8]; the
    block output is the concat b0_out [1,6,8,8]."""
    from tests.strategies import NetBuilder

    net = NetBuilder("g0", seed=0)
    net.conv("stem_conv", 2, 3)
    net.bn("stem_bn")
    net.relu("stem_relu")
    net.dense("b0", layers=2, growth=2, width=2)
    net.head(2)
    return net.build()


def test_zero_init_counterexample_preact_dense_block():
    """Explicit case (found by test_zero_init_keeps_the_function): in a dense block an ASC into
    the block output joins the last layer's value *before* the concat (docs/blocks.md "Writing
    a matrix": per vertex main -> add (ASC) -> concat (DSC)), so its target is [1,2,8,8], not the
    concat's [1,6,8,8]. The test's oracle read the concat's shape and took a_35 = 2 for a
    zero-initialised projection; it is an identity skip, which changes the function."""
    g = _preact_dense_block()
    (blk,) = find_blocks(g)
    out = blk.d_b + 1
    assert blk.kind == "dense" and out == 5
    assert skip_target_shape(g, blk, out) == (1, 2, 8, 8)
    assert g.node(blk.output).shape == (1, 6, 8, 8)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    want = interpret(g, x)
    # Zero-initialised additions keep the function: DSC (zero input weights) into the output.
    a = blk.matrix.copy()
    a[1, 5] = a[3, 5] = 1
    g_dsc = set_block(g, 0, a, blocks=[blk])
    torch.testing.assert_close(interpret(g_dsc, x), want, rtol=1e-4,
                               atol=1e-4 * float(want.abs().max()))
    # The identity ASC a_35 = 2: no projection (same shape), and the function changes.
    a = blk.matrix.copy()
    a[3, 5] = 2
    g_asc = set_block(g, 0, a, blocks=[blk])
    (edge,) = [e for e in g_asc.edges if e.kind.value == "ASC"]
    assert edge.projection is None and edge.src == "b0_l2_relu2"
    assert not torch.allclose(interpret(g_asc, x), want)


def _index_of(edges):
    """A builder edge list's index, empty lists left out, order kept (what `inputs_of`,
    `users` and `remove` read)."""
    return ({k: v for k, v in edges.by_dst.items() if v},
            {k: v for k, v in edges.by_src.items() if v}, edges.pos)


def _fresh_index(edges):
    """The index a fresh builder of `edges` has: each list in list order."""
    by_dst, by_src = {}, {}
    for e in edges:
        by_dst.setdefault(e.dst, []).append(e)
        by_src.setdefault(e.src, []).append(e)
        if e.projection is not None and e.projection != e.src:
            by_src.setdefault(e.projection, []).append(e)
    return by_dst, by_src, {e: i for i, e in enumerate(edges)}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["append", "remove", "replace", "sort", "slice"]),
                          st.integers(0, 10 ** 6)), max_size=40))
def test_handed_over_index_is_a_fresh_one(ops):
    """The index a builder's edge list hands to the next pass (`_EdgeList.indexed_copy`,
    GraphBuilder.from_graph) is the one a fresh list of the same edges gets, list by list and
    in order, whatever appends, removals, replacements and sorts came before; and an index
    made at its first use is the one kept up to date from the start (docs/ir.md "Graph")."""
    from snnc.compiler.core.errors import VerifyError
    from snnc.compiler.core.ir import Edge, EdgeKind, _EdgeList

    names = "abcdef"
    start = [Edge(s, d, 0) for s, d in ("ab", "bc", "cd")]
    lazy, eager = _EdgeList(start), _EdgeList(start)
    assert eager.by_dst  # made now, kept up to date by every change below
    made = 0
    for op, r in ops:
        made += 1
        for edges in (lazy, eager):
            if op == "append" or not edges:
                s, d = names[r % 6], names[(r // 6) % 6]
                p = names[(r // 36) % 6] if r % 3 == 0 else None
                try:  # an edge already there is refused
                    edges.append(Edge(s, d, made % 4, EdgeKind.DSC if p else EdgeKind.DATA, 1,
                                      p))
                except VerifyError:
                    pass
            elif op == "remove":
                edges.remove(edges[r % len(edges)])
            elif op == "replace":
                e = edges[r % len(edges)]
                try:  # a replacement equal to another edge is refused, the list left as it was
                    edges[r % len(edges)] = e.moved(src=names[r % 6])
                except VerifyError:
                    pass
            elif op == "sort":
                edges.sort(key=lambda e: (e.dst, e.port))
            else:
                edges[:1] = []
                if edges is eager:
                    assert eager.by_dst is not None  # made again at once
        assert list(lazy) == list(eager)
        for edges in (lazy, eager):
            copy = edges.indexed_copy()
            assert list(copy) == list(edges)
            assert _index_of(copy) == _fresh_index(list(edges))
    assert _index_of(lazy) == _index_of(eager)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_build_order_is_kahns_smallest_first(data):
    """`build()` sorts the nodes topologically, inputs first, then the existing order among
    the nodes ready (docs/ir.md "Graph"): each step takes the smallest such node, whatever
    edges repeat (two ports of one source, a projection that is also the source)."""
    from snnc.compiler.core.ir import Edge, EdgeKind, Node, _toposort

    n = data.draw(st.integers(1, 9))
    rank = data.draw(st.permutations(range(n)))  # a hidden topological order
    nodes = {f"n{i}": Node(f"n{i}", "input" if data.draw(st.booleans()) and i % 3 == 0
                           else "relu") for i in range(n)}
    names = list(nodes)
    edges = []
    for port in range(data.draw(st.integers(0, 14))):
        a, b = data.draw(st.sampled_from(names)), data.draw(st.sampled_from(names))
        if rank[int(a[1:])] > rank[int(b[1:])]:
            a, b = b, a
        proj = a if data.draw(st.booleans()) else None
        edges.append(Edge(a, b, port, EdgeKind.DSC if proj else EdgeKind.DATA, 1, proj))
    preds = {m: {e.src for e in edges if e.dst == m and e.src != m} for m in names}
    key = {m: (nodes[m].op != "input", i) for i, m in enumerate(names)}
    want, done = [], set()
    while len(want) < n:
        ready = [m for m in names if m not in done and preds[m] <= done]
        if not ready:
            break
        pick = min(ready, key=key.__getitem__)
        want.append(pick)
        done.add(pick)
    assert len(want) == n  # acyclic by construction (a node reading itself is left alone)
    assert _toposort(nodes, edges, "g")[0] == want


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_build_after_edits_orders_as_the_full_sort(data):
    """A builder made from a built graph sorts by checking only the edges added since
    (`_toposort`'s base and added): after any edits (nodes added, replaced, removed and added
    again, edges added, replaced and removed, the edge list sorted), `build()` gives the
    order the full sort of the same nodes and edges gives, and records the graph as sorted
    exactly when that order is the nodes' own."""
    from snnc.compiler.core.ir import Edge, GraphBuilder, Node, _toposort

    n = data.draw(st.integers(1, 8))
    rank: dict[str, tuple] = {}  # a hidden topological order, kept by every edit
    b = GraphBuilder("g")
    for i in range(n):
        name = f"n{i}"
        rank[name] = (data.draw(st.floats(0, 1)), len(rank))
        b.add(Node(name, "input" if i == 0 or data.draw(st.booleans()) and i % 3 == 0
                   else "relu"))
    names = list(b.nodes)

    def edge(dst_pool):
        a, c = data.draw(st.sampled_from(names)), data.draw(st.sampled_from(dst_pool))
        if rank[a] > rank[c]:
            a, c = c, a
        return a, c

    for _ in range(data.draw(st.integers(0, 10))):
        a, c = edge(names)
        if a != c:
            b.edges.append(Edge(a, c, len(b.edges.by_dst.get(c, ()))))
    g = b.build(check=False)
    fresh = 0
    for _ in range(2):  # a second round edits a graph the first round's build sorted
        b = GraphBuilder.from_graph(g)
        for _ in range(data.draw(st.integers(0, 8))):
            what = data.draw(st.sampled_from(["add", "edge", "drop", "replace", "readd",
                                              "move", "sort"]))
            if what == "add":
                name = f"m{fresh}"
                fresh += 1
                rank[name] = (data.draw(st.floats(0, 1)), len(rank))
                src = [m for m in b.nodes if rank[m] < rank[name]]
                b.add(Node(name, data.draw(st.sampled_from(["relu", "relu", "input"]))),
                      src[:1])
            elif what == "edge" and len(b.nodes) > 1:
                pool = list(b.nodes)
                a, c = data.draw(st.sampled_from(pool)), data.draw(st.sampled_from(pool))
                if rank[a] > rank[c]:
                    a, c = c, a
                if a != c and all(e.src != a or e.dst != c for e in b.edges):
                    b.edges.append(Edge(a, c, 100 + len(b.edges)))
            elif what == "drop" and len(b.edges):
                b.remove_edge(b.edges[data.draw(st.integers(0, len(b.edges) - 1))])
            elif what == "replace":
                name = data.draw(st.sampled_from(list(b.nodes)))
                b.replace_node(Node(name, data.draw(st.sampled_from(["relu", "input"]))))
            elif what == "readd":
                name = data.draw(st.sampled_from(list(b.nodes)))
                if not b.users(name):  # nothing reads it: removed, then added again, last
                    ins = [e.src for e in b.inputs_of(name)]
                    b.remove(name)
                    b.add(Node(name, "relu"), ins)
            elif what == "move":  # the dict edited directly: a node moved last, edges kept
                name = data.draw(st.sampled_from(list(b.nodes)))
                b.nodes[name] = b.nodes.pop(name)
            elif what == "sort":
                b.edges.sort(key=lambda e: (e.dst, e.port))
        want, _ = _toposort(dict(b.nodes), list(b.edges), "g")
        own = list(b.nodes) == want
        g = b.build(check=False)
        assert [m.name for m in g.nodes] == want
        ops = [m.op for m in g.nodes]
        first = ops.index("relu") if "relu" in ops else len(ops)
        assert bool(g._index.get("sorted")) == ("input" not in ops[first:]), (own, ops)
