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
from dataclasses import dataclass, fields
from operator import attrgetter

import numpy as np

from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node, Payload
from snnc.compiler.core.payload import edge_payload, infer_payloads, reads_current
from snnc.costmodel.activity import Activity, propagate
from snnc.costmodel.connectivity import connectivity, has_conn, taps_inside
from snnc.compiler.targets import Target

_PASS = ("batchnorm", "bntt", "identity", "dropout")
NEURON_OPS = ("lif", "readout")


@dataclass
class LayerCost:
    """Counts of one layer (per inference = one sample over T steps)."""

    name: str
    op: str
    neuron: str | None = None
    in_payload: str = "binary"
    in_kind: str = ""
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
    nb_ac: float = 0.0
    nb_mac: float = 0.0
    nb_dense: float = 0.0
    nb_kind: str = "AC"
    measured: bool = False
    in_sops: float = 0.0
    in_graded_sops: float = 0.0
    membrane_graded_sops: float = 0.0
    updates_active: float = 0.0
    updates_idle: float = 0.0
    spikes: float = 0.0
    extra_synapses: int = 0
    residual_synapses: int = 0
    cores: int = 0
    hops: float = 0.0
    hosted_synapses: int = 0
    hosted_axons: int = 0
    hosted_on: list | None = None
    relay_neurons: int = 0

    def as_view(self) -> dict:
        """The row's fields as a dict in field order, to read, not to modify: the instance
        dict itself, which the dataclass's __init__ fills in field order, when it holds
        exactly the fields in that order (else one built field by field). The JSON report
        writes the rows through it without a copy (report.CostReport.dumps)."""
        d = self.__dict__
        if len(d) != len(_FIELDS) or tuple(d) != _FIELDS:
            d = {f: getattr(self, f) for f in _FIELDS}
        return d

    def as_dict(self) -> dict:
        """The row as a JSON-ready dict (field order; lists copied): a copy of `as_view`."""
        d = self.as_view().copy()
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = list(v)
        return d


_FIELDS = tuple(f.name for f in fields(LayerCost))
_DEFAULTS = {f.name: f.default for f in fields(LayerCost)}  # name and op: MISSING, always set


def _row(name: str, op: str, **values) -> LayerCost:
    """``LayerCost(name, op, **values)``, made from a copy of the defaults' dict (in field
    order, as the dataclass's __init__ fills it: `as_view` holds) instead of that __init__'s
    37 attribute stores: 0.4 instead of 1.6 us a row, 183 rows on densenet121 (measured with
    timeit on the 2-core dev machine). Every field's default is an immutable value (None, 0,
    "", False; tests/costmodel/test_counts.py checks it), so the copies share nothing."""
    row = object.__new__(LayerCost)
    d = _DEFAULTS.copy()
    d["name"] = name
    d["op"] = op
    d.update(values)
    row.__dict__ = d
    return row


def timesteps(g: Graph) -> int:
    return int(g.attrs.get("timesteps", 1)) if g.form is Form.SNN else 1


def _bytes(count: int, bits: int | None) -> float:
    return count * (32 if bits is None else bits) / 8.0


def neuron_of(g: Graph, name: str) -> Node | None:
    """The lif/readout fed by weighted node `name` through bn/bntt/identity (main port)."""
    cur = name
    data = EdgeKind.DATA
    for _ in range(8):
        user = None  # the one data edge out of `cur`; a second one ends the search
        for e in g.users(cur):
            if e.src == cur and e.kind is data:
                if user is not None:
                    return None  # e.g. a densenet conv read by every later concatenation
                user = e
        if user is None:
            return None
        nxt = g.node(user.dst)
        if nxt.op in NEURON_OPS and user.port == 0:
            return nxt
        if nxt.op not in _PASS:
            return None
        cur = nxt.name
    return None


