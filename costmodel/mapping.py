"""Core allocation under a target's limits, and the violations (docs/costmodel.md "Mapping").

Each layer row with neurons is partitioned onto cores by the target's `mapping` model:

* ``loihi`` (Loihi 1, Davies 2018 p.89 constraints; nengo-loihi): the fewest cores c with
  ceil(N/c) <= neurons_per_core, in-axons <= in_axons_per_core, synapse bits (nengo-loihi
  ``bits_per_axon``: per list of <= 64 weights n*(weight+delay+tag bits) + 4 + 6 rounded up to
  64) <= synapse_bits_per_core and ceil(N/c) * (reader layers) <= out_axons_per_core. Conv
  layers are split spatially (a core sees ceil(N_in/c) input axons), dense layers see all inputs.
* ``loihi2``: two rules and two constants, both fitted on one network (lava-dl's PilotNet SNN,
  Intel's per-core table) and tested on another (lava-dl's Oxford network; docs/costmodel.md
  "Loihi 2 cores"): spatial layers are cut along x into power-of-two column chunks holding
  fewer than ``conv_block_neurons`` (4096) neurons; dense layers hold
  floor(dense_synapses_per_core (23040) / fan-in) neurons per core.
* ``truenorth``: 256 neurons x 256 axons per core: ceil(N/256) * ceil(fan-in/256) cores.
* ``speck``: one layer per core, at most 9 layers, 2 destinations per layer, kernel/neuron
  memory by sinabs' formulas.
Chips = ceil(cores / cores_per_chip). Hops: layers are laid out in order on a square mesh
of tiles; a spike travels the Manhattan distance between its layer's and its reader's centre.
"""

from __future__ import annotations

import math

from snnc.compiler.core.ir import Graph
from snnc.costmodel.counting import LayerCost
from snnc.compiler.targets import Target


