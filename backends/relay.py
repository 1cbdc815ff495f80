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
    BIAS_GRID, READOUT_CEILING, READOUT_FLOOR, RELAY_STATE_EXP, RELAY_STEP, WEIGHT_GRID,
    carries_current, exact_loihi2, folded_bn, is_relay_edge, readout_scale,
)
