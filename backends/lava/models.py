"""Process models for neurons the stock Loihi 2 LIF does not run (imports lava).

The stock bit-accurate LIF (``PyLifModelBitAcc``) resets to zero and fires on ``v > θ``. A net
compiled with ``--semantics paper`` resets by subtraction and fires on ``v >= θ`` (paper 2
eq. 3-6); those run **only in Lava's CPU simulator**, through the models below, passed to the
run as ``exception_proc_model_map={LIF: model}``. Subtractive reset on silicon would need a
custom microcoded neuron, which the public Lava release cannot build.
"""

from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifModelBitAcc
from lava.proc.lif.process import LIF


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt_snnc")
class LifZeroGeModel(PyLifModelBitAcc):
    """Bit-accurate LIF that fires on v >= θ and resets to zero."""

    def spiking_activation(self):
        return self.v >= self.effective_vth


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt_snnc")
class LifSubtractGtModel(PyLifModelBitAcc):
    """Bit-accurate LIF that fires on v > θ and subtracts θ (snnTorch's comparison)."""

    def reset_voltage(self, spike_vector):
        self.v[spike_vector] -= self.effective_vth


@implements(proc=LIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt_snnc")
class LifSubtractGeModel(PyLifModelBitAcc):
    """Bit-accurate LIF of the papers: fires on v >= θ and subtracts θ, so the next step
    decays (v − θ) as in u_t = I_t + λ(u_{t−1} − θ·o_{t−1}) (paper 2 eq. 3-6)."""

    def spiking_activation(self):
        return self.v >= self.effective_vth

    def reset_voltage(self, spike_vector):
        self.v[spike_vector] -= self.effective_vth


MODELS = {("zero", "gt"): None, ("zero", "ge"): LifZeroGeModel,
          ("subtract", "gt"): LifSubtractGtModel, ("subtract", "ge"): LifSubtractGeModel}


def run_config(semantics: dict):
    """The Loihi 2 simulator configuration for a plan's neuron semantics."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    model = MODELS[(semantics["reset"], semantics["fire"])]
    if model is None:
        return Loihi2SimCfg(select_tag="fixed_pt")
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={LIF: model})
