"""Shape rules: one small function per op, filled by `@shape_rule`.

`infer_shape(node, input_shapes)` returns the output shape a node must have; the verifier
compares it with the node's recorded shape, and passes use it to shape the nodes they create.
Shapes are per time step (`[N, C, H, W]` or `[N, F]`); time is a graph attribute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from snnc.compiler.core.errors import ShapeMismatch, VerifyError
from snnc.compiler.core.ir import Edge, EdgeKind, Node

Shape = tuple[int, ...]
ShapeRule = Callable[[Node, Sequence[Shape]], Shape]
SHAPE_RULES: dict[str, ShapeRule] = {}


def shape_rule(*ops: str):
    """Register the decorated function as the shape rule of `ops`."""
    def deco(fn: ShapeRule) -> ShapeRule:
        for op in ops:
            SHAPE_RULES[op] = fn
        return fn
    return deco


def infer_shape(node: Node, inputs: Sequence[Shape]) -> Shape:
    rule = SHAPE_RULES.get(node.op)
    if rule is None:
        raise VerifyError(f"node '{node.name}': op '{node.op}' has no shape rule. Register one "
                          f"with @shape_rule('{node.op}') in snnc.compiler.core.shapes.")
    return tuple(map(int, rule(node, inputs)))


def edge_shape(shape: Sequence[int], edge: Edge) -> Shape:
    """The shape `edge` delivers from a value of `shape`: a DSC edge with `fraction` < 1 keeps
    the first round(fraction * C) channels (paper 1's generalised DSC, docs/ir.md "Edges")."""
    if edge.kind is EdgeKind.DSC:
        frac = edge.attrs.get("fraction", 1.0)
        if frac < 1.0 and len(shape) >= 2:
            return (int(shape[0]), round(frac * shape[1]), *(int(d) for d in shape[2:]))
    return tuple(map(int, shape))


def pair(v) -> tuple[int, int]:
    """(h, w) from an int or a pair (IR attributes `k`, `stride`, `dilation`, `out`)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pad4(v) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from an int, (h, w) or (t, l, b, r)."""
    if isinstance(v, int):
        return (v, v, v, v)
    if len(v) == 2:
        return (v[0], v[1], v[0], v[1])
    return tuple(int(x) for x in v)  # type: ignore[return-value]


def _window(size: int, k: int, s: int, p0: int, p1: int, d: int, ceil: bool) -> int:
    span = size + p0 + p1 - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p0:  # torch: the last window must start inside input
        out -= 1
    return out


def _first(node: Node, inputs: Sequence[Shape], n: int | None = 1) -> Shape:
    if n is not None and len(inputs) != n:
        raise ShapeMismatch(f"node '{node.name}' (op {node.op}) takes {n} input(s), "
                            f"got {len(inputs)}")
    return inputs[0]


@shape_rule("relu", "clip", "batchnorm", "bntt", "dropout", "identity", "encoder", "readout")
def _same(node, inputs):
    return _first(node, inputs)


@shape_rule("lif")
def _lif(node, inputs):
    main = inputs[0]
    for s in inputs[1:]:
        if tuple(s) != tuple(main):
            raise ShapeMismatch(f"node '{node.name}' (op lif): membrane input {list(s)} does not "
                                f"match its main input {list(main)}")
    return main


@shape_rule("conv2d")
def _conv(node, inputs):
    n, c, h, w = _first(node, inputs)
    kh, kw = pair(node.attrs["k"])
    sh, sw = pair(node.attrs.get("stride", 1))
    dh, dw = pair(node.attrs.get("dilation", 1))
    pt, pl, pb, pr = pad4(node.attrs.get("pad", 0))
    groups = node.attrs.get("groups", 1)
    if c != node.attrs["in"]:
        raise ShapeMismatch(f"node '{node.name}' (op conv2d) expects {node.attrs['in']} input "
                            f"channels, got {c}")
    if c % groups or node.attrs["out"] % groups:
        raise ShapeMismatch(f"node '{node.name}' (op conv2d): groups={groups} does not divide "
                            f"channels {c} -> {node.attrs['out']}")
    return (n, node.attrs["out"], _window(h, kh, sh, pt, pb, dh, False),
            _window(w, kw, sw, pl, pr, dw, False))


@shape_rule("linear")
def _linear(node, inputs):
    shape = _first(node, inputs)
    if shape[-1] != node.attrs["in"]:
        raise ShapeMismatch(f"node '{node.name}' (op linear) expects {node.attrs['in']} input "
                            f"features, got {shape[-1]}")
    return (*shape[:-1], node.attrs["out"])


@shape_rule("maxpool", "avgpool")
def _pool(node, inputs):
    n, c, h, w = _first(node, inputs)
    kh, kw = pair(node.attrs["k"])
    sh, sw = pair(node.attrs.get("stride", node.attrs["k"]))
    dh, dw = pair(node.attrs.get("dilation", 1))
    pt, pl, pb, pr = pad4(node.attrs.get("pad", 0))
    ceil = bool(node.attrs.get("ceil", False))
    return (n, c, _window(h, kh, sh, pt, pb, dh, ceil), _window(w, kw, sw, pl, pr, dw, ceil))


@shape_rule("adaptive_avgpool")
def _adaptive(node, inputs):
    n, c, _, _ = _first(node, inputs)
    oh, ow = pair(node.attrs["out"])
    return (n, c, oh, ow)


@shape_rule("flatten")
def _flatten(node, inputs):
    shape = _first(node, inputs)
    start = node.attrs.get("start", 1)
    return (*shape[:start], math.prod(shape[start:]))


@shape_rule("reshape")
def _reshape(node, inputs):
    shape = _first(node, inputs)
    target = list(node.attrs["shape"])
    total = math.prod(shape)
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = total // known if known else 0
    if math.prod(target) != total:
        raise ShapeMismatch(f"node '{node.name}' (op reshape): cannot reshape {list(shape)} to "
                            f"{list(node.attrs['shape'])}")
    return tuple(target)


@shape_rule("add")
def _add(node, inputs):
    if len(inputs) < 2:
        raise ShapeMismatch(f"node '{node.name}' (op add) needs at least 2 inputs")
    first = tuple(inputs[0])
    for s in inputs[1:]:
        if tuple(s) != first:
            raise ShapeMismatch(f"node '{node.name}' (op add): input shapes differ: "
                                f"{[list(x) for x in inputs]}")
    return first


@shape_rule("concat")
def _concat(node, inputs):
    axis = node.attrs.get("axis", 1)
    base = list(inputs[0])
    if type(axis) is int and 0 <= axis < len(base):  # by slices: densenet's concats have
        head, tail = tuple(base[:axis]), tuple(base[axis + 1:])
        bad = [s for s in inputs[1:] if len(s) != len(base) or tuple(s[:axis]) != head
               or tuple(s[axis + 1:]) != tail]  # dozens of inputs each
    else:
        bad = [s for s in inputs[1:] if len(s) != len(base) or any(
            a != b for i, (a, b) in enumerate(zip(s, base)) if i != axis)]
    if bad:
        raise ShapeMismatch(f"node '{node.name}' (op concat): shapes {[list(x) for x in inputs]}"
                            f" differ outside axis {axis}")
    base[axis] = sum(s[axis] for s in inputs)
    return tuple(base)


@shape_rule("vote")
def _vote(node, inputs):
    n, f = _first(node, inputs)
    k = node.attrs["k"]
    if f % k:
        raise ShapeMismatch(f"node '{node.name}' (op vote): {f} features do not split into "
                            f"groups of {k}")
    return (n, f // k)
