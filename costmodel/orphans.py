"""Synapses whose layer has no neuron of its own (docs/costmodel.md "Currents passed on").

In pre-activation and concatenating networks (preresnet, densenet) and in S2S projections, a
conv/linear node's output current is not integrated (only) by a lif of its own: it is summed or
concatenated and reaches *later* neurons (or a later layer's synapses), e.g. a pre-activation
block's identity skip carries the previous layer's current to the next block's neurons. On a
chip those synapses still need a core. Each such row is priced by the lowering the target
would use:

* **hosted** (every target): the synapses are placed on the cores of each lif/readout the
  current reaches through sums, concatenations, normalisations and pools; with k such
  consumers besides the row's own neuron, the synapses exist k more times (the recursion of
  paper 2 eq. 15/18 applied to currents): extra synapses k x synapses, SOPs (k + 1) x the
  input's (a row without a neuron of its own: k - 1 and k), and each consumer's
  fan-in grows by the hosted synapses (mapping);
* **relay** (targets with graded spikes, when the current reaches another layer's synapses):
  one relay neuron per output element sends the current as a graded spike every step; the
  row gets those neurons (cores, updates, graded spikes);
* otherwise a violation naming the node, the edge and the rule.
A row merged into its reader by a lowering (extra_synapses = -synapses) needs nothing.
"""

from __future__ import annotations

import math

from snnc.compiler.core.ir import Graph
from snnc.costmodel.connectivity import has_conn
from snnc.costmodel.counting import NEURON_OPS, LayerCost
from snnc.compiler.targets import Target


def projection_ends(g: Graph) -> dict[str, list]:
    """{projection: the skip edges that name it}: a projection's output travels on them."""
    ends: dict[str, list] = {}
    for e in g.edges:
        if e.projection is not None:
            ends.setdefault(e.projection, []).append(e)
    return ends


_NEURON, _READER, _THROUGH = 0, 1, 2


def _reach(g: Graph, ends: dict[str, list]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """What `consumers` walks, read once per graph: each node's successors (the readers of
    its output as source, in edge order as `Graph.users` lists them, then the skip edges
    whose projection it is) and each node's kind (a neuron, a weighted reader, or passed
    through). `place_orphans` walks from every weighted row, and densenet's walks cross the
    same concatenations dozens of times: one pass over the edges and nodes costs less than
    a `Graph.users` copy per step."""
    succ: dict[str, list[str]] = {n.name: [] for n in g.nodes}
    for e in g.edges:  # a list per name made here only for a name not a node (no setdefault)
        try:
            succ[e.src].append(e.dst)
        except KeyError:
            succ[e.src] = [e.dst]
    for name, es in ends.items():
        succ.setdefault(name, []).extend(e.dst for e in es)
    of_op: dict[str, int] = {}  # each op's kind, found once (densenet121: 12 ops, 491 nodes)
    kind = {}
    for n in g.nodes:
        k = of_op.get(n.op)
        if k is None:
            k = of_op[n.op] = _NEURON if n.op in NEURON_OPS else \
                _READER if has_conn(n.op) else _THROUGH
        kind[n.name] = k
    return succ, kind


def consumers(g: Graph, name: str, ends: dict[str, list] | None = None,
              reach: tuple | None = None) -> tuple[list[str], list[str]]:
    """(neurons, weighted readers) reached from `name`'s output through non-weighted,
    non-neuron nodes; `ends`: `projection_ends(g)` when the caller has it; `reach`: the
    graph's `_reach` when the caller walks from several nodes."""
    succ, kind = _reach(g, projection_ends(g) if ends is None else ends) \
        if reach is None else reach
    neurons, readers, seen, stack = [], [], {name}, [name]
    while stack:
        for d in succ.get(stack.pop(), ()):
            if d in seen:
                continue
            seen.add(d)
            k = kind.get(d)
            if k is None:  # an edge to a node the graph does not hold
                g.node(d)  # raises, naming it
            if k == _NEURON:
                neurons.append(d)
            elif k == _READER:
                readers.append(d)
            else:
                stack.append(d)
    return neurons, readers


def place_orphans(g: Graph, rows: list[LayerCost], target: Target, T: int) -> tuple[
        list[str], list[str]]:
    """Price every weighted row without a neuron (module doc); returns (violations, notes)."""
    by_neuron = {r.neuron: r for r in rows if r.neuron}
    viol: list[str] = []
    hosted = relayed = 0
    reach = _reach(g, projection_ends(g))
    for r in rows:
        if not has_conn(r.op) or not r.synapses or r.extra_synapses == -r.synapses:
            continue
        neurons, readers = consumers(g, r.name, reach=reach)
        own = r.neuron
        hosts = [h for n in neurons if n != own and (h := by_neuron.get(n)) is not None]
        if hosts:
            k = len(hosts) - (0 if r.neuron else 1)  # copies beyond the row's own
            copies = r.synapses - r.residual_synapses + r.extra_synapses
            r.extra_synapses += k * copies
            r.sops *= (k + 1)
            r.graded_sops *= (k + 1)
            r.hosted_on = [h.neuron for h in hosts]
            src = g.inputs_of(r.name)[0].value_src
            axons = int(math.prod(g.node(src).shape[1:]))
            for h in hosts:
                h.hosted_synapses += copies
                h.hosted_axons += axons
            hosted += 1
        if readers and not r.neuron:
            if target.graded_spikes:
                n = int(math.prod(g.node(r.name).shape[1:]))
                r.relay_neurons = n
                r.neurons += n
                r.updates_idle += n * T
                r.spikes += n * T  # a graded spike per element and step (dense current)
                relayed += 1
            else:
                viol.append(f"node '{r.name}' (op {r.op}), edge '{r.name}' -> "
                            f"'{readers[0]}': its current reaches the synapses of "
                            f"'{readers[0]}' with no neuron between, and {target.name} has "
                            f"only binary spikes (no relay; rule: docs/costmodel.md "
                            f"\"Currents passed on\")")
        if not r.neuron and not hosts and not readers:
            viol.append(f"node '{r.name}' (op {r.op}): its output reaches no neuron and no "
                        f"layer; its synapses cannot be placed on {target.name}")
    notes = []
    if hosted:
        notes.append(f"{hosted} layer(s) without a neuron of their own: synapses hosted on "
                     f"the cores of the neurons their current reaches (copied per neuron, "
                     f"paper 2 eq. 18 recursion)")
    if relayed:
        notes.append(f"{relayed} layer(s) whose current reaches another layer's synapses: "
                     f"relay neurons send it as graded spikes ({target.name})")
    return viol, notes
