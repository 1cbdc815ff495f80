"""The snnc IR: a directed acyclic graph of typed nodes, with annotated skip edges.

Nodes and edges are small frozen dataclasses; tensors never live in them. A node names its
parameters (``conv1.weight``) and the graph holds them once in ``Graph.params``, so ``==`` compares
graphs structurally and copying a graph never copies weights. A graph whose ``params`` is ``None``
is *structure only* (for example, parsed from text): every pass accepts it and only skips the
arithmetic on weights.

A change returns a new graph (:meth:`Graph.edit` gives a builder), so no pass or search candidate
edits a graph someone else holds. See docs/ir.md for every op, its attributes and its ports.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import itertools
import math
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from snnc.compiler.core import ops as _ops
from snnc.compiler.core.errors import VerifyError


class EdgeKind(str, enum.Enum):
    """What an edge is: plain data flow, or a skip connection of one of the papers' kinds."""

    DATA = "DATA"
    DSC = "DSC"  # densenet-like skip: one input port of a concat (paper 1)
    ASC = "ASC"  # addition-type skip: one input port of an add (paper 1), ANN form
    S2M = "S2M"  # spikes of layer l-n into layer l's membrane (paper 2 eq. 7)
    S2S = "S2S"  # spikes of layer l-n added to layer l's spikes (paper 2 eq. 10, 13)
    V2V = "V2V"  # input current of layer l-n (+ its own r) into layer l's membrane (eq. 15-16)

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # equal to its value, so hashed as it (and in C, not Python)


SKIP_KINDS = frozenset({EdgeKind.DSC, EdgeKind.ASC, EdgeKind.S2M, EdgeKind.S2S, EdgeKind.V2V})
RESIDUAL_KINDS = frozenset({EdgeKind.S2M, EdgeKind.S2S, EdgeKind.V2V})


class Payload(str, enum.Enum):
    """What travels on an edge in SNN form (docs/design.md "Payload")."""

    BINARY = "binary"  # spikes, values in {0, 1}
    COUNT = "count"  # small non-negative integers, e.g. the output of an S2S add
    GRADED = "graded"  # real values: currents, projections, direct input, average pools

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # equal to its value, so hashed as it (and in C, not Python)


class Form(str, enum.Enum):
    """ANN form (as imported) or SNN form (after the conversion passes)."""

    ANN = "ann"
    SNN = "snn"

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # equal to its value, so hashed as it (and in C, not Python)


# From the op table (compiler/core/ops.py).
SPIKING_OPS = _ops.SPIKING_OPS
WEIGHTED_OPS = _ops.WEIGHTED_OPS

_PLAIN = (bool, int, float, str, type(None), enum.Enum)


_SAFE = frozenset({int, str, bool, type(None)})  # exact types kept as they are, unchecked


def _freeze(value: Any) -> Any:
    """`value` as an attribute value: a plain scalar (floats finite), lists made tuples.
    Every node's attributes pass here, so the common cases (an int or str, a tuple of ints)
    are answered by exact type before the general checks."""
    t = type(value)
    if t in _SAFE or (t is tuple and all(type(v) is int for v in value)):
        return value
    if isinstance(value, _PLAIN):
        if isinstance(value, float) and not math.isfinite(value):
            raise VerifyError(f"attribute value {value!r} is not finite")
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    raise TypeError(f"attribute values must be int, float, str, bool, None, enum or tuples; got "
                    f"{type(value).__name__} {value!r}")


