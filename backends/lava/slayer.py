"""The slayer network of a sequential SNN graph: lava-dl's training model (needs .venv-lava).

Each neuron layer of the Lava plan becomes a ``slayer.block.cuba`` block (``Conv`` or
``Dense``) with the neuron of docs/lava.md "Mapping": ``current_decay = iDecay/4096 = 1`` (no
current memory), ``voltage_decay = vDecay/4096``, ``threshold = vThMant/64``, slayer's 8-bit
weight hook and ``delay_shift=True`` (one step per synapse, as Lava and the PyTorch backend's
target-exact mode delay). Weights are the plan's (already on the 8-bit grid, file units / 64).
A layer's bias (file units / 64, per channel) is added to its synaptic input every step:
cuba blocks have no per-channel bias, so a forward pre-hook on the block's neuron adds it,
which is where Lava's neuron adds ``bias_mant << 6``. The readout is not a spiking block: its
value is ``sum_t (W o_t + b) / T`` from the block's synapse, the PyTorch backend's
``u_T / T``.

Only sequential plans (one main synapse per layer from the layer before, zero reset, fire
on >) are built; skips, concatenations and paper semantics raise UnsupportedOp. Tensors are
slayer's layout, batch first and time last: ``(N, C, H, W, T)`` or ``(N, F, T)``.
"""

from __future__ import annotations

import numpy as np
import torch

from snnc.backends.lava.plan import Plan
from snnc.compiler.core.errors import UnsupportedOp


def _neuron_params(layer) -> dict:
    n = layer.neuron
    return {"threshold": n["vThMant"] / 64.0, "current_decay": n["iDecay"] / 4096.0,
            "voltage_decay": n["vDecay"] / 4096.0, "requires_grad": False}


def _block(layer, src_shape):
    from lava.lib.dl import slayer

    syn = layer.synapses[0]
    w = torch.from_numpy(syn.weight.astype(np.float32) / 64.0)
    if syn.is_conv:
        c = syn.conv
        block = slayer.block.cuba.Conv(
            _neuron_params(layer), src_shape[0], w.shape[0], tuple(w.shape[2:]),
            stride=tuple(c["stride"]), padding=tuple(c["padding"]),
            dilation=tuple(c["dilation"]), groups=int(c["groups"]), delay_shift=True)
        block.synapse.weight.data = w.unsqueeze(-1).clone()
    else:
        block = slayer.block.cuba.Dense(_neuron_params(layer), w.shape[1], w.shape[0],
                                        delay_shift=True)
        block.synapse.weight.data = w.reshape(*w.shape, 1, 1, 1).clone()
    if layer.bias is not None and np.any(layer.bias):
        bias = torch.from_numpy(layer.bias.astype(np.float32) / 64.0)
        shape = (1, -1) + (1,) * (len(layer.shape))  # (1, C, [1, 1,] 1): per channel, all t
        block.register_buffer("snnc_bias", bias.reshape(shape))
        block.neuron.register_forward_pre_hook(
            lambda mod, inp, b=block: (inp[0] + b.snnc_bias,))
    return block


class SlayerNetwork(torch.nn.Module):
    """slayer cuba blocks in sequence; forward(x (N, C, H, W, T)) -> the readout (N, classes)
    (or the last layer's spikes (N, ..., T) when the plan has no readout)."""

    def __init__(self, plan: Plan):
        super().__init__()
        if not plan.sequential:
            raise UnsupportedOp(
                f"network '{plan.name}': the slayer network is built for sequential plans only "
                f"(one synapse per layer from the layer before, reset to zero, fire on >, "
                f"binary or count input); this one has skips, concatenations or paper "
                f"semantics. Train it with the PyTorch backend's target-exact mode instead.")
        self.plan = plan
        self.timesteps = plan.timesteps
        blocks = []
        for i, layer in enumerate(plan.layers[1:], start=1):
            blocks.append(_block(layer, plan.layers[i - 1].shape))
        self.blocks = torch.nn.ModuleList(blocks)
        self.readout = plan.layers[-1].readout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spiking = self.blocks[:-1] if self.readout else self.blocks
        for i, block in enumerate(spiking, start=1):
            if self.plan.layers[i].kind == "dense" and x.dim() > 3:
                x = x.reshape(x.shape[0], -1, x.shape[-1])  # C, H, W order, as torch flattens
            x = block(x)
        if not self.readout:
            return x
        last = self.blocks[-1]
        if x.dim() > 3:
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        z = last.synapse(x)  # (N, classes, T): W o_t with slayer's weight quantisation
        z = z.reshape(z.shape[0], z.shape[1], -1)
        if hasattr(last, "snnc_bias"):
            z = z + last.snnc_bias.reshape(1, -1, 1)
        return z.sum(-1) / self.timesteps


def build(path_or_plan) -> SlayerNetwork:
    """The slayer network of an snnc Lava file (or plan); see the module docstring."""
    from snnc.backends.lava import hdf5

    plan = path_or_plan if isinstance(path_or_plan, Plan) else hdf5.read(path_or_plan)
    return SlayerNetwork(plan)
