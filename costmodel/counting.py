"""Per-layer counts from the IR and an activity profile (docs/costmodel.md "Counts").

A *layer* row is a weighted node (conv2d, linear) with the neurons it feeds (the lif or readout
reached through batchnorm/bntt/identity), or a neuron node fed by no weighted node. Per
inference (one sample, T steps): MACs of the ANN form; synapses (real connections, padding
excluded); weights and bytes at the target's precision; SOPs = sum_t sum_i s_i(t) F_i, binary
and graded apart (F_i from the exact connection map); sinabs-style synops (input value x
fan-out); NeuroBench-style effective ops (inputs and weights binarised); neuron updates
(active = the neuron fires that step, idle = the rest); output spikes.

One-to-one membrane inputs are synapses of the receiving layer (`residual_synapses`): an S2M
edge without projection adds N synapses of weight W' driven by the source's spikes (paper 2
eq. 7: binary SOPs), a V2V edge without projection adds N synapses carrying the current r_l
every step (eq. 15-16: graded SOPs). Projections are weighted nodes with rows of their own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node, Payload
from snnc.compiler.core.payload import edge_payload, infer_payloads
from snnc.costmodel.activity import Activity, propagate
from snnc.costmodel.connectivity import connectivity, has_conn, taps_inside
from snnc.costmodel.targets import Target

_PASS = ("batchnorm", "bntt", "identity", "dropout")
NEURON_OPS = ("lif", "readout")


@dataclass
class LayerCost:
    """Counts of one layer (per inference = one sample over T steps)."""

    name: str
    op: str
    neuron: str | None = None
    in_payload: str = "binary"
    in_bits: int = 1
    macs: int = 0
    synapses: int = 0
    nonzero_synapses: int | None = None
    weights: int = 0
    weight_bytes: float = 0.0
    neurons: int = 0
    state_bytes: float = 0.0
    in_density: float = 0.0
    sops: float = 0.0
    graded_sops: float = 0.0
    sinabs_synops: float = 0.0
    nb_effective: float = 0.0
    nb_dense: float = 0.0
    nb_kind: str = "AC"
    updates_active: float = 0.0
    updates_idle: float = 0.0
    spikes: float = 0.0
    extra_synapses: int = 0
    residual_synapses: int = 0
    cores: int = 0
    hops: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def timesteps(g: Graph) -> int:
    return int(g.attrs.get("timesteps", 1)) if g.form is Form.SNN else 1


def _bytes(count: int, bits: int | None) -> float:
    return count * (32 if bits is None else bits) / 8.0


def neuron_of(g: Graph, name: str) -> Node | None:
    """The lif/readout fed by weighted node `name` through bn/bntt/identity (main port)."""
    cur = name
    for _ in range(8):
        users = [e for e in g.users(cur) if e.src == cur and e.kind is EdgeKind.DATA]
        if len(users) != 1:
            return None
        nxt = g.node(users[0].dst)
        if nxt.op in NEURON_OPS and users[0].port == 0:
            return nxt
        if nxt.op not in _PASS:
            return None
        cur = nxt.name
    return None


def nonzero_synapses(g: Graph, node: Node) -> int | None:
    """Connections whose weight is non-zero (NeuroBench binarises weights), or None.

    For a conv2d: sum over taps (i, j) of nz[i, j] x rows[i] x cols[j], where nz counts the
    non-zero weights of tap (i, j) over (out, in/groups) and rows/cols count the output
    positions at which that tap reads inside the input (padding excluded).
    """
    key = node.param("weight")
    if key is None or g.params is None:
        return None
    import torch

    w = torch.as_tensor(g.param(key))
    if node.op == "linear":
        return int(torch.count_nonzero(w))
    c = connectivity(g, node)
    a = node.attrs
    (_, _, h, wd), (_, _, ho, wo) = c.in_shape, node.shape
    k = a.get("k", (1, 1))
    kh, kw = (k, k) if isinstance(k, int) else k
    s = a.get("stride", (1, 1))
    d = a.get("dilation", (1, 1))
    pad = tuple(a.get("pad", (0, 0, 0, 0)))
    rows = taps_inside(h, ho, kh, s[0], pad[0], d[0])
    cols = taps_inside(wd, wo, kw, s[1], pad[1], d[1])
    nz = torch.count_nonzero(w, dim=(0, 1)).numpy().astype(np.int64)
    return int(rows @ nz @ cols)


def count_layers(g: Graph, target: Target, act: Activity | None, *, stats: dict | None = None,
                 exact_weights: bool = True, payloads: dict | None = None) -> list[LayerCost]:
    """One LayerCost per layer of `g` (see module doc); SOP columns need SNN form + `act`.

    `stats`: :func:`propagate`'s result when the caller has it; `exact_weights=False` skips the
    non-zero-weight count (the ANN baseline needs MACs and bytes only); `payloads`:
    compiler.payload.infer_payloads(g) when the caller has it.
    """
    T = timesteps(g)
    snn = g.form is Form.SNN and act is not None
    if snn and stats is None:
        stats = propagate(g, act)
    stats = stats if snn else {}
    pay = payloads if payloads is not None else infer_payloads(g) if g.form is Form.SNN else {}
    wbits, sbits = target.weight_bits, target.state_bits
    rows: list[LayerCost] = []
    owned: set[str] = set()
    for n in g.nodes:
        if has_conn(n.op):
            c = connectivity(g, n)
            row = LayerCost(n.name, n.op, macs=c.macs, synapses=c.synapses,
                            weights=c.weights + c.bias)
            row.weight_bytes = _bytes(row.weights, wbits)
            row.nonzero_synapses = nonzero_synapses(g, n) if exact_weights else None
            neu = neuron_of(g, n.name)
            if neu is not None:
                owned.add(neu.name)
                row.neuron = neu.name
                _fill_neuron(row, g, neu, stats, T, sbits)
            if g.form is Form.SNN:
                e = g.inputs_of(n.name)[0]
                p = edge_payload(g, e, pay)
                row.in_payload = p.value
                if snn:
                    d, v = stats[e.value_src]
                    row.in_density = d
                    ops = d * T * c.synapses
                    if p is Payload.BINARY:
                        row.sops += ops
                    else:
                        row.graded_sops += ops
                    row.sinabs_synops = v * T * c.synapses
                    nz = c.synapses if row.nonzero_synapses is None else row.nonzero_synapses
                    row.nb_effective = d * T * nz
                    row.nb_dense = T * c.synapses
                    row.nb_kind = "AC" if p is Payload.BINARY else "MAC"
            rows.append(row)
    for n in g.nodes:
        if n.op in NEURON_OPS and n.name not in owned:
            row = LayerCost(n.name, n.op, neuron=n.name)
            _fill_neuron(row, g, n, stats, T, sbits)
            rows.append(row)
    return rows


def _fill_neuron(row: LayerCost, g: Graph, neu: Node, stats, T: int, sbits) -> None:
    row.neurons = int(math.prod(neu.shape[1:]))
    row.state_bytes = _bytes(row.neurons, sbits)
    for e in g.inputs_of(neu.name):  # one-to-one membrane inputs (projections count apart)
        if e.kind in (EdgeKind.S2M, EdgeKind.V2V) and e.projection is None:
            row.residual_synapses += row.neurons
            row.synapses += row.neurons
            if stats and e.kind is EdgeKind.S2M:  # spikes x W' (eq. 7)
                row.sops += stats[e.src][0] * T * row.neurons
            elif stats:  # the current r_l, a graded value every step (eq. 15-16)
                row.graded_sops += T * row.neurons
    if not stats:
        return
    r = stats[neu.name][0] if neu.op == "lif" else 0.0
    row.spikes = r * row.neurons * T
    row.updates_active = row.spikes
    row.updates_idle = row.neurons * T - row.spikes


def totals(rows: list[LayerCost]) -> dict[str, float]:
    """Column sums of `rows` (numeric fields)."""
    keys = ("macs", "synapses", "weights", "weight_bytes", "neurons", "state_bytes", "sops",
            "graded_sops", "sinabs_synops", "nb_dense", "updates_active", "updates_idle",
            "spikes", "extra_synapses", "residual_synapses", "hops")
    out = {k: sum(getattr(r, k) for r in rows) for k in keys}
    out["nb_effective_acs"] = sum(r.nb_effective for r in rows if r.nb_kind == "AC")
    out["nb_effective_macs"] = sum(r.nb_effective for r in rows if r.nb_kind == "MAC")
    out["memory_bytes"] = out["weight_bytes"] + out["state_bytes"]
    return out