def nonzero_synapses(g: Graph, node: Node, weight=None, conn=None, scan=None) -> int | None:
    """Connections whose weight is non-zero (NeuroBench binarises weights), or None; `weight`
    (the layer's weight as deployed, e.g. folded and quantised) replaces the graph's; `conn`:
    the node's :func:`connectivity` when the caller has it; `scan`: a costmodel.zeros.ZeroScan
    that may have tested the weight for zeros already.

    For a conv2d: sum over taps (i, j) of nz[i, j] x rows[i] x cols[j], where nz counts the
    non-zero weights of tap (i, j) over (out, in/groups) and rows/cols count the output
    positions at which that tap reads inside the input (padding excluded). When no weight is
    zero (a float network's usual case), nz[i, j] is size/(kh kw) for every tap and the sum is
    size/(kh kw) x sum(rows) x sum(cols), where sum(rows) x sum(cols) is the fan-out map's sum
    over positions (Conn.positions): one count over the weights, no per-tap pass.
    """
    w = _weight_array(g, node, weight)
    if w is None:
        return None
    dense = _no_zero(w) if scan is None else scan.no_zero(node.name, w)  # no zero weight
    if node.op == "linear":
        return w.size if dense else int(np.count_nonzero(w != 0))  # counted on a bool mask
    c = connectivity(g, node) if conn is None else conn
    a = node.attrs
    k = a.get("k", (1, 1))
    kh, kw = (k, k) if isinstance(k, int) else k
    if dense:
        per_tap, rem = divmod(w.size, kh * kw)
        if not rem:  # sum(rows) x sum(cols) = the fan-out map's sum over (h, w)
            return per_tap * c.positions
    nonzero = w != 0
    (_, _, h, wd), (_, _, ho, wo) = c.in_shape, node.shape
    s = a.get("stride", (1, 1))
    d = a.get("dilation", (1, 1))
    pad = tuple(a.get("pad", (0, 0, 0, 0)))
    rows = taps_inside(h, ho, kh, s[0], pad[0], d[0])
    cols = taps_inside(wd, wo, kw, s[1], pad[1], d[1])
    nz = np.count_nonzero(nonzero.reshape(-1, kh * kw), axis=0).astype(np.int64)  # per tap (i, j)
    return int(rows @ nz.reshape(kh, kw) @ cols)


def _weight_array(g: Graph, node: Node, weight=None) -> np.ndarray | None:
    """`weight` (the layer's as deployed) or else the graph's weight of `node`, as an array;
    None when there is neither."""
    if weight is None:
        key = node.param("weight")
        if key is None or g.params is None:
            return None
        weight = g.param(key)
    return _array(weight)


def layer_weights(g: Graph, weights: dict | None = None) -> dict[str, np.ndarray]:
    """{layer: its weight as an array}, as `count_layers` reads them for `nonzero_synapses`
    (`weights`: the deployed ones, as there): what a costmodel.zeros.ZeroScan tests."""
    deployed = weights or {}
    out = {}
    for n in g.nodes:
        if has_conn(n.op):
            w = _weight_array(g, n, deployed.get(n.name))
            if w is not None:
                out[n.name] = w
    return out


_ZERO_CHUNK = 1 << 20  # values compared with 0 at a time: a mask of at most 1 MB


def _no_zero(w: np.ndarray) -> bool:
    """`w.all()`: whether no value of `w` is zero (-0.0 is; NaN is not), for a contiguous
    array as `not (chunk == 0).any()` chunk by chunk. numpy's `all` on a float array (a
    logical-and reduction over its values cast to bool) measured slower than a comparison
    with 0 and `any` on its mask: densenet121's 32 MB of weights, read cold (the cost
    report's first read of them since the import), 3.6-3.8 -> 2.7 ms, a BLAS dot 2.3-2.4
    (docs/costmodel.md "Speed", seventh round)."""
    if not w.flags.c_contiguous:
        return bool(w.all())
    flat = w.reshape(-1)
    for i in range(0, flat.size, _ZERO_CHUNK):
        if (flat[i:i + _ZERO_CHUNK] == 0).any():
            return False
    return True


def _array(w) -> np.ndarray:
    """`w` (a tensor or array) as a numpy array, without a copy for a CPU tensor: counted by
    numpy, on this thread (torch's count_nonzero runs on its intra-op threads, whose start-up
    and spinning cost more than the count on a busy machine; docs/costmodel.md "Speed")."""
    import torch

    if isinstance(w, torch.Tensor):
        if w.dtype is not torch.bfloat16:
            try:  # a CPU tensor without grad (a graph's parameter): no detach, no .cpu()
                return w.numpy()
            except (RuntimeError, TypeError):  # requires grad, on a device, ...
                pass
        w = w.detach().cpu()
        return (w.float() if w.dtype is torch.bfloat16 else w).numpy()
    return np.asarray(w)


def count_layers(g: Graph, target: Target, act: Activity | None, *, stats: dict | None = None,
                 exact_weights: bool = True, payloads: dict | None = None,
                 weights: dict | None = None, scan=None) -> list[LayerCost]:
    """One LayerCost per layer of `g` (see module doc); SOP columns need SNN form + `act`.

    `stats`: :func:`propagate`'s result when the caller has it; `exact_weights=False` skips the
    non-zero-weight count (the ANN baseline needs MACs and bytes only); `payloads`:
    compiler.payload.infer_payloads(g) when the caller has it; `weights`: {layer: weight as
    deployed} counted for `nonzero_synapses` instead of the graph's (see `estimate`); `scan`:
    a costmodel.zeros.ZeroScan of those weights (`layer_weights`).
    """
    rows, finish = count_rows(g, target, act, stats=stats, exact_weights=exact_weights,
                              payloads=payloads, weights=weights, scan=scan)
    finish()
    return rows


