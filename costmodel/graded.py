"""Graded edges: which messages carry non-binary values, their payload bits, and what each
lowering costs on a target without graded spikes (paper 2 eq. 12, 14, 18;
hardware-targets.md sec. 7c).

A *message* is a value that crosses synapses: the input of a weighted node, or a V2V edge into
a membrane. It is graded when its payload is not binary (docs/ir.md "Payload"). Kinds:
``s2s_sum`` (an S2S add of spike trains: counts), ``s2s_projection`` (an S2S add with a
projection W'' o_{l-n}), ``v2v_current`` (V2V edge or a projection reading a current),
``direct_input`` (the frame of a direct encoder), ``avgpool`` (an average of spikes),
``graded`` (any other current reaching a synapse).

On a binary-only target the legalisation pass (``snnc.passes.legalize_graded``) records the
lowering it chose; this module prices it (chosen = the pass's; alternatives = bit-plane
encoding with b binary axons, and temporal coding with up to 2^b - 1 steps per value):

* eq. 12 (split) / eq. 14 (merge-projection): the reader's synapses exist ``synapse_copies``
  times: extra = (copies - 1) x synapses(reader);
* eq. 18 (V2V duplicate): the current is the sum of the input synapses of ``terms`` layers;
  each is copied into layer l: extra = sum of their synapses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from snnc.compiler.core.ir import EdgeKind, Form, Graph, Payload
from snnc.compiler.core.payload import edge_payload, infer_payloads, reads_current
from snnc.costmodel.activity import window
from snnc.costmodel.connectivity import connectivity, has_conn
from snnc.compiler.targets import Target

_SHAPE_ONLY = ("flatten", "reshape", "identity", "dropout", "maxpool")


@dataclass
class GradedEdge:
    """One graded message edge and what it costs (see module doc)."""

    src: str
    dst: str
    kind: str
    payload: str
    bits: int
    fits: bool
    terms: int = 1
    origin: str = ""
    lowering: str = "native"
    equation: str = ""
    extra_synapses: int = 0
    alternatives: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _origin(g: Graph, name: str) -> str:
    cur = name
    while g.node(cur).op in _SHAPE_ONLY:
        cur = g.inputs_of(cur)[0].value_src
    return cur


def _terms(g: Graph, name: str, memo: dict) -> int:
    """Binary spike terms summed in `name`'s value (1 for spikes; eq. 12 chains add up)."""
    if name in memo:
        return memo[name]
    n = g.node(name)
    ins = g.inputs_of(name)
    if n.op == "add":
        t = sum(_terms(g, e.src if e.projection else e.value_src, memo) for e in ins)
    elif n.op in _SHAPE_ONLY + ("batchnorm", "bntt") and ins:
        t = _terms(g, ins[0].value_src, memo)
    elif n.op in ("avgpool", "adaptive_avgpool"):
        t = _terms(g, ins[0].value_src, memo) * _window(g, name)
    else:
        t = 1
    memo[name] = t
    return t


def _kind(g: Graph, e, origin: str) -> str:
    n = g.node(origin)
    if reads_current(e):
        return "v2v_current"
    if n.op == "add":
        proj = any(i.projection for i in g.inputs_of(origin))
        return "s2s_projection" if proj else "s2s_sum"
    if n.op in ("avgpool", "adaptive_avgpool"):
        return "avgpool"
    if n.op in ("encoder", "input"):
        return "direct_input"
    return "graded"


def _bits(kind: str, terms: int, target: Target, input_bits: int) -> int:
    if kind in ("s2s_sum", "avgpool"):
        return max(1, math.ceil(math.log2(terms + 1)))
    if kind == "direct_input":
        return input_bits
    return int(target.value("capacity.accumulator_bits", target.state_bits or 32))


