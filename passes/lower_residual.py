"""lower-residual: ANN addition skips (ASC) become spiking residuals S2S, S2M or V2V."""

from __future__ import annotations

from dataclasses import replace

from snnc.compiler.core.conditions import form_is, has_attrs, no_edges
from snnc.compiler.core.errors import SnncError, UnsupportedOp
from snnc.compiler.core.ir import Attrs, Edge, EdgeKind, Form, Graph, GraphBuilder
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import (
    check_choice, projection_head, require_snn, rewire_readers, without_attr,
)

MODES = ("s2s", "s2m", "v2v")
FALLBACKS = ("s2m", "s2s", "error")
_KIND = {"s2s": EdgeKind.S2S, "s2m": EdgeKind.S2M, "v2v": EdgeKind.V2V}


def _requested(e: Edge, mode: str, gname: str) -> str:
    kind = str(e.attrs.get("residual", mode)).lower()
    if kind not in MODES:
        raise SnncError(f"graph '{gname}': ASC edge %{e.src} -> %{e.dst} has residual={kind!r}; "
                        f"use one of s2s, s2m, v2v.")
    return kind


def _neuron_after(b: GraphBuilder, add: str) -> str | None:
    """The lif that is the add's only reader (port 0), or None (no activation after the add)."""
    users = b.users(add)
    if add in b.outputs or len(users) != 1:
        return None
    u = users[0]
    if u.kind is EdgeKind.DATA and u.port == 0 and b.nodes[u.dst].op == "lif":
        return u.dst
    return None


def _lower_add(b: GraphBuilder, add: str, mode: str, fallback: str, gname: str) -> None:
    ins = b.inputs_of(add)
    main = [e for e in ins if e.kind is EdgeKind.DATA]
    skips = [e for e in ins if e.kind is EdgeKind.ASC]
    if len(main) != 1:
        raise UnsupportedOp(
            f"graph '{gname}': node '{add}' (op add) has {len(main)} main (non-skip) inputs and "
            f"{len(skips)} ASC inputs; lower-residual needs exactly one main input (layer l's "
            f"current). Re-run annotate_skips (snnc.compiler.core.blocks) or split the add.")
    lif = _neuron_after(b, add)
    if lif is None:
        # No neuron after the add: the sum stays an add of whatever its operands carry
        # (spikes, or currents under relu-to-lif's unactivated_add=graded policy).
        for e in skips:
            kind = _requested(e, mode, gname)
            new = replace(without_attr(e, "residual"), kind=EdgeKind.S2S, payload=None)
            if kind != "s2s":
                new = replace(new, attrs=new.attrs.set(fallback="no-neuron-after-add"))
            b.replace_edge(e, new)
        return
    m = main[0]
    vth = float(b.nodes[lif].attrs.get("vth", 1.0))
    port = len(b.inputs_of(lif))
    into_lif = b.inputs_of(lif)[0]
    b.replace_edge(into_lif, Edge(m.src, lif, 0, hops=m.hops, attrs=m.attrs))
    spike: list[Edge] = []
    for e in skips:
        kind = _requested(e, mode, gname)
        attrs = without_attr(e, "residual").attrs
        if kind == "v2v" and b.nodes[e.src].op != "lif":
            if fallback == "error":
                raise UnsupportedOp(
                    f"graph '{gname}': V2V edge %{e.src} -> %{add} starts at node '{e.src}' (op "
                    f"{b.nodes[e.src].op}), which is not a neuron and has no input current to "
                    f"carry (paper 2 eq. 15). Use v2v_fallback=s2m or s2s, or choose another "
                    f"residual for this edge.")
            kind = fallback
            attrs = attrs.set(fallback="v2v-source-not-lif")
        b.remove_edge(e)
        if kind == "s2s":
            spike.append(replace(e, kind=EdgeKind.S2S, attrs=attrs, payload=None))
            continue
        if kind == "s2m":
            attrs = attrs.set(scale=vth if e.projection is None else 1.0)
        elif e.projection is not None:
            head = projection_head(b, e)
            b.replace_edge(head, replace(head, attrs=head.attrs.set(tap="current"),
                                         payload=None))
        b.edges.append(Edge(e.src, lif, port, _KIND[kind], e.hops, e.projection, None,
                            Attrs(attrs)))
        port += 1
    b.remove_edge(m)
    if not spike:
        b.remove(add)
        return
    # S2S: the add moves after the lif (o_l = o'_l + o_{l-n}); readers of the lif read the sum.
    rewire_readers(b, lif, add, skip={add})
    b.edges.append(Edge(lif, add, 0))
    for i, e in enumerate(spike, start=1):
        b.edges.append(replace(e, port=i))


@register_pass("lower-residual", requires=[form_is(Form.SNN)],
               ensures=[no_edges(EdgeKind.ASC), has_attrs("lowered", "residual")])
def lower_residual(g: Graph, *, mode: str = "s2s", v2v_fallback: str = "s2m") -> Graph:
    """Lower every ASC edge to a spiking residual: S2S, S2M or V2V (docs/ir.md "Residuals").

    Requires: SNN form (relu-to-lif ran). Each add with ASC inputs has exactly one DATA (main)
    input. The kind comes from the edge attr `residual` when present, else `mode`.
    Guarantees: no ASC edge remains; DSC edges untouched; hops and projections kept; new and
    rewired edges carry no payload (annotate-payloads sets them). For an add whose only reader
    is a lif l (post-activation block, relu(bn(conv) + x)):
      s2s: the add moves after lif l: `%add = add(%lif_l, %src ~S2S)`; every former reader of
           lif l reads the add (so a chain of blocks sums, eq. 12); a projection stays a conv
           (+norm) on the source's output with no neuron after it (eq. 13).
      s2m: the add disappears; `%lif_l = lif(%main, %src ~S2M scale=vth_l)`, scale = 1.0 when
           a projection carries the weights (eq. 7).
      v2v: the add disappears; `%lif_l = lif(%main, %lif_src ~V2V)`: the edge carries the
           source lif's current (main input + its own V2V inputs: the recursion of eq. 15); a
           projection reads that current (`tap=current` on its input edge). A V2V edge whose
           source is not a lif (a max-pool stem, the encoder) becomes `v2v_fallback` (s2m by
           default, or s2s) with attr fallback="v2v-source-not-lif"; v2v_fallback=error
           refuses.
    An add with no lif as its only reader (linear bottleneck, pre-activation block) keeps the
    add: its ASC edges become S2S (attr fallback="no-neuron-after-add" when s2m/v2v was asked).
    Sets graph attrs lowered=true and residual=mode (kept if the graph was lowered before).
    Implements: paper 2 eq. 7 (S2M), 10 and 13 (S2S), 15-16 (V2V). Idempotent.
    """
    require_snn(g, "lower-residual")
    check_choice("lower-residual", "mode", mode, MODES)
    check_choice("lower-residual", "v2v_fallback", v2v_fallback, FALLBACKS)
    adds = [n.name for n in g.by_op("add")
            if any(e.kind is EdgeKind.ASC for e in g.inputs_of(n.name))]
    residual = g.attrs.get("residual", mode) if g.attrs.get("lowered") else mode
    if not adds:
        if g.attrs.get("lowered") is True and g.attrs.get("residual") == residual:
            return g
        return g.with_attrs(lowered=True, residual=residual)
    b = g.edit()
    for add in adds:
        _lower_add(b, add, mode, v2v_fallback, g.name)
    b.attrs = b.attrs.set(lowered=True, residual=residual)
    return b.build()