class Attrs(Mapping[str, Any]):
    """A read-only, hashable mapping of plain values (int, float, str, bool, None, enum, tuple).

    Keys keep insertion order for printing; equality ignores order.
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, Any] = {str(k): _freeze(v) for k, v in pairs}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attrs):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Attrs({self._items!r})"

    def __reduce__(self):  # the cached hash is not pickled: str hashes differ per process
        return (Attrs, (self._items,))

    def set(self, **updates: Any) -> Attrs:
        """A copy with `updates` applied (a value of None removes nothing: it is stored)."""
        merged = dict(self._items)
        merged.update(updates)
        return Attrs(merged)

    def without(self, *keys: str) -> Attrs:
        """A copy without `keys`."""
        return Attrs({k: v for k, v in self._items.items() if k not in keys})


EMPTY = Attrs()
_KEEP = object()  # Edge.moved: the field keeps its value


@dataclass(frozen=True, slots=True)
class Edge:
    """One input of a node: `src`'s output feeds input `port` of `dst`.

    For a skip edge, `src` is the skip's source (layer l-n's output) and `projection`, when the
    shape changes, names the node whose output is actually delivered to the port (the last node
    of the projection path, whose first node reads `src`). `attrs` holds per-edge values such
    as the S2M weight (`scale`) or a DSC channel fraction (`fraction`).
    """

    src: str
    dst: str
    port: int
    kind: EdgeKind = EdgeKind.DATA
    hops: int = 1
    projection: str | None = None
    payload: Payload | None = None
    attrs: Attrs = EMPTY
    _hash: int | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __init__(self, src: str, dst: str, port: int, kind: EdgeKind = EdgeKind.DATA,
                 hops: int = 1, projection: str | None = None, payload: Payload | None = None,
                 attrs: Attrs = EMPTY):
        """The dataclass's __init__, written as plain attribute stores: while they run, the
        edge is of class `_EdgeDraft`, Edge's twin without the frozen `__setattr__` (an import
        and the passes make ~3,200 edges on densenet121: ~5,200 instead of ~8,200 instructions
        each, callgrind; see `_twin`)."""
        _set_class(self, _EdgeDraft)
        self.src = src
        self.dst = dst
        self.port = port
        self.kind = kind
        self.hops = hops
        self.projection = projection
        self.payload = payload
        self.attrs = attrs
        self._hash = None
        _set_class(self, Edge)

    def __hash__(self) -> int:
        """Of (src, dst, port) only, cached: equal edges have equal hashes, and within a graph
        no two edges enter the same port of a node (the verifier's rule), so these three tell
        its edges apart. Hashing the kind, payload and attrs too (the last through
        `Attrs.__hash__`, a Python call) cost ~40 % more (callgrind instruction counts), and
        builders hash every edge they are given."""
        h = self._hash
        if h is None:
            h = hash((self.src, self.dst, self.port))
            _set_hash(self, h)  # the slot's own descriptor: Edge's __setattr__ refuses
        return h

    def __eq__(self, other: object) -> bool:
        """The dataclass's field-by-field comparison, after two cheap tests: the same object,
        then the cached hashes (unequal hashes: unequal edges, here ones whose source, reader
        or port differ). The builder removes an edge from its node's edge list with
        `list.remove`, which compares it with those before it, each on another port: a concat
        of 30 inputs, rewired, made this comparison a third of a pass's time."""
        if self is other:
            return True
        if other.__class__ is not Edge:
            return NotImplemented
        if self.__hash__() != other.__hash__():
            return False
        return (self.src, self.dst, self.port, self.kind, self.hops, self.projection,
                self.payload, self.attrs) == (other.src, other.dst, other.port, other.kind,
                                              other.hops, other.projection, other.payload,
                                              other.attrs)

    def __reduce__(self):  # the cached hash is not pickled: str hashes differ per process
        return (Edge, (self.src, self.dst, self.port, self.kind, self.hops, self.projection,
                       self.payload, self.attrs))

    def moved(self, *, src: str | None = None, projection=_KEEP, payload=_KEEP) -> "Edge":
        """This edge with a new `src`, `projection` and/or `payload` (None clears the latter
        two): what ``dataclasses.replace`` gives, at a fifth of its cost (passes rewire every
        reader of a node this way, and annotate-payloads relabels every edge: ~1,600 edges on
        densenet121). Made as `__init__` makes an edge, without the call through `Edge(...)`."""
        new = _new_draft(_EdgeDraft)
        new.src = self.src if src is None else src
        new.dst = self.dst
        new.port = self.port
        new.kind = self.kind
        new.hops = self.hops
        new.projection = self.projection if projection is _KEEP else projection
        new.payload = self.payload if payload is _KEEP else payload
        new.attrs = self.attrs
        new._hash = None
        _set_class(new, Edge)
        return new  # type: ignore[return-value]

    @property
    def is_skip(self) -> bool:
        return self.kind in SKIP_KINDS

    @property
    def value_src(self) -> str:
        """The node whose output reaches the port: the projection if any, else the source."""
        return self.projection if self.projection is not None else self.src


_set_hash = Edge._hash.__set__  # type: ignore[attr-defined]
_set_class = object.__dict__["__class__"].__set__  # `obj.__class__ = cls`, past __setattr__
_new_draft = object.__new__


def _twin(cls: type) -> type:
    """A class of the same slots as frozen dataclass `cls`, without its `__setattr__`: an
    instance of `cls` made an instance of the twin (`_set_class`) takes plain attribute
    stores, which the interpreter does in place; made a `cls` again, it is frozen as before.

    A frozen dataclass's `__init__` stores each field through `object.__setattr__`, and a
    call of the slot descriptor's `__set__` costs about as much: ~70 ns a field, against
    ~15 ns for a plain store (timeit, 2-core dev machine). Python allows the class change
    only between classes of the same layout (same base, same slots in the same order), which
    the twin has by construction; tests/compiler/test_ir.py checks the result is the frozen
    dataclass it was (fields, equality, hash, immutability, pickling)."""
    return type(f"_{cls.__name__}Draft", (), {"__slots__": cls.__slots__})


_EdgeDraft = _twin(Edge)


@dataclass(frozen=True, slots=True)
class Node:
    """A typed node: unique name, op, attributes, per-time-step output shape, parameter keys."""

    name: str
    op: str
    attrs: Attrs = EMPTY
    shape: tuple[int, ...] = ()
    params: tuple[str, ...] = ()

    def __init__(self, name: str, op: str, attrs: Attrs = EMPTY, shape: tuple[int, ...] = (),
                 params: tuple[str, ...] = ()):
        """The dataclass's __init__, as plain attribute stores (as `Edge`'s): an import and the
        passes make a node ~1,000 times on densenet121."""
        _set_class(self, _NodeDraft)
        self.name = name
        self.op = op
        self.attrs = attrs
        self.shape = shape
        self.params = params
        _set_class(self, Node)

    def param(self, role: str) -> str | None:
        """The key of this node's parameter `role` (weight, bias, ...), if it has one."""
        key = f"{self.name}.{role}"
        return key if key in self.params else None


_NodeDraft = _twin(Node)


@dataclass(frozen=True, eq=False)
class Graph:
    """A DAG of nodes in topological order, its edges, outputs, form and parameters.

    ``==`` compares structure (name, form, attrs, nodes, edges, outputs); weights are compared
    with :meth:`same_params`.
    """

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    outputs: tuple[str, ...]
    form: Form = Form.ANN
    attrs: Attrs = EMPTY
    params: Mapping[str, Any] | None = field(default=None, repr=False)
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- identity ---------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name == other.name and self.form == other.form and self.attrs == other.attrs
                and self.nodes == other.nodes and set(self.edges) == set(other.edges)
                and self.outputs == other.outputs)

    def __hash__(self) -> int:
        return hash((self.name, self.form, self.nodes, frozenset(self.edges), self.outputs))

    def same_params(self, other: Graph) -> bool:
        """True when both graphs hold the same parameter keys with equal tensors."""
        import torch

        a, b = self.params or {}, other.params or {}
        if a.keys() != b.keys():
            return False
        return all(torch.equal(a[k], b[k]) for k in a)

    # -- lookups (cached: a graph never changes) --------------------------------------------
    def _idx(self) -> dict:
        """The graph's index: by_name, ins (each node's input edges by port) and pos; each
        node's readers (`_outs`) are indexed apart, at the first `users` call (the verifier
        and most graphs of a compile never ask: densenet121, 3 of 4 indexed graphs)."""
        if "ins" not in self._index:
            by_name = self._by_name()
            ins: dict[str, list[Edge]] = {n.name: [] for n in self.nodes}
            for e in self.edges:  # a list per name, made here only for a name not a node
                try:
                    ins[e.dst].append(e)
                except KeyError:
                    ins[e.dst] = [e]
            for lst in ins.values():
                if len(lst) > 1:
                    lst.sort(key=_port)
            pos = {n.name: i for i, n in enumerate(self.nodes)}
            self._index.update(by_name=by_name, ins=ins, pos=pos)
        return self._index

    def _outs(self) -> dict[str, list[Edge]]:
        """{node: the edges reading its output, as source or as the projection they deliver},
        each list in edge order."""
        outs = self._index.get("outs")
        if outs is None:
            outs = {n.name: [] for n in self.nodes}
            for e in self.edges:  # a list per name, made here only for a name not a node
                try:
                    outs[e.src].append(e)
                except KeyError:
                    outs[e.src] = [e]
                if e.projection is not None:
                    outs.setdefault(e.projection, []).append(e)
            self._index["outs"] = outs
        return outs

    def _by_name(self) -> dict[str, Node]:
        """{name: node}, built alone: a node look-up (a pass's contract on an intermediate
        graph, say) needs no index of the edges, which costs ten times as much."""
        by_name = self._index.get("by_name")
        if by_name is None:
            by_name = self._index["by_name"] = {n.name: n for n in self.nodes}
        return by_name

    def node(self, name: str) -> Node:
        try:
            return (self._index.get("by_name") or self._by_name())[name]
        except KeyError:
            raise VerifyError(f"graph '{self.name}' has no node '{name}'") from None

    def has_node(self, name: str) -> bool:
        return name in self._by_name()

    def inputs_of(self, name: str) -> list[Edge]:
        """The edges into `name`, ordered by port."""
        return list((self._index.get("ins") or self._idx()["ins"]).get(name, ()))

    def users(self, name: str) -> list[Edge]:
        """The edges reading `name`'s output (as source, or as the projection they deliver)."""
        return list((self._index.get("outs") or self._outs()).get(name, ()))

    def position(self, name: str) -> int:
        """Index of `name` in topological order."""
        return self._idx()["pos"][name]

    def input_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "input"]

    def by_op(self, *ops: str) -> list[Node]:
        return [n for n in self.nodes if n.op in ops]

    def skip_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.is_skip]

    def param(self, key: str) -> Any:
        """The tensor stored under `key` (None for a structure-only graph)."""
        if self.params is None:
            return None
        return self.params[key]

    # -- changes ----------------------------------------------------------------------------
    def edit(self) -> GraphBuilder:
        """A mutable builder starting from this graph; `.build()` returns a new graph."""
        return GraphBuilder.from_graph(self)

    def with_attrs(self, **updates: Any) -> Graph:
        return _same_order(_derived(replace(self, attrs=self.attrs.set(**updates)), self), self)

    def with_params(self, params: Mapping[str, Any] | None) -> Graph:
        return _same_order(_derived(replace(self, params=None if params is None else
                                            dict(params)), self), self)

    def with_edges(self, edges: Iterable[Edge]) -> Graph:
        """This graph with `edges` instead of its own (the nodes, their order, outputs and
        parameters kept), checked as `GraphBuilder.build()` checks (at once, or where the
        check is deferred, by whoever deferred it). For a pass that only relabels edges
        (annotate-payloads): `edit().build()` would index every edge twice and sort the nodes
        again for the same order."""
        g = _derived(replace(self, edges=tuple(edges)), self)
        if not _DEFERRED.get():
            from snnc.compiler.core.verify import verify

            verify(g)
        return g


