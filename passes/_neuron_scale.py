"""Per-neuron scaling for fixed-point targets: a lif's input weights, bias, threshold, norms and
S2M scales multiplied by one power of two, so that its weights fill the target's mantissa on
the standard grid (docs/passes.md "Quantisation").

Not a pass module (leading underscore): `quantize` calls `scale_neurons`. A lif with reset to
zero or by subtraction and fire on v > theta (or >=) computes the same spikes when every input
current and the threshold are multiplied by c > 0 (exactly in float; on Loihi 2 the membrane's
truncations then act on the scaled integers, which is what the chip runs): this is how lava-dl's
8-bit weights with a per-layer exponent (netx `weight_exp`) keep small weights precise.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from snnc.compiler.core.ir import EdgeKind, Graph
from snnc.compiler.core.payload import reads_current
from snnc.compiler.core.relays import folded_bn
from snnc.passes._common import data_users, main_input

CHAIN = ("bntt", "batchnorm", "identity", "dropout")  # ops between a layer and its neuron


def trained_folded(g: Graph, name: str) -> bool:
    """Whether `name` is a batchnorm that the PyTorch backend trains folded into the layer
    before it (`--bn shared` on loihi2: backends/relay.py `folded_bn`, docs/lava.md
    "Deployable default"). Its layer's weights are normalised by the batch statistics, so
    their scale says nothing about the folded weights the chip runs: the lif is not scaled
    (the BN's output is in threshold units) and `quantize` leaves the raw weights in float."""
    return folded_bn(g, name) is not None


def _layer_before(g: Graph, name: str) -> tuple[str | None, list[str]]:
    """The conv2d/linear whose value reaches node `name`'s input through single-reader norms,
    and those norms; (None, []) when there is no such chain."""
    norms: list[str] = []
    while True:
        n = g.node(name)
        if n.op in ("conv2d", "linear"):
            return name, norms
        if n.op not in CHAIN:
            return None, []
        e = main_input(g, name)
        if e is None or len(data_users(g, e.value_src)) != 1:
            return None, []
        norms.append(name)
        name = e.value_src


def _group(g: Graph, lif: str):
    """(weighted layers, norms, S2M edges) feeding `lif`, or None when it cannot be scaled alone
    (V2V currents, a shared layer, an input that is not a layer)."""
    ins = g.inputs_of(lif)
    if any(e.kind is EdgeKind.V2V for e in ins):
        return None
    if ins and trained_folded(g, ins[0].value_src):
        return None
    if any(map(reads_current, g.users(lif))):
        return None
    if not ins or len(data_users(g, ins[0].value_src)) != 1:
        return None
    w0, norms = _layer_before(g, ins[0].value_src)
    if w0 is None:
        return None
    layers, s2m = [w0], []
    for e in ins[1:]:
        if e.kind is not EdgeKind.S2M:
            return None
        if e.projection is not None:
            if len(data_users(g, e.projection)) != 1:
                return None
            wp, pn = _layer_before(g, e.projection)
            if wp is None:
                return None
            layers.append(wp)
            norms += pn
        s2m.append(e)
    return layers, norms, s2m


def _exponent(values: torch.Tensor, bits: int, scale: int) -> int:
    top = float(values.abs().max()) if values.numel() else 0.0
    if top == 0.0:
        return 1
    e = math.ceil(math.log2(top * scale / (2 ** (bits - 1) - 1)))
    while ((values / (2.0 ** (e - 1) / scale)).round().abs() <= 2 ** (bits - 1) - 1).all():
        e -= 1  # rounding can let a finer grid hold it
    while not ((values / (2.0 ** e / scale)).round().abs() <= 2 ** (bits - 1) - 1).all():
        e += 1
    return e


def scale_neurons(g: Graph, *, bits: int = 8, scale: int = 64, grid_exp: int = 1,
                  k_range: tuple[int, int] = (-9, 9), vth_bits: int = 17) -> Graph:
    """`g` with every scalable lif's input side multiplied by c = 2^k, k chosen so that its
    layers' largest weight just fits the `bits`-bit mantissa at exponent `grid_exp`, and its
    surrogate's width times c and height over c (the same gradient in the scaled units). The
    classifier is not scaled: its logits feed the loss and the readout as they are. Attrs:
    `neuron_scale` = c on the lif and its layers. A lif already carrying `neuron_scale` is left
    (idempotent)."""
    if g.params is None:
        return g
    params = dict(g.params)
    b = g.edit()
    done: set[str] = set()

    def apply(layers, norms, c):
        for name in layers:
            n = g.node(name)
            for role in ("weight", "bias"):
                key = n.param(role)
                if key is not None:
                    params[key] = params[key] * c
            b.replace_node(replace(b.nodes[name], attrs=b.nodes[name].attrs.set(
                neuron_scale=c)))
        for name in norms:
            n = g.node(name)
            for role, f in (("weight", c), ("bias", c), ("running_mean", c),
                            ("running_var", c * c)):
                key = n.param(role)
                if key is not None:
                    params[key] = params[key] * f

    for n in g.by_op("lif"):
        if "neuron_scale" in n.attrs:
            continue
        grp = _group(g, n.name)
        if grp is None:
            continue
        layers, norms, s2m = grp
        if any(x in done or "neuron_scale" in g.node(x).attrs for x in layers):
            continue
        vals = [params[g.node(x).param("weight")].flatten() for x in layers]
        vals += [torch.tensor([float(e.attrs.get("scale", 1.0))]) for e in s2m
                 if e.projection is None]
        k = grid_exp - _exponent(torch.cat(vals), bits, scale)
        theta = float(n.attrs.get("vth", 1.0))
        k = max(min(k, k_range[1]), k_range[0])
        bias = [params[g.node(x).param("bias")].abs().max() for x in layers
                if g.node(x).param("bias") is not None]
        top_b = float(max(bias)) if bias else 0.0
        while k > k_range[0] and (theta * 2.0 ** k * scale >= 2 ** vth_bits
                                  or top_b * 2.0 ** k * scale > 2 ** 12 - 1):
            k -= 1  # the threshold's 17-bit and the biases' 13-bit mantissas must fit
        while k < 0 and not float(theta * 2.0 ** k * scale).is_integer():
            k += 1  # scaling down must keep the threshold exact on its 1/scale grid
        if k == 0:
            continue
        c = 2.0 ** k
        apply(layers, norms, c)
        done.update(layers)
        for e in s2m:
            if e.projection is None:
                b.replace_edge(e, replace(e, attrs=e.attrs.set(
                    scale=float(e.attrs.get("scale", 1.0)) * c)))
        a = b.nodes[n.name].attrs
        # the surrogate keeps its shape in the scaled units: d o / d u' = (d o / d u) / c
        b.replace_node(replace(b.nodes[n.name], attrs=a.set(
            vth=theta * c, neuron_scale=c, width=float(a.get("width", 1.0)) * c,
            alpha=float(a.get("alpha", 0.3)) / c)))
    for key, p in params.items():
        if p is not g.params[key]:
            b.set_param(key, p)
    return b.build()
