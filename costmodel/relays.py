"""The graded relays the Lava lowering adds to a target-exact Loihi 2 graph for projection
shortcuts (docs/lava.md "Relays", docs/costmodel.md "Lava relays"), priced by the rules of the
other layers: neurons, their updates and graded spikes, the synapses that feed them and the
SOPs those synapses do, and the bias unit that gives a relay its bias.

The rule for which values cross a relay is the one the lowering and the PyTorch backend use
(`snnc.compiler.core.relays.is_relay_edge`):

* an S2S projection's output (post-activation unit, paper 2 eq. 13): one relay neuron per
  output element, a graded spike every step. `orphans.place_orphans` already prices it (a
  weighted row without a neuron whose current reaches another layer's synapses); this module
  adds its bias unit;
* the source current of a V2V projection (`tap=current`, eq. 15-16): one relay neuron per
  element of the source lif, a graded spike every step, fed by *copies* of the synapses that
  make the source's current (its main synapses and the skip synapses into it other than S2M:
  the same inputs, so the same SOPs again); the projection's synapses read the relay;
* a bias unit per relay with a non-zero bias: m neurons per pixel (m = ceil(max |64 b| / 255),
  1 for |b| < 4) firing every step, and a 1x1 synapse from each to every channel.

Relays of pre-activation nets (the input of a batchnorm that cannot fold, an average pool of a
current) stay priced by `orphans` as hosted synapses; the lowering relays them instead (see
docs/costmodel.md)."""

from __future__ import annotations

import math

from snnc.compiler.core.ir import EdgeKind, Graph
from snnc.compiler.core.relays import exact_loihi2, is_relay_edge
from snnc.costmodel.counting import LayerCost

_CHAIN = ("batchnorm", "identity", "dropout")


def _weighted(g: Graph, name: str) -> str | None:
    """The conv2d/linear whose value `name` is (through batchnorm/identity/dropout)."""
    while name is not None:
        n = g.node(name)
        if n.op in ("conv2d", "linear"):
            return name
        if n.op not in _CHAIN:
            return None
        ins = g.inputs_of(name)
        name = ins[0].value_src if ins else None
    return None


def _bias_units(g: Graph, value: str) -> int:
    """m, the bias unit's neurons per pixel for the relay of `value` (0: no bias). A folded BN
    or a layer bias gives a bias; with parameters its largest magnitude sets m."""
    n = g.node(value)
    w = _weighted(g, value)
    has_bias = n.op == "batchnorm" or (w is not None and g.node(w).param("bias") is not None)
    if not has_bias:
        return 0
    if g.params is None or w is None:
        return 1
    import torch

    conv = g.node(w)
    b = g.params[conv.param("bias")].double() if conv.param("bias") else None
    if n.op == "batchnorm":
        p = {r: g.params[n.param(r)].double() for r in ("weight", "bias", "running_mean",
                                                        "running_var")}
        s = p["weight"] / torch.sqrt(p["running_var"] + n.attrs.get("eps", 1e-5))
        shift = p["bias"] - p["running_mean"] * s
        b = shift if b is None else b * s + shift
    q = torch.round(b * 64).abs().max().item()
    return 0 if q == 0 else max(1, math.ceil(q / 255))


def _add_bias_unit(row: LayerCost, shape, m: int, T: int) -> None:
    """m neurons per pixel firing every step, 1x1 synapses to every channel of the relay."""
    if not m:
        return
    c = shape[0]
    pixels = int(math.prod(shape[1:]))
    n = m * pixels
    row.relay_neurons += n
    row.neurons += n
    row.spikes += n * T
    row.updates_active += n * T
    row.extra_synapses += n * c
    row.sops += n * c * T  # binary spikes every step, fan-out c


def price_lava_relays(g: Graph, rows: list[LayerCost], T: int) -> list[str]:
    """Add the V2V projection relays and the relays' bias units of a target-exact loihi2
    graph to `rows` (module doc); returns notes. Other graphs: unchanged, no notes."""
    if not exact_loihi2(g):
        return []
    by_name = {r.name: r for r in rows}
    by_neuron = {r.neuron: r for r in rows if r.neuron}
    done: set[str] = set()
    v2v = bias = 0
    for e in g.edges:
        if not is_relay_edge(g, e):
            continue
        if e.kind is EdgeKind.S2S and e.projection is not None:
            if e.projection in done:
                continue
            done.add(e.projection)
            row = by_name.get(_weighted(g, e.projection))
            m = _bias_units(g, e.projection)
            if row is not None and m:
                _add_bias_unit(row, g.node(e.projection).shape[1:], m, T)
                bias += 1
        elif e.attrs.get("tap") == "current":
            key = f"{e.src}__current"
            row, src = by_name.get(_weighted(g, e.dst) or e.dst), by_neuron.get(e.src)
            if key in done or row is None or src is None:
                continue
            done.add(key)
            shape = g.node(e.src).shape[1:]
            n = int(math.prod(shape))
            row.relay_neurons += n
            row.neurons += n
            row.updates_idle += n * T  # a graded spike per element and step (dense current)
            row.spikes += n * T
            copies = src.synapses - src.residual_synapses + src.extra_synapses
            row.extra_synapses += copies  # the source's synapses, again into the relay
            row.sops += src.sops
            row.graded_sops += src.graded_sops
            v2v += 1
            m = _bias_units(g, g.inputs_of(e.src)[0].value_src)
            if m:
                _add_bias_unit(row, shape, m, T)
                bias += 1
    notes = []
    if v2v:
        notes.append(f"{v2v} V2V projection(s) read their source's current through a graded "
                     f"relay (Lava lowering): relay neurons and a copy of the source's synapses")
    if bias:
        notes.append(f"{bias} relay bias unit(s) (Lava lowering): neurons firing every step "
                     f"through 1x1 synapses")
    return notes