_port = operator.attrgetter("port")  # an edge's port, as a sort key (in C)


def _same_order(g: Graph, base: Graph) -> Graph:
    """`g`, whose nodes and edges are `base`'s, recorded as sorted when `base` is
    (`_toposort`)."""
    if base._index.get("sorted"):
        g._index["sorted"] = True
    return g


def _derived(g: Graph, base: Graph | None) -> Graph:
    """Record on `g` the nodes and inputs of `base` when `base` is verified: `verify(g)` then
    re-runs the shape rule only of the nodes that differ (compiler/core/verify.py). Only
    structure is kept (no parameters), and `verify` drops it."""
    if base is not None:
        if base._index.get("verified"):
            idx = base._idx()
            g._index["prior"] = (idx["by_name"], idx["ins"])
        elif "facts" in base._index:
            g._index["facts"] = base._index["facts"]
    return g


def _index_edges(edges: Iterable[Edge], by_dst: dict[str, list[Edge]],
                 by_src: dict[str, list[Edge]]) -> None:
    """Append each of `edges`, in order, to its destination's list in `by_dst` and to its
    source's (and projection's) in `by_src` (the builder's index, `_EdgeList`)."""
    for e in edges:
        lst = by_dst.get(e.dst)
        if lst is None:
            by_dst[e.dst] = [e]
        else:
            lst.append(e)
        lst = by_src.get(e.src)
        if lst is None:
            by_src[e.src] = [e]
        else:
            lst.append(e)
        if e.projection is not None and e.projection != e.src:
            by_src.setdefault(e.projection, []).append(e)