def graded_edges(g: Graph, target: Target, *, input_bits: int = 8,
                 payloads: dict | None = None, lowered: Graph | str | None = None) -> tuple[
        list[GradedEdge], list[str], Graph]:
    """Graded message edges of SNN-form `g` priced for `target`.

    `lowered`: `g` after the legalize-graded pass for `target` (the network actually emitted on
    a binary-only target), or the pass's refusal message; the cost model runs no pass itself
    (``snnc.compiler.api.cost_report`` passes it). Returns (edges, violations, graph): `graph`
    is the lowered graph when there is one, else `g`.
    """
    if g.form is not Form.SNN:
        return [], [], g
    violations: list[str] = []
    pay = infer_payloads(g) if payloads is None else payloads
    msgs = []
    for n in g.nodes:  # the edges of weighted and lif nodes only (a list copy per node read)
        if has_conn(n.op):
            cand = [g.inputs_of(n.name)[0]]
        elif n.op == "lif":
            cand = [e for e in g.inputs_of(n.name) if e.kind is EdgeKind.V2V]
        else:
            continue
        for e in cand:  # a loop, not a comprehension per node: most candidates are binary
            p = edge_payload(g, e, pay)
            if p is not Payload.BINARY:
                msgs.append((n, e, p))
    leg = g
    needed = msgs or any(n.op == "add" for n in g.nodes)
    if not target.graded_spikes and needed and not g.attrs.get("legalized"):
        if isinstance(lowered, Graph):
            leg = lowered
        elif isinstance(lowered, str):
            violations.append(lowered)
        elif msgs:
            violations.append(
                f"graph '{g.name}' is not legalised for {target.name} (binary spikes only) and "
                f"has graded messages (first: node '{msgs[0][0].name}' reads '{msgs[0][1].src}')"
                f"; compile it for {target.name} (snnc cost MODEL --target {target.name}, or "
                f"snnc.compiler.api.cost_report) to price the lowering")
    memo: dict = {}
    T = int(g.attrs.get("timesteps", 1))
    out: list[GradedEdge] = []
    for n, e, p in msgs:
        origin = _origin(g, e.value_src)
        kind = _kind(g, e, origin)
        terms = _terms(g, origin, memo)
        bits = _bits(kind, terms, target, input_bits)
        limit = target.graded_bits
        fits = target.graded_spikes and (limit is None or bits <= limit)
        ge = GradedEdge(e.src, n.name, kind, p.value, bits, fits, terms, origin)
        if not fits:
            _price(leg, ge, n.name, e, T)
            if ge.lowering in ("refused", "unlowered") and not any(
                    f"'{ge.dst}'" in v for v in violations):  # the pass's own refusal names it
                violations.append(_refusal(g, ge, target))
        out.append(ge)
    return out, violations, leg


_RULES = {
    "direct_input": "a direct encoder's frame has no binary form (use encoder=poisson or "
                    "events)",
    "v2v_current": "a V2V current reaches synapses and no lowering of paper 2 eq. 14/18 applies "
                   "(compile with --residual s2s or s2m, or pick a target with graded spikes)",
    "graded": "a current reaches synapses with no neuron between (graded residual; recompile "
              "with relu-to-lif{unactivated_add=lif} or pick a target with graded spikes)",
}


def _refusal(g: Graph, ge: GradedEdge, target: Target) -> str:
    """The violation of a graded edge no lowering of `target` can take: node, edge, rule."""
    rule = _RULES.get(ge.kind, f"a {ge.kind} value of {ge.bits} bits exceeds the target's "
                               f"graded payload ({target.graded_bits} bits)"
                      if target.graded_spikes else f"a {ge.kind} value has no binary lowering")
    return (f"node '{ge.dst}' (op {g.node(ge.dst).op}), edge '{ge.src}' -> '{ge.dst}': "
            f"{target.name} cannot take this lowering ({ge.lowering}): {rule}")


