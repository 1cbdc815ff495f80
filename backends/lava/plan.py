"""The Lava plan: an SNN-form graph as neuron layers and the synapses into them.

A *layer* is a population of Loihi CUBA neurons (one per ``lif`` or ``readout`` node) plus
every synapse that ends at its input; layer 0 is the network input. A *synapse* reads one
source layer's output and carries integer weights (file units, ``64·w``) through a conv or a
dense connection. Loihi has no adder for spikes, so every linear combination the IR writes
between neurons becomes extra synapses into the same neuron input (a neuron's input port sums
every synapse connected to it):

========  ========================================================================================
main      the conv2d / linear (+ folded batchnorm) that feeds a lif on port 0
s2s       ``W·(o_l + o_{l-n})`` = ``W·o_l + W·o_{l-n}``: a second synapse with the consumer's
          weights from the skip's source (paper 2 eq. 12, 14); spikes stay binary
concat    a DSC concat: the consumer's weights split by input channel, one synapse per source
s2m       ``W'·o_{l-n}`` into the membrane (eq. 7): a 1x1 identity synapse of weight ``64·W'``,
          or the projection's weights (times ``scale``) when the skip has one
v2v       the source layer's current into the membrane (eq. 15-16): copies of every main / s2s /
          concat / v2v synapse of the source layer (so the recursion of eq. 15 and 18 holds)
========  ========================================================================================

Every synapse delays by one step, on Loihi and in target-exact mode alike (docs/design.md "Neuron
semantics"); a skip synapse therefore arrives n-1 steps before the main path. This module
imports neither lava nor h5py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Shape = tuple[int, ...]


@dataclass
class Synapse:
    """One connection into a layer's neurons.

    `weight` is an int array in file units: conv (out, in/groups, kh, kw) or dense (out, in).
    For a dense synapse from a 3-D source, `in` runs over the source flattened in C, H, W
    order (torch's flatten). `conv` holds stride/padding/dilation/groups, None for dense."""

    src: int
    kind: str
    weight: np.ndarray
    conv: dict | None = None
    origin: str = ""  # the IR node whose weights these are (for messages and the slayer net)

    @property
    def is_conv(self) -> bool:
        return self.conv is not None


@dataclass
class Layer:
    """A neuron population: its IR node, output shape (C,H,W) or (F,), neuron, synapses."""

    name: str
    shape: Shape
    neuron: dict = field(default_factory=dict)  # netx neuron group: type, iDecay, vDecay, ...
    bias: np.ndarray | None = None  # int, per channel (file units, 64·b)
    synapses: list[Synapse] = field(default_factory=list)
    readout: bool = False
    op: str = "lif"  # lif | readout | input | relay (graded, backends/relay.py) | bias (unit)
    scale: int = 1  # a readout's membrane is `scale` times the PyTorch value (pooled readout)

    @property
    def kind(self) -> str:
        if self.op in ("input", "bias"):
            return self.op
        main = self.synapses[0]
        return "conv" if main.is_conv else "dense"


@dataclass
class Plan:
    """Layers in topological order (layer 0 = input) and what the graph returns."""

    name: str
    layers: list[Layer]
    timesteps: int
    semantics: dict  # {"reset": "zero"|"subtract", "fire": "gt"|"ge"}
    input_graded: bool = False
    outputs: dict[str, list[int]] = field(default_factory=dict)  # IR output -> summed layers
    notes: list[str] = field(default_factory=list)

    def index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(name)

    @property
    def sequential(self) -> bool:
        """True when every layer has one synapse, from the layer before (stock netx layout)."""
        if self.semantics != {"reset": "zero", "fire": "gt"} or self.input_graded:
            return False
        for i, layer in enumerate(self.layers[1:], start=1):
            if len(layer.synapses) != 1 or layer.synapses[0].src != i - 1:
                return False
            if layer.synapses[0].kind != "main":
                return False
        return all(len(v) == 1 for v in self.outputs.values())

    @property
    def neuron_layers(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if i > 0]


def flat_size(shape: Shape) -> int:
    """Number of neurons in a layer of `shape`."""
    return int(np.prod(shape))


def conv_output(shape: Shape, weight: np.ndarray, conv: dict) -> Shape:
    """Output (C,H,W) of a conv synapse with symmetric padding on a (C,H,W) input."""
    _, h, w = shape
    kh, kw = weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = conv["stride"], conv["padding"], conv["dilation"]
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return (weight.shape[0], oh, ow)