class _EdgeList(list):
    """The builder's edge list. Order carries no meaning (ports do), so removal swaps in the
    last edge; a by-destination / by-source index and a position map keep `inputs_of`, `users`,
    `remove` and `replace_edge` O(degree) on 5000-layer graphs. An edge may appear only once.

    The position map is kept from the start (it finds an edge added twice); the index by
    destination and source is made at its first use, from the list in order, which is the
    index appending each edge would have made: a pass that only swaps nodes (relu-to-lif)
    and a front end that only adds them never pay for it. Everything that moves an edge
    away from the end makes the index first.

    `version` counts the changes, and `placed` holds the edges put at a position other than
    the end (an index list of theirs may no longer be in list order): `indexed_copy` gives
    the next pass's builder the index a fresh `_EdgeList` of the same edges would have
    (`GraphBuilder.from_graph`)."""

    def __init__(self, items: Iterable[Edge] = ()):
        super().__init__()
        self._by_dst: dict[str, list[Edge]] | None = None  # None: not made yet
        self._by_src: dict[str, list[Edge]] | None = None
        self.pos: dict[Edge, int] = {}
        self.version = 0
        self.placed: set[Edge] | None = set()  # None: every index list may be out of order
        self.added: list[Edge] | None = None  # once set to a list: every edge added since
        self.extend(items)

    @property
    def by_dst(self) -> dict[str, list[Edge]]:
        if self._by_dst is None:
            self._index()
        return self._by_dst  # type: ignore[return-value]

    @property
    def by_src(self) -> dict[str, list[Edge]]:
        if self._by_src is None:
            self._index()
        return self._by_src  # type: ignore[return-value]

    def _index(self) -> None:
        """Make the index by destination and source, each list in list order."""
        by_dst: dict[str, list[Edge]] = {}
        by_src: dict[str, list[Edge]] = {}
        _index_edges(self, by_dst, by_src)
        self._by_dst, self._by_src = by_dst, by_src

    def indexed_copy(self) -> _EdgeList:
        """A new list of these edges, indexed as `_EdgeList(self)` would index them (each
        index list in list order), for a fraction of the cost: the position map and the
        lists are copied, and only the lists an out-of-place edge is in are sorted again."""
        new = _EdgeList()
        list.extend(new, self)
        pos = new.pos = self.pos.copy()
        if self._by_dst is None:
            return new  # made at its first use, from the list, as this one would be
        by_dst = new._by_dst = {k: v.copy() for k, v in self._by_dst.items()}
        by_src = new._by_src = {k: v.copy() for k, v in self.by_src.items()}
        if self.placed is None:
            keys_dst, keys_src = list(by_dst), list(by_src)
        else:
            keys_dst = {e.dst for e in self.placed}
            keys_src = {e.src for e in self.placed}
            keys_src.update(e.projection for e in self.placed if e.projection is not None)
        at = pos.__getitem__
        for k in keys_dst:
            lst = by_dst.get(k)
            if lst is not None and len(lst) > 1:
                lst.sort(key=at)
        for k in keys_src:
            lst = by_src.get(k)
            if lst is not None and len(lst) > 1:
                lst.sort(key=at)
        return new

    def _add(self, e: Edge, i: int) -> None:
        if self.pos.setdefault(e, i) != i:  # one hash: already there at another index
            raise VerifyError(f"edge %{e.src} -> %{e.dst} port {e.port} is added twice")
        if self.added is not None:
            self.added.append(e)
        if self._by_dst is None:
            return  # at the end (append): the index made later from the list has it
        self._by_dst.setdefault(e.dst, []).append(e)
        by_src = self._by_src
        by_src.setdefault(e.src, []).append(e)  # type: ignore[union-attr]
        if e.projection is not None and e.projection != e.src:
            by_src.setdefault(e.projection, []).append(e)  # type: ignore[union-attr]

    def _drop(self, e: Edge) -> None:
        del self.pos[e]
        by_src = self.by_src  # made first, while the list still holds `e`
        self.by_dst[e.dst].remove(e)
        by_src[e.src].remove(e)
        if e.projection is not None and e.projection != e.src:
            by_src[e.projection].remove(e)

    def append(self, e: Edge) -> None:
        self._add(e, len(self))
        super().append(e)
        self.version += 1

    def extend(self, items: Iterable[Edge]) -> None:
        # every `GraphBuilder.add` and a `Graph.edit()` whose index is not handed over come here
        self.version += 1
        pos, push = self.pos, super().append
        start = i = len(self)
        try:
            for e in items:
                if pos.setdefault(e, i) != i:
                    raise VerifyError(f"edge %{e.src} -> %{e.dst} port {e.port} is added "
                                      f"twice")
                push(e)
                i += 1
        finally:  # the edges added before a duplicate stay, indexed
            if i > start and (self.added is not None or self._by_dst is not None):
                new = self[start:i]
                if self.added is not None:
                    self.added += new
                if self._by_dst is not None and self._by_src is not None:
                    _index_edges(new, self._by_dst, self._by_src)

    def __iadd__(self, items):
        self.extend(items)
        return self

    def index(self, e: Edge, *args) -> int:
        try:
            return self.pos[e]
        except KeyError:
            raise ValueError(f"edge {e} is not in the graph") from None

    def remove(self, e: Edge) -> None:
        i = self.index(e)
        self._drop(e)
        last = super().pop()
        self.version += 1
        if i < len(self):
            super().__setitem__(i, last)
            self.pos[last] = i
            if self.placed is not None:
                self.placed.add(last)

    def pop(self, i: int = -1) -> Edge:
        e = self[i]
        self.remove(e)
        return e

    def clear(self) -> None:
        super().clear()
        self._by_dst = self._by_src = None  # empty: made again at its first use
        self.pos.clear()
        self.version += 1
        self.placed = set()

    def __setitem__(self, i, value) -> None:
        if isinstance(i, slice):
            items = list(self)
            items[i] = value
            self.clear()
            self.extend(items)
            return
        i = i % len(self) if i < 0 else i
        old = self[i]
        self._drop(old)
        self.version += 1
        try:
            self._add(value, i)
        except VerifyError:
            self._add(old, i)
            if self.placed is not None:
                self.placed.add(old)
            raise
        super().__setitem__(i, value)
        if self.placed is not None:
            self.placed.add(value)

    def __delitem__(self, i) -> None:
        items = list(self)
        del items[i]
        self.clear()
        self.extend(items)

    def insert(self, i, e: Edge) -> None:
        self.append(e)  # order carries no meaning

    def sort(self, *args, **kwargs) -> None:
        if self._by_dst is None:  # the index keeps the order from before the sort
            self._index()
        super().sort(*args, **kwargs)
        self.pos = {e: i for i, e in enumerate(self)}
        self.version += 1
        self.placed = None

    def reverse(self) -> None:
        if self._by_dst is None:  # the index keeps the order from before the reversal
            self._index()
        super().reverse()
        self.pos = {e: i for i, e in enumerate(self)}
        self.version += 1
        self.placed = None