def bits_per_axon(n_weights: int, weight_bits: int, delay_bits: int = 0, tag_bits: int = 0,
                  word: int = 64) -> int:
    """nengo-loihi SynapseConfig.bits_per_axon for `n_weights` dense synapses of one axon:
    per list of at most 64 weights, n x (weight + delay + tag bits) + 4 + 6 bits, rounded up to
    a multiple of the 64-bit word (computed in closed form: full lists, then the rest)."""
    per = weight_bits + delay_bits + tag_bits
    full, rest = divmod(max(0, int(n_weights)), 64)
    bits = full * (-(-(64 * per + 10) // word) * word)
    if rest:
        bits += -(-(rest * per + 10) // word) * word
    return bits


def _readers(g: Graph, rows: list[LayerCost]) -> dict[str, list[LayerCost]]:
    """For each row's neuron, the rows whose weighted node reads it (through shape ops)."""
    by_w = {r.name: r for r in rows}
    out: dict[str, list[LayerCost]] = {r.neuron: [] for r in rows if r.neuron}
    for r in rows:
        if r.neuron is None:
            continue
        seen, stack = set(), [r.neuron]
        while stack:
            cur = stack.pop()
            for e in g.users(cur):
                if e.dst in seen:
                    continue
                seen.add(e.dst)
                if e.dst in by_w:
                    out[r.neuron].append(by_w[e.dst])
                elif g.node(e.dst).op not in ("lif", "readout"):
                    stack.append(e.dst)
    return out


def allocate(g: Graph, rows: list[LayerCost], target: Target) -> tuple[int, int, list[str]]:
    """Fill `row.cores` and `row.hops`; return (cores, chips, violations)."""
    model = target.mapping
    if model == "none":
        return 0, 0, []
    readers = _readers(g, rows)
    viol: list[str] = []
    fn = {"loihi": _loihi, "loihi2": _loihi2, "truenorth": _truenorth, "speck": _speck}[model]
    for r in rows:
        if r.neurons:
            r.cores = fn(g, r, target, len(readers.get(r.neuron, [])) or 1, viol)
    if model == "speck":
        _speck_graph(rows, readers, target, viol)
    _check_weight_bits(g, target, viol)
    cores = sum(r.cores for r in rows)
    per_chip = target.value("capacity.cores_per_chip")
    chips = math.ceil(cores / per_chip) if per_chip else 1
    _hops(rows, readers, target)
    return cores, chips, viol


def _fanin(r: LayerCost) -> float:
    """Mean synapses per neuron of the layer as emitted (lowering copies included)."""
    syn = r.synapses + r.extra_synapses + r.hosted_synapses
    return syn / r.neurons if r.neurons and syn else 0.0


def _in_neurons(g: Graph, r: LayerCost) -> int:
    """Input axons of the layer as emitted: its input's neurons, times the synapse copies a
    binary-only lowering made (each copy is driven by its own source: eq. 12/14/18)."""
    if not r.synapses:
        return r.hosted_axons
    src = g.inputs_of(r.name)[0].value_src
    n = math.prod(g.node(src).shape[1:])
    return math.ceil(n * (r.synapses + r.extra_synapses) / r.synapses) + r.hosted_axons


def _loihi(g, r, t, n_readers, viol) -> int:
    lim = t.limits
    n_in = _in_neurons(g, r)
    conv = r.op == "conv2d"
    if not conv and n_in > lim["in_axons_per_core"]:
        viol.append(f"node '{r.name}' (op {r.op}): fan-in {n_in} input axons exceeds "
                    f"in_axons_per_core = {lim['in_axons_per_core']} ({t.name}); split the "
                    f"layer's inputs or reduce its width")
    wb = int(g.attrs.get("weight_bits", t.weight_bits or 8))

    def fits(c: int) -> bool:
        per = math.ceil(r.neurons / c)
        axons = math.ceil(n_in / c) if conv else n_in
        syn_per_axon = (r.synapses + r.extra_synapses + r.hosted_synapses) / c / axons \
            if axons else 0
        bits = axons * bits_per_axon(math.ceil(syn_per_axon), wb,
                                     lim.get("delay_bits", 0), lim.get("tag_bits", 0))
        return (bits <= lim["synapse_bits_per_core"] and per * n_readers <=
                lim["out_axons_per_core"] and (conv and axons <= lim["in_axons_per_core"]
                                               or not conv))

    lo = max(1, math.ceil(r.neurons / lim["neurons_per_core"]))
    for c in range(lo, min(lo + 64, r.neurons + 1)):  # the smallest split, scanned
        if fits(c):
            return c
    if lo + 64 <= r.neurons and fits(r.neurons):  # beyond: bisect (the limits shrink with c)
        a, b = lo + 64, r.neurons
        while a < b:
            m = (a + b) // 2
            a, b = (a, m) if fits(m) else (m + 1, b)
        return a
    viol.append(f"node '{r.name}' (op {r.op}): no split fits synapse_bits_per_core = "
                f"{lim['synapse_bits_per_core']} even with one neuron per core")
    return r.neurons


def _loihi2(g, r, t, n_readers, viol) -> int:
    shape = g.node(r.neuron or r.name).shape
    if len(shape) == 4:  # a spatial layer (conv, or neurons fed by the frame)
        _, c, h, w = shape
        limit = t.value("capacity.conv_block_neurons", 4096)
        chunk = 1
        while chunk * 2 * h * c < limit and chunk * 2 <= w:
            chunk *= 2
        if chunk * h * c >= limit:
            viol.append(f"node '{r.name}' (op {r.op}): one column holds {h * c} neurons, more "
                        f"than the conv block limit {limit} of {t.name}")
        return math.ceil(w / chunk)
    fanin = max(1.0, _fanin(r))
    budget = t.value("capacity.dense_synapses_per_core", 23040)
    per = max(1, int(budget // fanin))
    return math.ceil(r.neurons / per)


def _truenorth(g, r, t, n_readers, viol) -> int:
    lim = t.limits
    f = _fanin(r)
    if f > lim["fanin_per_neuron"]:
        viol.append(f"node '{r.name}' (op {r.op}): fan-in {f:.0f} per neuron exceeds "
                    f"{lim['fanin_per_neuron']} axons per core ({t.name}); the layer needs "
                    f"partial-sum neurons (an extra layer)")
    return math.ceil(r.neurons / lim["neurons_per_core"]) * max(1, math.ceil(
        f / lim["in_axons_per_core"]))


def _speck(g, r, t, n_readers, viol) -> int:
    lim = t.limits
    node = g.node(r.name) if r.synapses else None
    if node is not None and node.op == "conv2d":
        a = node.attrs
        k = a.get("k", (1, 1))
        kh, kw = (k, k) if isinstance(k, int) else k
        cin, cout = a.get("in"), a.get("out")
        _, _, ho, wo = node.shape
        if max(kh, kw) > lim["max_kernel"]:
            viol.append(f"node '{r.name}' (op conv2d): kernel {kh}x{kw} exceeds "
                        f"{lim['max_kernel']}x{lim['max_kernel']} (speck)")
        if cout > lim["max_channels"]:
            viol.append(f"node '{r.name}' (op conv2d): {cout} channels exceed "
                        f"{lim['max_channels']} (speck)")
        if max(ho, wo) > lim["max_output_size"]:
            viol.append(f"node '{r.name}' (op conv2d): output map {ho}x{wo} exceeds "
                        f"{lim['max_output_size']}x{lim['max_output_size']} (speck)")
        kmem = cin * 2 ** (math.ceil(math.log2(kh * kw)) + math.ceil(math.log2(cout)))
        nmem = cout * 2 ** (math.ceil(math.log2(ho)) + math.ceil(math.log2(wo)))
        if kmem > max(lim["kernel_memory"]) or nmem > max(lim["neuron_memory"]):
            viol.append(f"node '{r.name}' (op conv2d): kernel memory {kmem} / neuron memory "
                        f"{nmem} entries exceed every speck core ({max(lim['kernel_memory'])}"
                        f" / {max(lim['neuron_memory'])})")
    return 1


def _speck_graph(rows, readers, t, viol) -> None:
    lim = t.limits
    layers = [r for r in rows if r.neurons]
    if len(layers) > lim["cores_per_chip"]:
        viol.append(f"{len(layers)} neuron layers exceed speck's {lim['cores_per_chip']} cores "
                    f"(one layer per core); first layer past the limit: "
                    f"'{layers[lim['cores_per_chip']].name}'")
    for r in layers:
        n = len(readers.get(r.neuron, []))
        if n > lim["destinations_per_core"]:
            viol.append(f"node '{r.neuron}' (op lif): {n} destination layers exceed "
                        f"{lim['destinations_per_core']} per core (speck)")


def _check_weight_bits(g: Graph, t: Target, viol: list[str]) -> None:
    allowed = t.value("capacity.weight_bits_allowed")
    wb = g.attrs.get("weight_bits")
    if allowed and wb is not None and wb not in allowed:
        names = [n.name for n in g.nodes if n.op in ("conv2d", "linear")]
        viol.append(f"graph '{g.name}', weighted nodes {', '.join(repr(n) for n in names[:3])}"
                    f"{' ...' if len(names) > 3 else ''}: weight_bits={wb} is not a weight "
                    f"format of {t.name} (allowed {allowed}); quantize to one of them")


def _hops(rows: list[LayerCost], readers, t: Target) -> None:
    per_tile = int(t.value("capacity.cores_per_tile", 1))
    start, pos = 0, {}
    for r in rows:
        pos[r.neuron] = (start, start + max(r.cores, 1))
        start += max(r.cores, 1)
    side = max(1, math.ceil(math.sqrt(math.ceil(start / per_tile))))

    def centre(a, b):
        tile = ((a + b - 1) / 2) / per_tile
        return (tile % side, tile // side)
    for r in rows:
        if not r.neuron or not r.spikes:
            continue
        x0, y0 = centre(*pos[r.neuron])
        d = [abs(x0 - centre(*pos[q.neuron])[0]) + abs(y0 - centre(*pos[q.neuron])[1])
             for q in readers.get(r.neuron, []) if q.neuron in pos]
        r.hops = r.spikes * sum(d)
