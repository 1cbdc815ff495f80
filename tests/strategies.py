"""Hypothesis strategies for property tests: random ANN-form graphs and adjacency matrices.

    from hypothesis import given, settings
    from tests.strategies import ann_graphs, adjacency_matrices

    @settings(max_examples=25, deadline=None)
    @given(ann_graphs(max_blocks=3))
    def test_my_pass(g): ...

`ann_graphs(max_blocks=4, with_params=True, annotate=False)` draws a graph as a front end
produces it (plain DATA edges, batch 1, input `%x: f32[1,3,8,8]`):

* a stem: conv2d 3x3 (3 -> c) + batchnorm + relu;
* 1..max_blocks blocks, each one of
  - `basic`: ResNet basic block, conv3x3(stride) bn relu conv3x3 bn, `add(bn2, skip)`, relu;
  - `bottleneck`: conv1x1 bn relu conv3x3(stride) bn relu conv1x1 bn, `add(bn3, skip)`, relu;
  - `inverted`: MobileNetV2 inverted residual, conv1x1 bn clip(0,6) dwconv3x3(stride) bn
    clip conv1x1 bn, `add(bn3, x)` with no activation after it;
  - `dense`: a DenseNet-BC block of 2-3 dense layers (bn relu conv1x1 bn relu conv3x3) whose
    inputs are `concat(x0, x1, ..., x_k)` (main input last) and whose output concatenates all;
  - `sequential`: 2-4 conv3x3 + bn + relu layers without skips (paper 1's block);
  with random widths (2-8 channels), random stride-2 transitions (while the feature map is at
  least 4x4), and, for basic/bottleneck/inverted, a random choice of keeping the skip: a
  stride or width change gives the skip a projection (`<block>_ds_conv` 1x1 + `<block>_ds_bn`,
  as torchvision's downsample), an inverted residual keeps its add only without one;
* a head: adaptive_avgpool (1,1), flatten, linear (-> 2..5 classes).

Node names are `stem_conv`, `b0_conv1`, `b0_bn1`, `b0_relu1`, `b0_ds_conv`, `b0_add`, ...;
`g.attrs` is empty. With `with_params=True` every weight is a real float32 torch tensor drawn
from a seed the strategy draws (batchnorm variances positive), else `params` is None
(structure only). `annotate=True` returns `annotate_skips(g)` (skip ports marked ASC/DSC).

`NetBuilder` is the helper the strategy uses; tests use it to write small graphs by hand.
`adjacency_matrices(d_b)` draws a (d_b+2)x(d_b+2) numpy int matrix with entries in {0, 1, 2}
above the second diagonal (j >= i+2) and zeros elsewhere (paper 1 eq. 1).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from snnc.compiler.ir import Attrs, Graph, GraphBuilder, Node
from snnc.compiler.shapes import infer_shape

BLOCK_KINDS = ("basic", "bottleneck", "inverted", "dense", "sequential")


class NetBuilder:
    """Build a small ANN-form graph node by node, shapes inferred, params drawn from a seed.

    Each method appends a node fed by `src` (default: the last node) and returns its name.
    """

    def __init__(self, name: str = "net", shape=(1, 3, 8, 8), *, seed: int | None = 0,
                 with_params: bool = True):
        self.b = GraphBuilder(name, params={} if with_params else None)
        self.gen = torch.Generator().manual_seed(seed or 0)
        self.b.add(Node("x", "input", shape=tuple(shape)))
        self.last = "x"

    # -- plumbing ---------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        return self.b.nodes[name].shape

    def node(self, name: str, op: str, inputs, attrs=None, params=()) -> str:
        """Add node `name` (op, attrs) fed by `inputs`; its shape comes from the shape rule."""
        attrs = Attrs(attrs or {})
        keys = tuple(f"{name}.{p}" for p in params)
        probe = Node(name, op, attrs)
        shape = infer_shape(probe, [self.shape(i) for i in inputs])
        self.b.add(Node(name, op, attrs, shape, keys), list(inputs))
        self.last = name
        return name

    def _rand(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=self.gen) * scale).float()

    def _set(self, key: str, value: torch.Tensor) -> None:
        self.b.set_param(key, value)

    # -- layers -----------------------------------------------------------------------------
    def conv(self, name: str, out: int, k: int = 3, stride: int = 1, groups: int = 1,
             src: str | None = None, bias: bool = False) -> str:
        src = src or self.last
        cin = self.shape(src)[1]
        p = k // 2
        attrs = {"in": cin, "out": out, "k": (k, k), "stride": (stride, stride),
                 "pad": (p, p, p, p), "dilation": (1, 1), "groups": groups, "bias": bias}
        self.node(name, "conv2d", [src], attrs, ("weight", "bias") if bias else ("weight",))
        fan_in = cin // groups * k * k
        self._set(f"{name}.weight", self._rand(out, cin // groups, k, k, scale=fan_in ** -0.5))
        if bias:
            self._set(f"{name}.bias", self._rand(out, scale=0.1))
        return name

    def bn(self, name: str, src: str | None = None) -> str:
        src = src or self.last
        c = self.shape(src)[1]
        self.node(name, "batchnorm", [src], {"eps": 1e-5},
                  ("weight", "bias", "running_mean", "running_var"))
        self._set(f"{name}.weight", 1.0 + self._rand(c, scale=0.1))
        self._set(f"{name}.bias", self._rand(c, scale=0.1))
        self._set(f"{name}.running_mean", self._rand(c, scale=0.1))
        self._set(f"{name}.running_var", 0.5 + torch.rand(c, generator=self.gen))
        return name

    def relu(self, name: str, src: str | None = None) -> str:
        return self.node(name, "relu", [src or self.last])

    def relu6(self, name: str, src: str | None = None) -> str:
        return self.node(name, "clip", [src or self.last], {"min": 0.0, "max": 6.0})

    def add(self, name: str, *srcs: str) -> str:
        return self.node(name, "add", list(srcs))

    def concat(self, name: str, *srcs: str) -> str:
        return self.node(name, "concat", list(srcs), {"axis": 1})

    def linear(self, name: str, out: int, src: str | None = None) -> str:
        src = src or self.last
        fin = self.shape(src)[-1]
        self.node(name, "linear", [src], {"in": fin, "out": out, "bias": True},
                  ("weight", "bias"))
        self._set(f"{name}.weight", self._rand(out, fin, scale=fin ** -0.5))
        self._set(f"{name}.bias", self._rand(out, scale=0.1))
        return name

    def head(self, classes: int = 3) -> str:
        self.node("pool", "adaptive_avgpool", [self.last], {"out": (1, 1)})
        self.node("flatten", "flatten", [self.last], {"start": 1})
        return self.linear("fc", classes)

    def build(self, outputs=None) -> Graph:
        self.b.outputs = list(outputs or [self.last])
        return self.b.build()

    # -- blocks -----------------------------------------------------------------------------
    def basic(self, p: str, out: int, stride: int = 1, skip: bool = True) -> str:
        """ResNet basic block; the skip gets a 1x1 conv + bn projection on a shape change."""
        x = self.last
        self.conv(f"{p}_conv1", out, 3, stride, src=x)
        self.bn(f"{p}_bn1")
        self.relu(f"{p}_relu1")
        self.conv(f"{p}_conv2", out, 3)
        main = self.bn(f"{p}_bn2")
        if skip:
            s = self._shortcut(p, x, out, stride)
            self.add(f"{p}_add", main, s)
        return self.relu(f"{p}_relu2")

    def bottleneck(self, p: str, out: int, stride: int = 1, skip: bool = True,
                   mid: int | None = None) -> str:
        """ResNet bottleneck: 1x1, 3x3 (stride), 1x1, add, relu."""
        x = self.last
        mid = mid or max(2, out // 2)
        self.conv(f"{p}_conv1", mid, 1, src=x)
        self.bn(f"{p}_bn1")
        self.relu(f"{p}_relu1")
        self.conv(f"{p}_conv2", mid, 3, stride)
        self.bn(f"{p}_bn2")
        self.relu(f"{p}_relu2")
        self.conv(f"{p}_conv3", out, 1)
        main = self.bn(f"{p}_bn3")
        if skip:
            s = self._shortcut(p, x, out, stride)
            self.add(f"{p}_add", main, s)
        return self.relu(f"{p}_relu3")

    def inverted(self, p: str, out: int, stride: int = 1, expand: int = 2,
                 skip: bool = True) -> str:
        """MobileNetV2 inverted residual; the add (no activation after) only when shapes agree."""
        x = self.last
        hidden = self.shape(x)[1] * expand
        self.conv(f"{p}_conv1", hidden, 1, src=x)
        self.bn(f"{p}_bn1")
        self.relu6(f"{p}_relu1")
        self.conv(f"{p}_conv2", hidden, 3, stride, groups=hidden)
        self.bn(f"{p}_bn2")
        self.relu6(f"{p}_relu2")
        self.conv(f"{p}_conv3", out, 1)
        main = self.bn(f"{p}_bn3")
        if skip and stride == 1 and self.shape(x)[1] == out:
            return self.add(f"{p}_add", main, x)
        return main

    def dense(self, p: str, layers: int = 2, growth: int = 2, width: int = 4) -> str:
        """DenseNet-BC block: layer i reads concat(x0, ..., x_{i-1}) (the newest input last)."""
        feats = [self.last]
        for i in range(1, layers + 1):
            src = feats[0] if len(feats) == 1 else self.concat(f"{p}_cat{i}", *feats)
            self.bn(f"{p}_l{i}_bn1", src=src)
            self.relu(f"{p}_l{i}_relu1")
            self.conv(f"{p}_l{i}_conv1", width, 1)
            self.bn(f"{p}_l{i}_bn2")
            self.relu(f"{p}_l{i}_relu2")
            feats.append(self.conv(f"{p}_l{i}_conv2", growth, 3))
        return self.concat(f"{p}_out", *feats)

    def sequential(self, p: str, widths, stride: int = 1) -> str:
        """Convs 3x3 + bn + relu without skips (paper 1's block); the first may have a stride."""
        for i, w in enumerate(widths, 1):
            self.conv(f"{p}_conv{i}", w, 3, stride if i == 1 else 1)
            self.bn(f"{p}_bn{i}")
            self.relu(f"{p}_relu{i}")
        return self.last

    def _shortcut(self, p: str, x: str, out: int, stride: int) -> str:
        if stride == 1 and self.shape(x)[1] == out:
            return x
        self.conv(f"{p}_ds_conv", out, 1, stride, src=x)
        return self.bn(f"{p}_ds_bn")


@st.composite
def ann_graphs(draw, max_blocks: int = 4, with_params: bool = True, annotate: bool = False):
    """A random ANN-form graph: stem, 1..max_blocks blocks, head (see the module docstring)."""
    seed = draw(st.integers(0, 2**31 - 1))
    width = st.integers(2, 8)
    net = NetBuilder(f"g{seed % 1000}", seed=seed, with_params=with_params)
    net.conv("stem_conv", draw(width), 3)
    net.bn("stem_bn")
    net.relu("stem_relu")
    n = draw(st.integers(1, max_blocks))
    for b in range(n):
        kind = draw(st.sampled_from(BLOCK_KINDS))
        can_stride = net.shape(net.last)[2] >= 4
        stride = draw(st.sampled_from((1, 2))) if can_stride else 1
        p = f"b{b}"
        if kind == "basic":
            net.basic(p, draw(width), stride, draw(st.booleans()))
        elif kind == "bottleneck":
            net.bottleneck(p, draw(width), stride, draw(st.booleans()))
        elif kind == "inverted":
            cin = net.shape(net.last)[1]
            out = cin if draw(st.booleans()) else draw(width)
            net.inverted(p, out, stride, draw(st.integers(1, 2)), draw(st.booleans()))
        elif kind == "dense":
            net.dense(p, draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(width))
        else:
            widths = draw(st.lists(width, min_size=2, max_size=4))
            net.sequential(p, widths, stride)
    net.head(draw(st.integers(2, 5)))
    g = net.build()
    if annotate:
        from snnc.compiler.blocks import annotate_skips

        g = annotate_skips(g)
    return g


@st.composite
def adjacency_matrices(draw, d_b: int, kinds=(0, 1, 2)):
    """A (d_b+2)x(d_b+2) int matrix, entries drawn from `kinds` where j >= i+2, else 0."""
    n = d_b + 2
    a = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(i + 2, n):
            a[i, j] = draw(st.sampled_from(tuple(kinds)))
    return a