class GraphBuilder:
    """Mutable staging area for a new graph. Nodes keep insertion order until `build()`
    sorts them topologically (stable: the existing order wins among independent nodes).
    `edges` is a list (append/remove/assign freely); lookups by node stay indexed."""

    def __init__(self, name: str, form: Form = Form.ANN, attrs: Attrs = EMPTY,
                 params: dict[str, Any] | None = None):
        self.base: Graph | None = None  # the graph `from_graph` started from
        self._base_names: list[str] | None = None  # its node names, when its order is sorted
        self.name = name
        self.form = form
        self.attrs = attrs
        self.nodes: dict[str, Node] = {}
        self._edges = _EdgeList()
        self.outputs: list[str] = []
        self.params = params
        self.facts: dict[str, tuple[Node, list]] = {}  # `add_inferred`'s, for the verifier

    @property
    def edges(self) -> _EdgeList:
        return self._edges

    @edges.setter
    def edges(self, items: Iterable[Edge]) -> None:
        self._edges = _EdgeList(items)

    @classmethod
    def from_graph(cls, g: Graph) -> GraphBuilder:
        b = cls(g.name, g.form, g.attrs, None if g.params is None else dict(g.params))
        b.base = g
        b.nodes = {n.name: n for n in g.nodes}
        built = _BUILT.get()
        if built is not None and built[0] is g.edges and built[1].version == built[2]:
            # `g`'s edges are those of the builder that last built a graph, unchanged since:
            # its index is copied instead of made again (a pass edits the graph the pass
            # before it built; indexing every edge cost a pass ~0.3 ms on densenet121)
            b._edges = built[1].indexed_copy()
        else:
            b.edges = g.edges
        if g._index.get("sorted"):  # build() sorts only the changes (`_toposort`)
            b._base_names = list(b.nodes)
            b._edges.added = []
        b.outputs = list(g.outputs)
        return b

    # nodes
    def add(self, node: Node, inputs: Iterable[str | Edge] = ()) -> Node:
        """Add `node`, fed by `inputs` (names for plain data edges, or edges) on ports 0, 1, ..."""
        if node.name in self.nodes:
            raise VerifyError(f"node '{node.name}' already exists in graph '{self.name}'")
        self.nodes[node.name] = node
        name = node.name
        self.edges.extend([replace(item, dst=name, port=port) if isinstance(item, Edge)
                           else Edge(item, name, port) for port, item in enumerate(inputs)])
        return node

    def add_inferred(self, node: Node, inputs: Iterable[str | Edge], shapes: list) -> Node:
        """Add `node` (its shape ignored) with the shape its rule gives on its inputs' shapes
        `shapes` (compiler/core/shapes.py; the rule's errors propagate), as `add` does; returns
        the node added. The rule is not run again by the verifier for that node while its
        inputs keep those shapes: `build()` leaves (node, shapes) on a graph it builds
        unverified (`_index["facts"]`, compiler/core/verify.py)."""
        from snnc.compiler.core.shapes import infer_shape  # (shapes imports this module)

        shape = infer_shape(node, shapes)  # the rule reads name, op and attributes, not shape
        added = self.add(Node(node.name, node.op, node.attrs, shape, node.params), inputs)
        self.facts[added.name] = (added, shapes)
        return added

    def replace_node(self, node: Node) -> None:
        if node.name not in self.nodes:
            raise VerifyError(f"no node '{node.name}' to replace in graph '{self.name}'")
        self.nodes[node.name] = node

    def remove(self, name: str) -> None:
        """Remove a node and every edge into it (edges out of it must be rewired first)."""
        del self.nodes[name]
        for e in list(self.edges.by_dst.get(name, ())):
            self.edges.remove(e)

    def node(self, name: str) -> Node:
        """Node `name`, as `Graph.node` answers it (VerifyError when there is none): a pass can
        ask its builder, indexed already, instead of the graph it edits, whose own index of
        every node's inputs and readers would be built for a few look-ups."""
        try:
            return self.nodes[name]
        except KeyError:
            raise VerifyError(f"graph '{self.name}' has no node '{name}'") from None

    def fresh(self, base: str) -> str:
        """A node name not yet used, derived from `base`."""
        if base not in self.nodes:
            return base
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"

    # edges
    def inputs_of(self, name: str) -> list[Edge]:
        return sorted(self.edges.by_dst.get(name, ()), key=lambda e: e.port)

    def users(self, name: str) -> list[Edge]:
        return list(self.edges.by_src.get(name, ()))

    def remove_edge(self, edge: Edge) -> None:
        self.edges.remove(edge)

    def replace_edge(self, old: Edge, new: Edge) -> None:
        self.edges[self.edges.index(old)] = new

    def redirect(self, old: str, new: str, *, skip: Iterable[str] = ()) -> None:
        """Make every reader of `old` (edges, projections, outputs) read `new` instead,
        except the nodes in `skip`."""
        keep = set(skip)
        for e in list(self.edges.by_src.get(old, ())):
            if e.dst in keep:
                continue
            # A skip edge names its origin (`src`) even when a projection computes its value:
            # both names must follow the node, or the edge names a node that is gone.
            changes = {k: new for k in ("src", "projection") if getattr(e, k) == old}
            self.replace_edge(e, replace(e, **changes))
        self.outputs = [new if o == old else o for o in self.outputs]

    def renumber_ports(self, name: str) -> None:
        """Make `name`'s input ports 0..k-1, keeping their order."""
        ins = self.inputs_of(name)
        for port, e in enumerate(ins):
            if e.port != port:
                self.replace_edge(e, replace(e, port=port))

    # params
    def set_param(self, key: str, value: Any) -> None:
        if self.params is not None:
            self.params[key] = value

    def build(self, *, form: Form | None = None, check: bool = True) -> Graph:
        """Return the new graph, nodes in topological order; drops parameters nobody names."""
        edges = self.edges
        base = self._base_names
        if base is not None and edges.added is not None:
            order, ordered = _toposort(self.nodes, edges, self.name, base, edges.added)
        else:
            order, ordered = _toposort(self.nodes, edges, self.name)
        params = None
        if self.params is not None:
            used = set(itertools.chain.from_iterable(n.params for n in self.nodes.values()))
            if used.issuperset(self.params):  # nothing to drop (the usual case): a plain copy
                params = dict(self.params)
            else:
                params = {k: v for k, v in self.params.items() if k in used}
        edges = tuple(self.edges)
        g = _derived(Graph(self.name, tuple(self.nodes[n] for n in order), edges,
                           tuple(self.outputs), form or self.form, self.attrs, params),
                     self.base)
        if ordered:
            g._index["sorted"] = True
        if self.facts:  # with the facts `_derived` passed on from an unverified base
            g._index["facts"] = {**g._index.get("facts", {}), **self.facts}
        _BUILT.set((edges, self.edges, self.edges.version))
        if check and not _DEFERRED.get():
            from snnc.compiler.core.verify import verify

            verify(g)
        return g