def count_rows(g: Graph, target: Target, act: Activity | None, *, stats: dict | None = None,
               exact_weights: bool = True, payloads: dict | None = None,
               weights: dict | None = None, scan=None):
    """`count_layers` less the columns that read the weights' non-zero count: (rows,
    finish), `finish()` filling them in (each row's `nonzero_synapses` and, in estimate mode,
    its NeuroBench effective-operation columns). No other column depends on them, so a
    caller may do other work first while `scan`'s thread tests the weights for zeros
    (`estimate`)."""
    T = timesteps(g)
    snn = g.form is Form.SNN and act is not None
    if snn and stats is None:
        stats = propagate(g, act)
    stats = stats if snn else {}
    pay = payloads if payloads is not None else infer_payloads(g) if g.form is Form.SNN else {}
    wbits, sbits = target.weight_bits, target.state_bits
    deployed = weights or {}
    neuron_act = act if snn else None
    rows: list[LayerCost] = []
    owned: set[str] = set()
    exact: list[tuple] = []  # (row, node, connectivity): non-zero synapses, after the loop
    priors: list[tuple] = []  # (row, connectivity): the estimate-mode columns reading them
    for n in g.nodes:
        if not has_conn(n.op):
            continue
        e = g.inputs_of(n.name)[0]  # the main input, read once for the map, payload and kind
        c = connectivity(g, n, g.node(e.value_src))
        stored = c.weights + c.bias
        row = _row(n.name, n.op, macs=c.macs, synapses=c.synapses, weights=stored,
                   weight_bytes=_bytes(stored, wbits))
        if exact_weights:
            exact.append((row, n, c))
        neu = neuron_of(g, n.name)
        if neu is not None:
            owned.add(neu.name)
            row.neuron = neu.name
            _fill_neuron(row, g, neu, stats, T, sbits, neuron_act)
        if g.form is Form.SNN:
            p = edge_payload(g, e, pay)
            row.in_payload = p.value
            row.in_kind = input_kind(g, e, p)
            row.nb_dense = T * c.synapses if snn else 0.0
            if snn and n.name in act.inputs:
                _measured(row, g, n, c, act, p)
            elif snn:
                _prior(row, e, c, stats, T, p)
                priors.append((row, c))
        rows.append(row)
    for n in g.nodes:
        if n.op in NEURON_OPS and n.name not in owned:
            row = _row(n.name, n.op, neuron=n.name)
            _fill_neuron(row, g, n, stats, T, sbits, neuron_act)
            rows.append(row)

    def finish() -> None:
        for row, n, c in exact:
            row.nonzero_synapses = nonzero_synapses(g, n, deployed.get(n.name), c, scan)
        for row, c in priors:
            _prior_effective(row, c, T)

    return rows, finish


_SHAPE = ("flatten", "reshape", "identity", "dropout")


def input_kind(g: Graph, e, p: Payload) -> str:
    """The kind of a weighted layer's input, for the estimate-error table (docs/costmodel.md):
    spikes, s2s_count, maxpool, avgpool, concat, current, direct_input or graded."""
    if reads_current(e):
        return "current"
    cur = g.node(e.value_src)
    while cur.op in _SHAPE:
        cur = g.node(g.inputs_of(cur.name)[0].value_src)
    if cur.op in ("maxpool", "avgpool", "concat"):
        return cur.op
    if cur.op == "adaptive_avgpool":
        return "avgpool"
    if cur.op == "add":
        return "s2s_count"
    if cur.op in ("encoder", "input") and p is not Payload.BINARY:
        return "direct_input"
    return "spikes" if p is Payload.BINARY else "graded"


def _prior(row: LayerCost, e, c, stats, T: int, p: Payload) -> None:
    """Estimate mode: density x T x synapses (a current read by a V2V projection is dense:
    a value every step, paper 2 eq. 15, not the neuron's firing rate); the NeuroBench
    columns, which read the non-zero synapses, in `_prior_effective` once those are known."""
    d, v = (1.0, 1.0) if reads_current(e) else stats[e.value_src]
    row.in_density = d
    ops = d * T * c.synapses
    _add_sops(row, p, ops)
    row.sinabs_synops = v * T * c.synapses
    row.nb_kind = "AC" if p is Payload.BINARY else "MAC"


def _prior_effective(row: LayerCost, c, T: int) -> None:
    """Estimate mode's NeuroBench effective synaptic operations: density x T x the non-zero
    synapses (all synapses when they were not counted)."""
    nz = c.synapses if row.nonzero_synapses is None else row.nonzero_synapses
    row.nb_effective = row.in_density * T * nz
    if row.nb_kind == "AC":
        row.nb_ac = row.nb_effective
    else:
        row.nb_mac = row.nb_effective


