"""Exact connectivity of weighted layers: fan-out maps, synapse and MAC counts.

A conv2d's connection map (how many output neurons each input neuron reaches) is separable:
per spatial dimension, input position i reaches the output positions o with
``o*stride - pad_before + k*dilation == i`` for some tap k, and each reached position holds
``out/groups`` output channels. This equals sinabs' map (``ConvTranspose2d`` with all-ones
weights over ones shaped like the output), including border effects, stride and groups, but costs
O(H + W) instead of a convolution. Rules per op live in a registry (`@conn_rule`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snnc.compiler.core.ir import Graph, Node


@dataclass(frozen=True)
class Conn:
    """Connectivity of one weighted node, for batch element 1, one time step.

    `fanout_c` [C_in] ... per input channel; `fanout_hw` [H, W] per input position; the fan-out
    of input (c, h, w) is ``fanout_c[c] * fanout_hw[h, w]`` (separable). `macs` counts the dense
    multiply-accumulates (padding included, as torch's flop counter does); `synapses` the real
    connections (padding excluded) = sum of the fan-out map; `weights` the stored parameters.
    """

    in_shape: tuple[int, ...]
    fanout_c: np.ndarray
    fanout_hw: np.ndarray
    macs: int
    synapses: int
    weights: int
    bias: int

    @functools.cached_property
    def positions(self) -> int:
        """The sum of `fanout_hw`: the (output position, tap) pairs that read inside the input
        (counting.nonzero_synapses reads it; summed once per Conn, which is cached per node
        kind and shape)."""
        return int(self.fanout_hw.sum())

    def fanout_map(self) -> np.ndarray:
        """The full fan-out map, shaped like one input sample [C, H, W] or [F]."""
        m = self.fanout_c[:, None, None] * self.fanout_hw[None]
        return m.reshape(self.in_shape[1:])


_RULES: dict[str, Callable[[Graph | None, Node, tuple[int, ...]], Conn]] = {}


def conn_rule(*ops: str):
    """Register the connectivity rule of `ops`: a function (graph, node, input shape) -> Conn
    that reads only the node and the input shape (the graph argument is None: results are
    cached per node and shape)."""
    def deco(fn):
        for op in ops:
            _RULES[op] = fn
        return fn
    return deco


def has_conn(op: str) -> bool:
    return op in _RULES


def connectivity(g: Graph, node: Node, src: Node | None = None) -> Conn:
    """The connectivity of weighted `node` (conv2d, linear); cached per (node, input shape):
    a Conn depends on nothing else, and its arrays must be treated as read-only. `src`: the
    node whose value reaches `node`'s main input (port 0), when the caller has it."""
    if src is None:
        src = g.node(g.inputs_of(node.name)[0].value_src)
    return _cached(node.op, node.attrs, tuple(node.shape), tuple(src.shape))


@functools.lru_cache(maxsize=4096)
def _cached(op: str, attrs, shape: tuple[int, ...], in_shape: tuple[int, ...]) -> Conn:
    """Keyed without the node's name: a chain of identical layers computes its map once."""
    return _RULES[op](None, Node("", op, attrs, shape), in_shape)


def tap_positions(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """[k, n_out] input position read by tap k at output position o (may fall outside)."""
    o = np.arange(n_out, dtype=np.int64)
    return o[None, :] * stride - pad + np.arange(k, dtype=np.int64)[:, None] * dil


def axis_fanout(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """For each input position along one axis, how many output positions read it."""
    i = tap_positions(n_in, n_out, k, stride, pad, dil).ravel()
    return np.bincount(i[(i >= 0) & (i < n_in)], minlength=n_in).astype(np.int64)


@functools.lru_cache(maxsize=1024, typed=True)  # 1 and 1.0 apart, as numpy tells them
def _axis_fanout_ro(n_in: int, n_out: int, k: int, stride: int, pad: int,
                    dil: int) -> np.ndarray:
    """`axis_fanout`, read-only, computed once per distinct axis: a network repeats few (the
    132 axes of densenet121's convolutions are 9 distinct ones), and the Conn cache above
    misses on every distinct layer the first time."""
    f = axis_fanout(n_in, n_out, k, stride, pad, dil)
    f.flags.writeable = False
    return f


def taps_inside(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """For each kernel tap along one axis, how many output positions it reads inside the input
    (not padding): [k]."""
    i = tap_positions(n_in, n_out, k, stride, pad, dil)
    return ((i >= 0) & (i < n_in)).sum(axis=1)


def _pair(v, default):
    if v is None:
        return default
    if isinstance(v, int):
        return (v, v)
    return tuple(v)


@conn_rule("conv2d")
def _conv2d(g: Graph | None, node: Node, in_shape: tuple[int, ...]) -> Conn:
    a = node.attrs
    n, cin, h, w = in_shape
    _, cout, ho, wo = node.shape
    kh, kw = _pair(a.get("k"), (1, 1))
    sh, sw = _pair(a.get("stride"), (1, 1))
    dh, dw = _pair(a.get("dilation"), (1, 1))
    pad = tuple(a.get("pad", (0, 0, 0, 0)))
    if len(pad) == 2:
        pad = (pad[0], pad[1], pad[0], pad[1])
    groups = int(a.get("groups", 1))
    fh = _axis_fanout_ro(h, ho, kh, sh, pad[0], dh)
    fw = _axis_fanout_ro(w, wo, kw, sw, pad[1], dw)
    hw = np.outer(fh, fw)
    fc = np.full(cin, cout // groups, dtype=np.int64)
    macs = n * cout * ho * wo * (cin // groups) * kh * kw
    syn = int(hw.sum()) * int(fc.sum())
    return Conn(in_shape, fc, hw, macs, syn, cout * (cin // groups) * kh * kw,
                cout if a.get("bias", True) else 0)


@conn_rule("linear")
def _linear(g: Graph | None, node: Node, in_shape: tuple[int, ...]) -> Conn:
    fin = int(np.prod(in_shape[1:]))
    fout = int(node.shape[-1])
    n = int(in_shape[0])
    fc = np.full(fin, fout, dtype=np.int64)
    return Conn((in_shape[0], fin), fc, np.ones((1, 1), dtype=np.int64), n * fin * fout,
                fin * fout, fin * fout, fout if node.attrs.get("bias", True) else 0)


def macs_of(g: Graph) -> dict[str, int]:
    """MACs of every weighted node (conv2d, linear) of `g` (batch as in the shapes)."""
    return {n.name: connectivity(g, n).macs for n in g.nodes if n.op in _RULES}
