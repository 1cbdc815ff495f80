"""Helpers the conversion passes share: form checks, graph walks, rewiring, lif attributes.

Not a pass module (the leading underscore keeps `load_builtin_passes` from treating it as one).
"""

from __future__ import annotations

from dataclasses import replace

from snnc.compiler.core.errors import PassFailed, SnncError, UnsupportedOp
from snnc.compiler.core.ir import EMPTY, Edge, EdgeKind, Form, Graph, GraphBuilder, Node

# Ops whose output is a per-element (or reshaping) function of one input: walks go through them.
PASS_THROUGH = frozenset({"dropout", "identity", "flatten", "reshape"})
RESETS = ("subtract", "zero")
FIRES = ("ge", "gt")
SURROGATES = ("triangle", "fast_sigmoid", "arctan")


def require_snn(g: Graph, pass_name: str, before: str = "relu-to-lif") -> None:
    """Raise unless `g` is in SNN form (the pass `before` turns it into one)."""
    if g.form is not Form.SNN:
        raise PassFailed(f"graph '{g.name}': pass '{pass_name}' needs an SNN-form graph, but this "
                         f"one is still in ANN form. Run '{before}' first (or use "
                         f"snnc.passes.pipeline.conversion_pipeline).")


def check_choice(pass_name: str, option: str, value: object, allowed: tuple) -> None:
    """Raise a clear SnncError when an option is not one of `allowed`."""
    if value not in allowed:
        raise SnncError(f"pass '{pass_name}': option {option}={value!r} is not one of "
                        f"{', '.join(map(repr, allowed))}.")


def main_input(g: Graph | GraphBuilder, name: str) -> Edge | None:
    """The edge into port 0 of `name`, if any."""
    ins = g.inputs_of(name)
    return ins[0] if ins and ins[0].port == 0 else None


def data_users(g: Graph | GraphBuilder, name: str) -> list[Edge]:
    """Edges that read `name`'s output as their value (not as the source of a projection)."""
    return [e for e in g.users(name) if e.value_src == name]


def classifier_of(g: Graph | GraphBuilder, out: str) -> tuple[Node, list[Node]]:
    """The last weighted node (conv2d / linear) feeding output `out`, and the nodes after it.

    Walks back along port 0 through single-input nodes; raises when no weighted node is found.
    """
    chain: list[Node] = []
    name = out
    while True:
        node = g.node(name)
        if node.op in ("conv2d", "linear"):
            return node, list(reversed(chain))
        e = main_input(g, name)
        if e is None or node.op in ("add", "concat", "input"):
            raise UnsupportedOp(
                f"graph '{g.name}': output '{out}' is not fed by a classifier: walking back from "
                f"it reached node '{name}' (op {node.op}) before any linear or conv2d. The "
                f"readout "
                f"needs the final weighted layer; end the model with a linear (or conv2d) layer.")
        chain.append(node)
        name = e.src


def lif_attrs(*, leak: float, vth: float, reset: str, fire: str, surrogate: str,
              alpha: float, width: float) -> dict:
    """The attribute dict of a lif (docs/ir.md "LIF"), options checked."""
    check_choice("relu-to-lif", "reset", reset, RESETS)
    check_choice("relu-to-lif", "fire", fire, FIRES)
    check_choice("relu-to-lif", "surrogate", surrogate, SURROGATES)
    if not 0.0 <= float(leak) <= 1.0:
        raise SnncError(f"pass 'relu-to-lif': leak={leak} is outside [0, 1] (paper 2 eq. 5 "
                        f"multiplies the membrane by it every step).")
    if float(vth) <= 0.0:
        raise SnncError(f"pass 'relu-to-lif': vth={vth} must be > 0 (the firing threshold U_th).")
    return dict(leak=float(leak), vth=float(vth), reset=reset, fire=fire, surrogate=surrogate,
                alpha=float(alpha), width=float(width))


def projection_head(g: Graph | GraphBuilder, e: Edge) -> Edge:
    """The DATA edge by which the projection path of skip edge `e` reads `e.src`."""
    name = e.projection
    seen = set()
    while name is not None and name not in seen:
        seen.add(name)
        ins = g.inputs_of(name)
        for i in ins:
            if i.src == e.src and i.kind is EdgeKind.DATA:
                return i
        name = ins[0].src if ins else None
    raise PassFailed(f"projection '{e.projection}' of skip edge %{e.src} -> %{e.dst} does not "
                     f"read '{e.src}' along its main inputs; the skip annotation is inconsistent.")


def rewire_readers(b: GraphBuilder, old: str, new: str, *, skip: set[str]) -> None:
    """Every reader of `old`'s value reads `new` instead (edges, skip sources whose projection
    reads `old`, graph outputs), except edges into nodes in `skip`."""
    for e in b.users(old):
        if e.dst in skip:
            continue
        b.replace_edge(e, _rewired(e, old, new))
    b.outputs = [new if o == old else o for o in b.outputs]


def _rewired(e: Edge, old: str, new: str) -> Edge:
    """Edge `e`, which reads `old` (its source or its projection), reading `new` instead: what
    `rewire_readers` puts in its place."""
    if e.src == old and e.projection is None:
        return e.moved(src=new, payload=None)
    if e.projection == old:
        return e.moved(projection=new, payload=None)
    return e.moved(src=new)  # e.src == old: its projection path is rewired on its own


def rewire_all(b: GraphBuilder, renames: dict[str, str], *, skip: set[str]) -> None:
    """`rewire_readers(b, old, new, skip=skip)` for every `old -> new` of `renames`, in its
    order, done in one pass over the builder's edges: the same edges at the same positions and
    the same outputs come out.

    Why: a pass that puts a new node after each of many layers (bn-to-bntt: 120 identity norms
    on densenet121, whose dense blocks give each conv several readers) would otherwise replace
    every reader edge in the builder's index one at a time; here the edges are rewritten in a
    list and the builder re-indexes it once. An edge that reads two renamed nodes (its source
    and its projection) is rewritten for each, in `renames` order, as the calls would. The new
    names must not be nodes of `b` yet, nor keys of `renames` (`GraphBuilder.fresh` names)."""
    if not renames:
        return
    rank = {old: i for i, old in enumerate(renames)}
    edges = list(b.edges)
    for i, e in enumerate(edges):
        src, proj = e.src, e.projection
        by_src, by_proj = src in rank, proj is not None and proj in rank
        if not (by_src or by_proj) or e.dst in skip:
            continue
        if by_src and by_proj and src != proj:  # both renamed: one after the other
            first, then = (src, proj) if rank[src] < rank[proj] else (proj, src)
            e = _rewired(_rewired(e, first, renames[first]), then, renames[then])
        else:
            old = src if by_src else proj
            e = _rewired(e, old, renames[old])
        edges[i] = e
    b.edges = edges
    b.outputs = [renames.get(o, o) for o in b.outputs]


def strip_payload(e: Edge) -> Edge:
    """`e` without its payload (a rewritten edge's payload is recomputed by annotate-payloads)."""
    return replace(e, payload=None)


def without_attr(e: Edge, key: str) -> Edge:
    """`e` without edge attribute `key`."""
    attrs = e.attrs.without(key)
    return replace(e, attrs=attrs if attrs else EMPTY)