_DEFERRED = contextvars.ContextVar("snnc_verify_deferred", default=False)
# (edges, the _EdgeList they came from, its version then) of the graph built last in this
# context: `from_graph` copies that list's index when asked to edit a graph with these edges
# and the list has not changed since (one slot: it keeps only the last builder's edges alive)
_BUILT: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("snnc_last_built",
                                                                      default=None)


@contextlib.contextmanager
def deferred_verify():
    """`build()` does not verify inside this block: whoever opened it verifies the graph that
    comes out (compiler/core/passmanager.py `run_pipeline`). `verify(g)` called directly
    still checks."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def _toposort(nodes: Mapping[str, Node], edges: Iterable[Edge], gname: str,
              base: list[str] | None = None, added: list[Edge] | None = None
              ) -> tuple[list[str], bool]:
    """Stable topological order (Kahn, smallest original index first, inputs first), and
    whether that order is the nodes' own, whose every edge goes forward and whose inputs
    come first (`sorted`: what `build()` records on the graph, `Graph._index["sorted"]`).

    Run by every `build()`, so on positions (ints) rather than names. Most edits keep the
    existing order topological: one pass over the edges sees that, and then Kahn's order is
    the existing one; otherwise a second pass collects the (source, destination) pairs.

    `base`, `added`: the node names of a sorted graph the builder started from and the edges
    added since (`GraphBuilder.from_graph`). When the nodes still begin with exactly those
    names, in that order (none removed, none moved: every edge of the graph's runs forward
    between them), only the added edges that remain are checked, not all of them (a pass
    edits a few dozen of a thousand edges)."""
    names = list(nodes)
    pos = dict(zip(names, range(len(names))))  # a quarter faster than a comprehension
    get = pos.get
    ordered = _inputs_first(nodes.values())
    checked: Iterable[Edge] = edges
    if base is not None and added is not None and names[:len(base)] == base:
        held = edges.pos  # type: ignore[attr-defined]  # the builder's _EdgeList
        checked = [e for e in added if e in held]  # (not those added, then removed)
    for e in checked:
        d, s, p = get(e.dst), get(e.src), e.projection
        if d is None or s is None or (p is not None and p not in pos):
            _missing(e, pos, gname)
        if s > d or (p is not None and pos[p] > d):
            ordered = False
    if ordered:
        return names, True
    succs: list[list[int]] = [[] for _ in names]  # position -> its readers' positions
    for e in edges:
        succs[pos[e.src]].append(pos[e.dst])
    for e in edges:
        if e.projection is not None:
            succs[pos[e.projection]].append(pos[e.dst])
    order = [names[i] for i in _kahn(names, nodes, succs, gname)]
    return order, _inputs_first(nodes[n] for n in order)


def _inputs_first(seq: Iterable[Node]) -> bool:
    """Whether no input node of `seq` comes after a node that is not one."""
    return not any(n.op == "input" for n in itertools.dropwhile(
        lambda n: n.op == "input", seq))


def _missing(e: Edge, pos: Mapping[str, int], gname: str) -> None:
    """Raise for edge `e`, which names a node not in `pos` (its source, then its destination,
    then its projection: the first one missing)."""
    for s in (e.src, e.projection):
        if s is not None and (s not in pos or e.dst not in pos):
            missing = s if s not in pos else e.dst
            raise VerifyError(f"graph '{gname}': edge {e.src} -> {e.dst} names missing node "
                              f"'{missing}'")


def _kahn(names: list[str], nodes: Mapping[str, Node], succs: list[list[int]],
          gname: str) -> list[int]:
    """Kahn's order of positions 0..n-1 under the dependencies `succs` (each position's
    readers, once per edge), the smallest key first: inputs before the rest, then the
    existing order. A key is an int (the position, plus n for a node that is not an input),
    so the heap compares ints. A node is counted once per edge into it and freed by its last
    one: it becomes ready when its last source is placed, as with each pair counted once, so
    the pairs need not be made unique first."""
    import heapq

    n = len(names)
    keys = [i if node.op == "input" else i + n for i, node in enumerate(nodes.values())]
    indeg = [0] * n
    for s, readers in enumerate(succs):
        if s in readers:  # a node reading itself: left to the verifier, as before
            readers[:] = [d for d in readers if d != s]
        for d in readers:
            indeg[d] += 1
    heap = [keys[i] for i in range(n) if not indeg[i]]
    heapq.heapify(heap)
    order: list[int] = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        i = pop(heap)
        i = i - n if i >= n else i
        order.append(i)
        for m in succs[i]:
            indeg[m] -= 1
            if not indeg[m]:
                push(heap, keys[m])
    if len(order) != n:
        done = set(order)
        cyc = sorted(names[i] for i in range(n) if i not in done)[:5]
        raise VerifyError(f"graph '{gname}' has a cycle through {', '.join(cyc)}")
    return order


_NOT_WORD = re.compile(r"\W")  # not str.isalnum() and not "_" (checked on every code point)


def sanitize(name: str) -> str:
    """A node name from a source-model name: layer1.0.conv1 -> layer1_0_conv1.

    Most names a front end passes here are ASCII module paths (densenet121: ~700 per import):
    when `name` with its dots made "_" is an identifier neither starting nor ending with "_",
    the rule below would only replace those dots, so that is the result, without the regex."""
    if name.isascii():
        out = name.replace(".", "_")
        if out.isidentifier() and out[0] != "_" and out[-1] != "_":
            return out
    out = _NOT_WORD.sub("_", name.strip("/%"))
    out = out.strip("_") or "node"
    if out[0].isdigit():
        out = "n" + out
    return out


def bn_fold_source(g: Graph, bn: str) -> Node | None:
    """The conv2d / linear that batchnorm `bn` folds into exactly, or None: `bn`'s only input
    is a DATA edge from a conv2d or linear whose output nobody else reads and which is not a
    graph output. The one rule for `fold-bn` (passes/fold_bn.py) and for the shared BN that
    target-exact loihi2 trains folded (backends/relay.py `folded_bn`, docs/lava.md
    "Deployable default")."""
    ins = g.inputs_of(bn)
    if len(ins) != 1 or ins[0].kind is not EdgeKind.DATA:
        return None
    src = g.node(ins[0].src)
    if src.op not in ("conv2d", "linear") or src.name in g.outputs:
        return None
    if len(g.users(src.name)) != 1:
        return None  # someone else reads the un-normalised output: folding would change it
    return src

