"""Graded relays: how a projection's graded output reaches Loihi 2 (docs/lava.md "Relays").

On a target-exact loihi2 graph (``semantics=target``, ``synaptic_delay=1``) two IR values are
graded *and* must cross a synapse, which Loihi's binary LIF spikes cannot carry:

* the output of an S2S skip's projection (paper 2 eq. 13: ``o_l = o'_l + W'' o_{l-n}``), read by
  the S2S add, whose readers' synapses would multiply it again;
* the input current of a lif read through a V2V skip's projection (eq. 15-16 with a shape
  change: the projection's synapse acts on a current, two synapses in series).

Both become a *relay*: a population of stock sigma-delta neurons (``lava.proc.sdn`` SigmaDelta,
threshold 0, unit activation) whose graded spike is its input of the step, so the value
crosses one more synapse. The PyTorch backend and the Lava lowering both apply this module's
rule, so the trained model is the deployed one by construction:

    relay(v)_t = floor(v_{t-1} / RELAY_STEP) * RELAY_STEP,   relay(v)_0 = 0

one step of delay (the relay's synapse) and a floor to ``RELAY_STEP`` = 1/2: the relay's
payload is ``floor(64 v / 2**5)`` (``state_exp = 5``), and the reading synapse's 8-bit weights
``64 w`` (even integers, steps of 1/32) are halved so that the product lands on the neuron
input's 1/64 grid exactly. A finer relay step would need weights off the 8-bit grid.
"""

from __future__ import annotations

# the rules (which values cross a relay, which BNs train folded) live in the IR core, shared with
# the cost model (costmodel/relays.py) and the passes (quantize)
from snnc.compiler.core.relays import (  # noqa: F401
    carries_current, exact_loihi2, folded_bn, is_relay_edge,
)

RELAY_STEP = 0.5
RELAY_STATE_EXP = 5  # payload = a_in >> 5 = floor(2 v) for a_in = 64 v


# -- the readout's range (docs/lava.md "Readout range") -------------------------------------
# The readout is a CUBA neuron with vDecay 0 and vThMant 2**17 - 1: its 24-bit membrane (units
# of 1/4096) fires and resets to zero above (2**17 - 1) * 64 / 4096 and saturates at
# -(2**23 - 1) / 4096 (symmetric 24-bit clip), in the units of the Lava membrane (the PyTorch
# value times the readout's `scale`).
READOUT_CEILING = ((1 << 17) - 1) * 64 / 4096
READOUT_FLOOR = -((1 << 23) - 1) / 4096


def readout_scale(g, name: str) -> int:
    """How many times the Lava readout `name`'s membrane exceeds the PyTorch value: k·k when it
    reads linear(flatten(avgpool k×k)), summed on Loihi ("Pooled readout"), else 1."""
    def src(n):
        ins = g.inputs_of(n)
        return g.node(ins[0].value_src) if ins else None

    lin = src(name)
    flat = src(lin.name) if lin is not None and lin.op == "linear" else None
    pool = src(flat.name) if flat is not None and flat.op in ("flatten", "reshape") else None
    if pool is None or pool.op not in ("avgpool", "adaptive_avgpool"):
        return 1
    inner = src(pool.name)
    h, w = inner.shape[2:]
    oh, ow = pool.shape[2:]
    return (h // oh) * (w // ow)
