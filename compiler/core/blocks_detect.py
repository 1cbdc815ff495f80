"""Reading blocks: the main path, skip annotation, block detection (paper 1 sec. III, eq. 1).

The *main path* is the longest path from an input to an output through non-skip edges, by
number of weighted layers (conv2d/linear), ties broken by node count and then by the most
recent predecessor (the newest input of a DenseNet concat). Every other input of an add or
concat on it is a skip. The *spine* is the set of nodes that dominate the output
(networkx.immediate_dominators); main-path layers off the spine lie inside a region with merges,
which is one block; runs of spine layers form sequential blocks. See docs/blocks.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.compiler.core.ir import SKIP_KINDS, WEIGHTED_OPS, Edge, EdgeKind, Graph

MERGE_OPS = frozenset({"add", "concat"})
ACTIVATIONS = frozenset({"relu", "clip", "lif"})
# ops that keep the channel layout and may sit between two layers of one block
ELEMENTWISE = frozenset({"batchnorm", "bntt", "relu", "clip", "lif", "dropout", "identity"})
PRE_ACTIVATION = frozenset({"batchnorm", "bntt", "dropout", "identity"})
_ROOT, _SINK = "\x00root", "\x00sink"


@dataclass(frozen=True, eq=False)
class MainPath:
    """The main path of a graph: its nodes in order and the edge entering each one."""

    nodes: tuple[str, ...]
    entry: dict[str, Edge | None]
    pos: dict[str, int]
    weighted: dict[str, int]  # number of weighted layers on the path up to and including node


def main_path(g: Graph) -> MainPath:
    """The longest input->output path over non-skip edges (see the module docstring)."""
    best: dict[str, tuple[int, int, int]] = {}
    entry: dict[str, Edge | None] = {}
    ins_of = g._idx()["ins"]  # read only: `g.inputs_of` would copy each list
    position = {n.name: i for i, n in enumerate(g.nodes)}  # g.position, one dict lookup
    for n in g.nodes:
        w = 1 if n.op in WEIGHTED_OPS else 0
        if n.op == "input":
            best[n.name], entry[n.name] = (w, 1, -1), None
            continue
        # the first input with the largest (weighted layers, nodes, position of the source):
        # max() over the candidates, without a key call per input (a DenseNet concat has
        # dozens)
        top = e = None
        for cand in ins_of[n.name]:
            if cand.kind in SKIP_KINDS:
                continue
            b = best.get(cand.src)
            if b is None:
                continue
            key = (b[0], b[1], position[cand.src])
            if top is None or key > top:
                top, e = key, cand
        if top is None:
            continue  # reached only through skip edges: a projection, not on the main path
        best[n.name], entry[n.name] = (top[0] + w, top[1] + 1, top[2]), e
    ends = [o for o in g.outputs if o in best]
    if not ends:
        return MainPath((), {}, {}, {})
    node = max(ends, key=lambda o: (best[o][0], best[o][1], position[o]))
    path = [node]
    while entry[path[-1]] is not None:
        path.append(entry[path[-1]].src)
    path.reverse()
    weighted, count = {}, 0
    for name in path:
        count += g.node(name).op in WEIGHTED_OPS
        weighted[name] = count
    return MainPath(tuple(path), {n: entry[n] for n in path}, {n: i for i, n in enumerate(path)},
                    weighted)


def immediate_dominators(order: list[str], preds: dict[str, list[str]]) -> dict[str, str]:
    """Immediate dominators in a DAG whose nodes `order` are topologically sorted, the first
    being the root (Cooper, Harvey and Kennedy's intersection on topological numbers: one
    pass suffices in a DAG). Nodes the root does not reach get no entry."""
    pos = {n: i for i, n in enumerate(order)}
    idom = {order[0]: order[0]}
    for n in order[1:]:
        new = None
        for p in preds.get(n, ()):
            if p not in idom:
                continue
            if new is None:
                new = p
                continue
            a, b = p, new
            while a != b:
                while pos[a] > pos[b]:
                    a = idom[a]
                while pos[b] > pos[a]:
                    b = idom[b]
            new = a
        if new is not None:
            idom[n] = new
    return idom


def spine(g: Graph) -> set[str]:
    """The nodes every input->output path passes through (dominators of the outputs)."""
    preds: dict[str, list[str]] = {n.name: [] for n in g.nodes}
    for n in g.nodes:
        if n.op == "input":
            preds[n.name].append(_ROOT)
    for e in g.edges:
        preds[e.dst].append(e.value_src)
    preds[_SINK] = list(g.outputs)
    idom = immediate_dominators([_ROOT, *(n.name for n in g.nodes), _SINK], preds)
    out, node = set(), _SINK
    while node != _ROOT and node in idom:
        node = idom[node]
        out.add(node)
    return out - {_ROOT}


def _skip_source(g: Graph, mp: MainPath, value: str) -> tuple[str, str | None] | None:
    """(source on the main path, projection or None) of a value feeding a merge."""
    node = value
    while node not in mp.pos:
        ins = g.inputs_of(node)
        if not ins:
            return None
        node = ins[0].src
    return node, (None if node == value else value)


def annotate_skips(g: Graph) -> Graph:
    """Mark each skip port of an add/concat on the main path as ASC/DSC (see docs/blocks.md).

    src = the skip's source on the main path, projection = the node delivering the value when
    the skip path has nodes, hops = weighted layers on the main path between source and merge.
    Inputs with hops 0 stay DATA. Already annotated edges are kept, so the function is
    idempotent. Returns a new verified graph (the same graph when nothing changes).
    A graph this function returned is remembered as annotated (graphs never change), so that
    the pipeline's annotate-skips on the graph `import_ann` annotated costs nothing.
    """
    if g._index.get("skips_annotated"):
        return g
    mp = main_path(g)
    changes: list[tuple[Edge, Edge]] = []
    ins_of, by_name = g._idx()["ins"], g._by_name()
    sources: dict[str, tuple[str, str | None] | None] = {}  # `_skip_source`, per value: a
    for name in mp.nodes:  # DenseNet layer's output enters every later concat of its block
        node = by_name[name]
        if node.op not in MERGE_OPS:
            continue
        main_edge = mp.entry[name]
        for e in ins_of[name]:
            if e is main_edge or e.kind is not EdgeKind.DATA:
                continue
            found = sources.get(e.src, sources)
            if found is sources:
                found = sources[e.src] = _skip_source(g, mp, e.src)
            if found is None:
                continue
            src, proj = found
            hops = mp.weighted[name] - mp.weighted[src]
            if hops < 1:
                continue
            kind = EdgeKind.ASC if node.op == "add" else EdgeKind.DSC
            changes.append((e, Edge(src, name, e.port, kind, hops, proj, e.payload, e.attrs)))
    if not changes:
        g._index["skips_annotated"] = True
        return g
    # Only edges change, each in place, and each new one (from an ancestor of the old
    # source, through it as the projection) keeps the node order topological: the graph is
    # `g` with these edges (`Graph.with_edges`), not an edit and a rebuild. On densenet121
    # 535 concat inputs become DSC edges: re-indexing each one cost ~3 ms of a ~90 ms import.
    new = {id(old): e for old, e in changes}
    out = g.with_edges([new.get(id(e), e) for e in g.edges])
    out._index["skips_annotated"] = True
    return out


@dataclass(frozen=True, eq=False)
class Block:
    """One block of paper 1: vertices 0 (input), 1..d_b (layers), d_b+1 (output).

    `matrix[i, j]` (row = source, column = destination) is 0 (none), 1 (DSC) or 2 (ASC, or a
    spiking residual in SNN form) for j >= i+2; `kinds[(i, j)]` is the EdgeKind of an ASC-type
    entry (ASC, or S2M/S2S/V2V), reported as None for a plain ASC; `fractions[(i, j)]` the
    channel fraction of a DSC entry; `edges[(i, j)]` the edge realising each entry.
    `foreign` lists skip edges that end in the block but cannot be written in its matrix.
    """

    index: int
    name: str
    kind: str
    input: str
    output: str
    layers: tuple[str, ...]
    matrix: np.ndarray = field(repr=False)
    kinds: dict[tuple[int, int], EdgeKind | None] = field(default_factory=dict, repr=False)
    fractions: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)
    edges: dict[tuple[int, int], Edge] = field(default_factory=dict, repr=False)
    foreign: tuple[Edge, ...] = field(default=(), repr=False)
    geometry: Any = field(default=None, repr=False, compare=False)

    @property
    def d_b(self) -> int:
        """Depth of the block: its number of weighted layers."""
        return len(self.layers)

    def n_skip(self, j: int) -> int:
        """Number of skips into vertex j (paper 1's n_skip,j)."""
        return int(np.count_nonzero(self.matrix[:, j]))

    @staticmethod
    def capacity(j: int) -> int:
        """How many skips vertex j can receive: from vertices 0..j-2 (layer 4 -> 3)."""
        return max(0, j - 1)

    def writable(self) -> list[tuple[int, int]]:
        """The writable entries (i, j), j >= i + 2, in row-major order."""
        n = self.d_b + 2
        return [(i, j) for i in range(n) for j in range(i + 2, n)]


@dataclass(frozen=True, eq=False)
class Geometry:
    """Where a block's vertices live on the main path (used to read and to write it)."""

    input: str
    layers: tuple[str, ...]
    segments: tuple[tuple[str, ...], ...]  # segments[k]: main-path nodes between vertex k, k+1
    tail: tuple[str, ...]                  # main-path nodes after the last layer

    def src_node(self, g: Graph, i: int) -> str:
        """The node whose output is vertex i's value (before any merge joining vertex i+1)."""
        if i == 0:
            return self.input
        last = self.layers[i - 1]
        for name in (self.segments[i] if i < len(self.layers) else self.tail):
            if g.node(name).op in MERGE_OPS:
                break
            last = name
        return last

    def join(self, j: int) -> tuple[str, ...]:
        """The main-path nodes where skips into vertex j attach."""
        return self.tail if j == len(self.layers) + 1 else self.segments[j - 1]

    def vertex_of_src(self, name: str) -> int | None:
        if name == self.input or name in self.segments[0]:
            return 0
        for i, layer in enumerate(self.layers, 1):
            if name == layer or name in (self.segments[i] if i < len(self.layers) else ()):
                return i
        return len(self.layers) if name in self.tail else None

    def vertex_of_dst(self, name: str) -> int | None:
        for j in range(2, len(self.layers) + 2):
            if name in self.join(j):
                return j
        return None


def geometry(g: Graph, mp: MainPath, input: str, layers: tuple[str, ...]) -> Geometry | None:
    """The geometry of the block (input, layers) on main path `mp`, or None if not on it."""
    names = (input, *layers)
    if any(n not in mp.pos for n in names):
        return None
    pos = [mp.pos[n] for n in names]
    if pos != sorted(pos) or len(set(pos)) != len(pos):
        return None
    segs = tuple(mp.nodes[pos[k] + 1:pos[k + 1]] for k in range(len(layers)))
    tail: list[str] = []
    for name in mp.nodes[pos[-1] + 1:]:
        op = g.node(name).op
        if op not in ELEMENTWISE and op not in MERGE_OPS:
            break
        tail.append(name)
    return Geometry(input, tuple(layers), segs, tuple(tail))


def is_merge(g: Graph, name: str) -> bool:
    """An add/concat, or a lif with membrane (S2M/V2V) inputs."""
    node = g.node(name)
    if node.op in MERGE_OPS:
        return True
    return node.op == "lif" and any(e.port > 0 for e in g.inputs_of(name))


def output_node(g: Graph, geo: Geometry) -> str:
    """Vertex d_b+1: the last merge after the last layer, else the last pre-activation node."""
    merges = [n for n in geo.tail if is_merge(g, n)]
    if merges:
        return merges[-1]
    out = geo.layers[-1]
    for name in geo.tail:
        if g.node(name).op not in PRE_ACTIVATION:
            break
        out = name
    return out