def _price(g: Graph, ge: GradedEdge, reader: str, e, T: int) -> None:
    node = g.node(reader)
    syn = connectivity(g, node).synapses if has_conn(node.op) else 0
    if e.kind is EdgeKind.V2V:
        le = next((x for x in g.inputs_of(reader) if x.kind is EdgeKind.V2V and x.src == e.src),
                  e)
        terms = le.attrs.get("terms", ())
        ge.lowering = le.attrs.get("legal", "unlowered")
        ge.equation = "paper 2 eq. 18"
        ge.extra_synapses = sum(_input_synapses(g, t) for t in terms)
    elif ge.kind in ("s2s_sum", "s2s_projection"):
        ge.lowering = "split" if ge.kind == "s2s_sum" else "merge-projection"
        ge.equation = "paper 2 eq. 12" if ge.kind == "s2s_sum" else "paper 2 eq. 14"
        factors = spike_terms(g, ge.origin, int(node.attrs.get("groups", 1)))
        ge.extra_synapses = round(sum(f for _, f in factors) * syn) - syn
    elif ge.kind == "avgpool":  # the reader reads the pool's window directly
        ge.lowering, ge.equation = "fold-into-reader", "sec. 7c"
        w, src = _window(g, ge.origin), g.inputs_of(ge.origin)[0].value_src
        factors = spike_terms(g, src, int(node.attrs.get("groups", 1)))
        ge.extra_synapses = round(w * sum(f for _, f in factors) * syn) - syn
    elif ge.kind == "v2v_current" and any(
            x.kind is EdgeKind.V2V and x.attrs.get("legal") == "merge-projection" and
            reader in _projection_path(g, x) for x in g.edges):
        # a V2V projection merged into its reader's copies (W_l W'' r, eq. 14 and 18)
        ge.lowering, ge.equation = "merged-into-reader", "paper 2 eq. 14, 18"
        ge.extra_synapses = -syn
    else:  # direct input, currents reaching a synapse: no binary form
        ge.lowering, ge.equation = "refused", "sec. 7c"
    b = ge.bits
    ge.alternatives = {"bitplane": {"extra_synapses": (b - 1) * syn, "extra_timesteps": 0},
                       "temporal": {"extra_synapses": 0, "extra_timesteps": T * (2 ** b - 2)}}


def spike_terms(g: Graph, name: str, groups: int = 1, factor: float = 1.0,
                out: list | None = None) -> list[tuple[str, float]]:
    """The binary spike sources summed in `name`'s value, each with the synapses its copy of
    the reader has, relative to the reader's own synapses (paper 2 eq. 12, 14).

    A term reached directly (S2S sum, eq. 12) is one more copy of the reader's synapses:
    factor 1. A term reached through a projection W'' is merged into the reader (W_l W'' o,
    eq. 14): every source channel reaches every reader output, so its copy has
    groups x C_src / C_sum of the reader's synapses (exact for a 1x1 projection, the paper's
    f; a lower bound for larger projection kernels).
    """
    out = [] if out is None else out
    n = g.node(name)
    ins = g.inputs_of(name)
    if n.op == "add":
        for e in ins:
            f = factor
            if e.projection is not None:
                f = factor * groups * g.node(e.src).shape[1] / n.shape[1]
            spike_terms(g, e.src, groups, f, out)
    elif n.op in _SHAPE_ONLY + ("batchnorm", "bntt") and ins:
        spike_terms(g, ins[0].value_src, groups, factor, out)
    else:
        out.append((name, factor))
    return out


