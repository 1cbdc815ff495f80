"""Activity profiles: how often each node's output is non-zero, per element and time step.

A profile is data (the cost model imports no backend): a firing rate per lif node (spikes per
neuron per step), from one of three sources, which every report names:

* ``prior``: one rate for all layers, or a rate per layer, chosen before training;
* ``calibration``: activity a backend recorded on a few samples of real data;
* ``measured``: activity recorded after training.

Two modes (docs/costmodel.md): *estimate* (rates only: SOPs = density x T x synapses, the
densities propagated below) and *measured* (``inputs`` holds every synaptic input's recorded
event maps: SOPs are counted event by event, costmodel/measured.py).

`propagate` carries the rates through the rest of the graph. For each node it gives the
*density* d (fraction of non-zero output elements per step: events a target must send) and the
mean *value* v (sinabs counts input value x fan-out). Rules, assuming independent spikes:
maxpool over a window of w binary inputs d = 1 - (1 - d_in)^w; average pools keep v and set
d = 1 - (1 - d_in)^w; add d = 1 - prod(1 - d_i), v = sum v_i; concat: channel-weighted means;
weighted/normalising nodes (conv, linear, bn, bntt, readout, vote) and direct input are
graded with d = v = 1 (every element sends a value each step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.payload import reads_current

SOURCES = ("prior", "calibration", "measured")


@dataclass(frozen=True)
class Activity:
    """Firing rates per lif (or encoder) node, with where they came from."""

    source: str = "prior"
    rates: Mapping[str, float] = field(default_factory=dict)
    default: float | None = None
    note: str = ""
    inputs: Mapping[str, object] = field(default_factory=dict)
    samples: int = 0
    timesteps: int = 0

    @property
    def mode(self) -> str:
        """``measured`` when synaptic inputs were recorded, else ``estimate``."""
        return "measured" if self.inputs else "estimate"

    def rate(self, name: str) -> float:
        if name in self.rates:
            return float(self.rates[name])
        if self.default is None:
            raise SnncError(f"activity profile ({self.source}) has no rate for node '{name}' and "
                            f"no default rate; pass rates=<float> or a rate for every lif node")
        return float(self.default)

    def describe(self) -> str:
        what = {"prior": "firing-rate prior", "calibration": "calibration on data",
                "measured": "activity recorded after training"}[self.source]
        parts = [f"{self.mode} mode", what]
        if self.inputs:
            parts.append(f"{len(self.inputs)} synaptic inputs counted event by event over "
                         f"{self.samples} samples")
        if self.default is not None:
            parts.append(f"default rate {self.default:g}")
        if self.rates:
            parts.append(f"{len(self.rates)} per-layer rates")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def as_activity(rates) -> Activity:
    """An Activity from None (prior 0.1), a float (one prior rate), a dict, or an Activity."""
    if isinstance(rates, Activity):
        return rates
    if rates is None:
        return Activity("prior", {}, 0.1, "default prior (no rate given)")
    if isinstance(rates, (int, float)):
        if not 0.0 <= float(rates) <= 1.0:
            raise SnncError(f"--rate {rates} is not a firing rate in [0, 1] (spikes per neuron "
                            f"per time step)")
        return Activity("prior", {}, float(rates))
    if isinstance(rates, Mapping):
        rates = dict(rates)
        default = rates.pop("*", None)
        for k, v in rates.items():
            if not 0.0 <= float(v) <= 1.0:
                raise SnncError(f"rate {v} for node '{k}' is not in [0, 1]")
        return Activity("prior", rates, default)
    raise SnncError(f"rates must be None, a float, a dict or an Activity; got {type(rates)}")


def window(attrs, shape_in, shape_out) -> int:
    """Inputs per output of a pool: k x k, or (adaptive) input positions per output position."""
    if "k" in attrs:
        k = attrs["k"]
        return k * k if isinstance(k, int) else int(math.prod(k))
    # adaptive pool: input positions per output position
    return max(1, int(math.prod(shape_in[2:]) // max(1, math.prod(shape_out[2:]))))


_POOLS = ("maxpool", "avgpool", "adaptive_avgpool")
_PASSED = ("relu", "clip", "dropout", "identity", "flatten", "reshape")
_FROM_INPUTS = _POOLS + _PASSED + ("add", "concat")  # ops whose figures their inputs set


def propagate(g: Graph, act: Activity) -> dict[str, tuple[float, float]]:
    """(density, mean value) of every node's output per element per step (see module doc).

    Only the ops of `_FROM_INPUTS` read their inputs' figures: the others (lif, encoder,
    input, and the graded values of conv2d, linear, batchnorm, bntt, readout, vote, ...) are
    set without looking at their edges."""
    out: dict[str, tuple[float, float]] = {}
    elems: dict[str, int] = {}  # elements per sample of the nodes concatenations read
    for n in g.nodes:
        op = n.op
        if op == "lif" or (op == "encoder" and n.attrs.get("kind", "direct") != "direct"):
            r = act.rate(n.name)
            out[n.name] = (r, r)
            continue
        if op not in _FROM_INPUTS:  # input, direct encoder; graded values
            out[n.name] = (1.0, 1.0)
            continue
        ins = g.inputs_of(n.name)
        if op == "concat":  # densenet: each feature map is read by every later concat
            # one pass over the inputs (densenet121: 535 of its 1,025 edges end in a concat),
            # summed in input order from 0, as sum() over lists of them was: the same floats
            tot, dsum, vsum = 0, 0, 0
            for e in ins:
                src = e.value_src
                size = elems.get(src)
                if size is None:
                    size = elems[src] = math.prod(g.node(src).shape[1:])
                d, v = (1.0, 1.0) if reads_current(e) else out[src]
                tot += size
                dsum += size * d
                vsum += size * v
            tot = tot or 1
            out[n.name] = (dsum / tot, vsum / tot)
            continue
        main = [(1.0, 1.0) if reads_current(e) else out[e.value_src] for e in ins]
        if op in _POOLS:
            d, v = main[0]
            w = window(n.attrs, g.node(ins[0].value_src).shape, n.shape)
            dd = 1.0 - (1.0 - d) ** w
            out[n.name] = (dd, dd if op == "maxpool" else v)
        elif op == "add":
            prod = math.prod(1.0 - d for d, _ in main)
            out[n.name] = (1.0 - prod, sum(v for _, v in main))
        else:  # relu, clip, dropout, identity, flatten, reshape
            out[n.name] = main[0]
    return out
