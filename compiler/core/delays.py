"""Delay depth: how many time steps the input needs to reach the readout (docs/passes.md
"Delay depth").

On a target with synaptic delay d per layer (loihi2: d = 1, graph attr `synaptic_delay`), every
lif's spikes reach their readers d steps later. A path from the input to a readout through k
lifs therefore delivers the input at step k d at the earliest. The *shortest* such path is the
first step at which the readout can see the input at all: with T <= that depth the output does
not depend on the input. The *longest* path is when every layer has seen it.

    d = delay_depth(graph)          # DelayDepth(shortest=10, longest=19, delay=1)
    d.min_timesteps                  # 11: the smallest T whose readout sees the input
"""

from __future__ import annotations

from dataclasses import dataclass

from snnc.compiler.core.ir import Graph


@dataclass(frozen=True)
class DelayDepth:
    """Input-to-readout depths in time steps (shortest and longest path) and the delay per lif."""

    shortest: int
    longest: int
    delay: int

    @property
    def min_timesteps(self) -> int:
        """The smallest T at which the readout integrates at least one input-driven step."""
        return self.shortest + 1

    def warning(self, timesteps: int, name: str = "") -> str | None:
        """The warning text when T is too short for the input to reach the readout, else None."""
        if self.delay == 0 or self.shortest < timesteps:
            return None
        return (f"graph '{name}': with T={timesteps} the output does not depend on the input: "
                f"the shortest input-to-readout path is {self.shortest} steps of synaptic delay "
                f"(longest {self.longest}; {self.delay} step(s) per layer). Use -T "
                f"{self.min_timesteps} or more (every layer has seen the input at T = "
                f"{self.longest + 1}), or --timesteps auto.")

    def as_dict(self) -> dict:
        return {"shortest": self.shortest, "longest": self.longest, "delay": self.delay,
                "min_timesteps": self.min_timesteps}


def delay_depth(g: Graph, delay: int | None = None) -> DelayDepth:
    """Shortest and longest input-to-output path of `g` counted in synaptic-delay steps (number
    of lif nodes on the path times the graph's `synaptic_delay`, or `delay`). Skip edges count
    as paths (an S2M edge skips the lifs it jumps over); a projection is on its edge's path.

    With no delay (d = 0: paper semantics, and targets whose spikes arrive in the same step)
    every depth is k * 0 = 0 whatever the paths, so the graph is not walked: DelayDepth(0, 0,
    0) is what the walk would return (a graph with no output reachable from an input gives 0,
    0 as well)."""
    d = int(g.attrs.get("synaptic_delay", 0) or 0) if delay is None else int(delay)
    if d == 0:
        return DelayDepth(0, 0, 0)
    key = ("delay_depth", d)  # a graph never changes: compile and the cost report both ask
    if key not in g._index:
        g._index[key] = _depth(g, d)
    return g._index[key]


def _depth(g: Graph, d: int) -> DelayDepth:
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    for n in g.nodes:
        ins = g.inputs_of(n.name)
        srcs = [e.value_src for e in ins if e.value_src in lo]
        if n.op == "input" or not srcs:
            a = b = 0
            if n.op != "input" and not srcs and ins:
                continue  # not reachable from an input
            if n.op != "input" and not ins:
                continue  # a constant: not on an input path
        else:
            a, b = min(lo[s] for s in srcs), max(hi[s] for s in srcs)
        step = 1 if n.op == "lif" else 0
        lo[n.name], hi[n.name] = a + step, b + step
    outs = [o for o in g.outputs if o in lo]
    if not outs:
        return DelayDepth(0, 0, d)
    return DelayDepth(min(lo[o] for o in outs) * d, max(hi[o] for o in outs) * d, d)
