"""snn-attrs: the graph attributes that say how an SNN-form graph is run."""

from __future__ import annotations

from snnc.compiler.core.conditions import has_attrs
from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.passmanager import register_pass
from snnc.compiler.targets.schema import ARITHMETICS
from snnc.passes._common import check_choice

SEMANTICS = ("paper", "target")


@register_pass("snn-attrs",
               ensures=[has_attrs("timesteps", "semantics", "target", "synaptic_delay")])
def snn_attrs(g: Graph, *, timesteps: int = 8, semantics: str = "paper",
              target: str = "generic", synaptic_delay: int = 0, arithmetic: str | None = None,
              graded_spikes: bool | None = None, graded_bits: int | None = None) -> Graph:
    """Set graph attrs timesteps (T), semantics, target, synaptic_delay and the target file's
    facts the backends read (arithmetic, graded_spikes, graded_bits; None = not written).

    Requires: nothing (ANN or SNN form; the conversion pipeline runs it first so that later
    passes such as bn-to-bntt read T from the graph).
    Guarantees: the attributes equal the options; nothing else changes.
    Implements: docs/design.md "Neuron semantics": synaptic_delay = 1 step per layer for Loihi 2
    target-exact runs (a skip over n layers then arrives n - 1 steps early), 0 for the
    papers' same-step equations. Idempotent.
    """
    check_choice("snn-attrs", "semantics", semantics, SEMANTICS)
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise SnncError(f"pass 'snn-attrs': timesteps={timesteps!r} must be an integer >= 1.")
    if synaptic_delay not in (0, 1):
        raise SnncError(f"pass 'snn-attrs': synaptic_delay={synaptic_delay!r} must be 0 or 1.")
    check_choice("snn-attrs", "arithmetic", arithmetic, ARITHMETICS + (None,))
    want = dict(timesteps=timesteps, semantics=semantics, target=str(target),
                synaptic_delay=synaptic_delay)
    extra = dict(arithmetic=arithmetic, graded_spikes=graded_spikes, graded_bits=graded_bits)
    want.update({k: v for k, v in extra.items() if v is not None})
    if all(g.attrs.get(k) == v for k, v in want.items()):
        return g
    return g.with_attrs(**want)