def _add_sops(row: LayerCost, p: Payload, ops: float) -> None:
    """Book one input's SOPs on `row`: binary SOPs, or graded SOPs for a graded input."""
    row.in_sops = ops
    if p is Payload.BINARY:
        row.sops += ops
    else:
        row.graded_sops += ops
        row.in_graded_sops = ops


def _measured(row: LayerCost, g: Graph, n: Node, c, act: Activity, p: Payload) -> None:
    """Measured mode: every count from the recorded events (costmodel/measured.py)."""
    from snnc.costmodel.measured import count_input, nonzero_fanout

    rec = act.inputs[n.name]
    fan = c.fanout_map()
    ev, sops, ac, mac, syn = count_input(rec, fan, nonzero_fanout(g, n), act.samples)
    row.measured = True
    row.in_density = ev / (fan.size * max(1, act.timesteps))
    _add_sops(row, p, sops)
    row.sinabs_synops = syn * _sinabs_scale(g, g.inputs_of(n.name)[0].value_src)
    row.nb_ac, row.nb_mac = ac, mac
    row.nb_effective = ac + mac
    row.nb_kind = "AC" if not mac else "MAC" if not ac else "AC+MAC"


def _sinabs_scale(g: Graph, src: str) -> int:
    """sinabs multiplies the synops of the layer after an AvgPool2d by its kernel size^2."""
    cur = g.node(src)
    while cur.op in ("flatten", "reshape", "identity", "dropout"):
        cur = g.node(g.inputs_of(cur.name)[0].value_src)
    if cur.op != "avgpool":
        return 1
    k = cur.attrs.get("k", 1)
    return k * k if isinstance(k, int) else int(math.prod(k))


_MEMBRANE = (EdgeKind.S2M, EdgeKind.V2V)  # the kinds of a membrane input


def _fill_neuron(row: LayerCost, g: Graph, neu: Node, stats, T: int, sbits,
                 act: Activity | None = None) -> None:
    row.neurons = int(math.prod(neu.shape[1:]))
    row.state_bytes = _bytes(row.neurons, sbits)
    for e in g.inputs_of(neu.name):  # one-to-one membrane inputs (projections count apart)
        if e.kind in _MEMBRANE and e.projection is None:
            row.residual_synapses += row.neurons
            row.synapses += row.neurons
            key = f"{neu.name}/{e.src}"
            if stats and act is not None and key in act.inputs:  # measured: events x 1
                ev = float(np.asarray(act.inputs[key].events).sum()) / max(1, act.samples)
                if e.kind is EdgeKind.S2M:
                    row.sops += ev
                else:
                    row.graded_sops += ev
                    row.membrane_graded_sops += ev
            elif stats and e.kind is EdgeKind.S2M:  # spikes x W' (eq. 7)
                row.sops += stats[e.src][0] * T * row.neurons
            elif stats:  # the current r_l, a graded value every step (eq. 15-16)
                row.graded_sops += T * row.neurons
                row.membrane_graded_sops += T * row.neurons
    if not stats:
        return
    r = stats[neu.name][0] if neu.op == "lif" else 0.0
    row.spikes = r * row.neurons * T
    row.updates_active = row.spikes
    row.updates_idle = row.neurons * T - row.spikes


def baseline_totals(g: Graph, target: Target) -> dict[str, float]:
    """`macs` and `weight_bytes` of `totals(count_layers(g, target, None))`, the two totals
    the ANN baseline reads (energy.ann_baseline: MACs x E_MAC, + weight bytes x SRAM read),
    summed over the weighted nodes in the same order without building the rows (no
    activity, neurons or non-zero weights are counted for it)."""
    macs, weight_bytes = 0, 0
    bits = target.weight_bits  # a property reading the target's constants: once, not per node
    for n in g.nodes:
        if has_conn(n.op):
            c = connectivity(g, n)
            macs += c.macs
            weight_bytes += _bytes(c.weights + c.bias, bits)
    return {"macs": macs, "weight_bytes": weight_bytes}


def totals(rows: list[LayerCost]) -> dict[str, float]:
    """Column sums of `rows` (numeric fields)."""
    keys = ("macs", "synapses", "weights", "weight_bytes", "neurons", "state_bytes", "sops",
            "graded_sops", "sinabs_synops", "nb_dense", "updates_active", "updates_idle",
            "spikes", "extra_synapses", "residual_synapses", "hops")
    out = {k: sum(map(attrgetter(k), rows)) for k in keys}  # in row order, as a loop would
    out["nb_effective_acs"] = sum(map(attrgetter("nb_ac"), rows))
    out["nb_effective_macs"] = sum(map(attrgetter("nb_mac"), rows))
    out["memory_bytes"] = out["weight_bytes"] + out["state_bytes"]
    return out