def apply_lowering(g: Graph, rows: list, edges: list[GradedEdge], stats: dict | None,
                   T: int) -> None:
    """Charge each lowered edge's extra synapses to its reader's row and, with activity
    `stats` (activity.propagate), re-count that row's SOPs as the binary network does:
    S2S (eq. 12/14): sum over spike terms of density x T x the term's synapses; V2V (eq. 18):
    the term layers' input SOPs again, replacing the graded current; avgpool: the pool's mean
    spike terms' rates x T x synapses x window. A projection merged into its readers (eq. 14)
    is not emitted: its row gets extra_synapses = -synapses and no SOPs. Measured rows use
    their recorded counts (an S2S split: value x fan-out; an average pool: value x window)."""
    by_name = {r.name: r for r in rows}
    by_neuron = {r.neuron: r for r in rows if r.neuron}
    merged: set[str] = set()
    for e in edges:
        if e.fits:
            continue
        if e.kind == "s2s_projection" and e.lowering == "merge-projection":
            merged |= _projection_layers(g, e.origin)
        if e.lowering == "merged-into-reader":
            merged.add(e.dst)
            continue
        if e.kind == "avgpool" and e.lowering == "fold-into-reader":  # a pooled S2S sum
            src = _origin(g, g.inputs_of(e.origin)[0].value_src)
            if g.node(src).op == "add":
                merged |= _projection_layers(g, src)
        row = by_name.get(e.dst) or by_neuron.get(e.dst)
        if row is None:
            continue
        row.extra_synapses += e.extra_synapses
        if not stats or e.lowering == "refused":
            continue
        if e.kind in ("s2s_sum", "s2s_projection"):
            syn = row.synapses - row.residual_synapses
            node = g.node(row.name)
            if row.measured and e.kind == "s2s_sum":  # each spike of each term: its own copy
                row.sops += row.sinabs_synops
            else:
                row.sops += sum(stats[s][0] * T * f * syn for s, f in
                                spike_terms(g, e.origin, int(node.attrs.get("groups", 1))))
            row.graded_sops -= row.in_graded_sops
        elif e.kind == "avgpool":  # each spike under a window reaches the reader's fan-out
            syn = row.synapses - row.residual_synapses
            w = _window(g, e.origin)
            if row.measured:  # value x window = the spikes under the window, per element
                n = g.node(e.origin)
                k = n.attrs.get("k") if n.op == "avgpool" else None
                scale = (k * k if isinstance(k, int) else math.prod(k)) if k else 1
                row.sops += row.sinabs_synops / scale * w
            else:
                src = g.inputs_of(e.origin)[0].value_src
                terms = spike_terms(g, src, int(g.node(row.name).attrs.get("groups", 1)))
                row.sops += sum(stats[s][0] * f for s, f in terms) * T * syn * w
            row.graded_sops -= row.in_graded_sops
        elif e.kind == "v2v_current" and e.lowering != "unlowered":
            le = next(x for x in g.inputs_of(e.dst) if x.kind is EdgeKind.V2V and x.src == e.src)
            if le.projection is None:  # the one-to-one graded current is gone
                row.graded_sops -= row.membrane_graded_sops
                row.synapses -= row.neurons
                row.residual_synapses -= row.neurons
            for t in le.attrs.get("terms", ()):
                w = _input_layer(g, t)
                if w is None:
                    continue
                src_row = by_name.get(w)
                if src_row is not None and src_row.measured:  # its input SOPs, counted
                    row.sops += src_row.in_sops
                else:
                    src = g.inputs_of(w)[0].value_src
                    row.sops += stats[src][0] * T * connectivity(g, g.node(w)).synapses
        row.graded_sops = max(0.0, row.graded_sops)
    for name in merged:  # W'' lives on in W_l W'' (eq. 14): its own synapses are gone
        row = by_name[name]
        row.extra_synapses = -row.synapses
        row.sops = row.graded_sops = 0.0


def _projection_path(g: Graph, e) -> set[str]:
    """The nodes on skip edge `e`'s projection path (from its end back to its source)."""
    out, cur = set(), e.projection
    while cur is not None and cur != e.src and cur not in out:
        out.add(cur)
        ins = g.inputs_of(cur)
        cur = ins[0].value_src if ins else None
    return out


def _projection_layers(g: Graph, add: str) -> set[str]:
    """Weighted nodes on the projection paths into `add` (merged into its readers, eq. 14)."""
    out = set()
    for x in g.inputs_of(add):
        cur = x.projection
        while cur is not None and cur != x.src:
            if has_conn(g.node(cur).op):
                out.add(cur)
            ins = g.inputs_of(cur)
            cur = ins[0].value_src if ins else None
    return out


def _window(g: Graph, pool: str) -> int:
    """Inputs averaged into one output of an average pool: k x k, or for an adaptive pool the
    input positions per output position (activity.window)."""
    n = g.node(pool)
    return window(n.attrs, g.node(g.inputs_of(pool)[0].value_src).shape, n.shape)


def _input_layer(g: Graph, lif: str) -> str | None:
    """The weighted node feeding `lif`'s main port (through bn/bntt/identity)."""
    cur = lif
    for _ in range(8):
        ins = g.inputs_of(cur)
        if not ins:
            return None
        cur = ins[0].value_src
        if has_conn(g.node(cur).op):
            return cur
    return None


def _input_synapses(g: Graph, lif: str) -> int:
    """Synapses of the weighted node feeding `lif`'s main port (through bn/bntt)."""
    w = _input_layer(g, lif)
    return 0 if w is None else connectivity(g, g.node(w)).synapses
