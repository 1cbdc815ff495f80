"""snnc's own attribute checks on the ONNX ops it converts (docs/frontends.md, "Validation and
limits"): what onnx's checker and shape inference let through but the IR, the PyTorch backend
or the cost model cannot run. `check_nodes` returns every problem as (node, reason); the front
end refuses the model listing them (grouped by op type).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from snnc.compiler.frontends.onnx_ops import attr, attributes

Shapes = dict[str, tuple[int, ...]]
_CHECKS: dict[str, Callable] = {}


class Bad(Exception):
    """One problem of one node (the reason is the message)."""


def _check(*ops: str):
    def deco(fn):
        for op in ops:
            _CHECKS[op] = fn
        return fn
    return deco


def static_shapes(model: onnx.ModelProto) -> Shapes:
    """Fully static shapes of every value ONNX's shape inference typed (inputs included)."""
    out = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        t = vi.type.tensor_type
        dims = t.shape.dim  # empty where there is no shape (reading it sets none)
        if dims or t.HasField("shape"):  # asked only of no dims (densenet121: ~0.3 ms less)
            values = [d.dim_value for d in dims]  # 0 where unset (a dim_param, or nothing)
            if 0 in values:  # a dim set to 0 is static: ask which are set (rare)
                values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            if None not in values:
                out[vi.name] = tuple(values)
    return out


def _ints(node, name: str, n: int, default, minimum: int | None) -> tuple[int, ...]:
    v = attr(node, name, default)
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise Bad(f"attribute {name}={list(v) if isinstance(v, (list, tuple)) else v!r} "
                  f"needs {n} integers for a 2-D op")
    out = []
    for x in v:  # one loop, each value made an int once: four calls per Conv
        i = int(x)
        if minimum is not None and i < minimum:
            raise Bad(f"attribute {name}={list(v)} must be >= {minimum}")
        out.append(i)
    return tuple(out)


def _auto_pad(node) -> str:
    auto = attr(node, "auto_pad", "NOTSET")
    if auto not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Bad(f"auto_pad={auto!r} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    return auto


def _window(node, shapes: Shapes, k, pads_default) -> None:
    """strides >= 1, dilations >= 1, pads >= 0, and the (dilated) window fits its input."""
    _ints(node, "strides", 2, [1, 1], 1)
    dil = _ints(node, "dilations", 2, [1, 1], 1)
    auto = _auto_pad(node)
    pads = _ints(node, "pads", 4, pads_default, 0) if auto in ("NOTSET", "") else (0, 0, 0, 0)
    x = shapes.get(node.input[0])
    if x is None or len(x) != 4 or auto not in ("NOTSET", "", "VALID"):
        return
    for axis, size in ((0, x[2]), (1, x[3])):
        span = (k[axis] - 1) * dil[axis] + 1
        room = size + pads[axis] + pads[axis + 2]
        if span > room:
            raise Bad(f"its window ({k[axis]} taps, dilation {dil[axis]}) spans {span} "
                      f"positions but its input {list(x)} has {room} along "
                      f"{'HW'[axis]} with padding")


def _const(consts, node, i):
    inputs = node.input
    if len(inputs) > i:
        name = inputs[i]
        if name:
            return consts.get(name)
    return None


@_check("Conv")
def _conv(node, consts, shapes):
    w = _const(consts, node, 1)
    x = shapes.get(node.input[0])
    if w is not None and x is not None and w.ndim != len(x):
        raise Bad(f"its weight has shape {list(w.shape)} for an input of rank {len(x)}")
    if w is None or w.ndim != 4:
        return  # a computed weight or a 1-D/3-D conv: the converter explains it
    k = _ints(node, "kernel_shape", 2, None, 1)
    if k is not None and k != tuple(w.shape[2:]):
        raise Bad(f"kernel_shape={list(k)} but its weight is {list(w.shape)} "
                  f"(kernel {list(w.shape[2:])})")
    group = attr(node, "group", 1)
    if not isinstance(group, int) or group < 1 or w.shape[0] % group:
        raise Bad(f"group={group!r} does not divide its {w.shape[0]} output channels")
    if x is not None and len(x) == 4 and x[1] != w.shape[1] * group:
        raise Bad(f"its input has {x[1]} channels but its weight {list(w.shape)} with "
                  f"group={group} expects {w.shape[1] * group}")
    b = _const(consts, node, 2)
    if b is not None and b.shape != (w.shape[0],):
        raise Bad(f"its bias has shape {list(b.shape)} but it has {w.shape[0]} output "
                  f"channels")
    _window(node, shapes, tuple(w.shape[2:]), [0, 0, 0, 0])


@_check("MaxPool", "AveragePool")
def _pool(node, consts, shapes):
    k = _ints(node, "kernel_shape", 2, None, 1)
    if k is None:
        raise Bad("no kernel_shape attribute")
    pads = attr(node, "pads", [0, 0, 0, 0])
    if isinstance(pads, (list, tuple)) and len(pads) == 4 \
            and any(p >= kk for p, kk in zip(pads, (*k, *k))):
        raise Bad(f"pads={list(pads)} must be smaller than kernel_shape={list(k)}")
    _window(node, shapes, k, [0, 0, 0, 0])


@_check("Gemm")
def _gemm(node, consts, shapes):
    w = _const(consts, node, 1)
    if w is None:
        return
    if w.ndim != 2:
        raise Bad(f"its weight has shape {list(w.shape)}; Gemm needs a matrix")
    if w.dtype.kind != "f":
        raise Bad(f"its weight has type {w.dtype}; weights must be float")
    out = w.shape[0] if attr(node, "transB", 0) else w.shape[1]
    fin = w.shape[1] if attr(node, "transB", 0) else w.shape[0]
    x = shapes.get(node.input[0])
    if x is not None and len(x) == 2 and not attr(node, "transA", 0) and x[1] != fin:
        raise Bad(f"its input has {x[1]} features but its weight {list(w.shape)} takes {fin}")
    b = _const(consts, node, 2)
    if b is not None and b.size not in (1, out):
        raise Bad(f"its bias has {b.size} values for {out} output features")


@_check("MatMul")
def _matmul(node, consts, shapes):
    w = _const(consts, node, 1)
    if w is not None and w.dtype.kind != "f":
        raise Bad(f"its weight has type {w.dtype}; weights must be float")


@_check("BatchNormalization")
def _bn(node, consts, shapes):
    eps = attr(node, "epsilon", 1e-5)
    if not isinstance(eps, float) or not np.isfinite(eps) or eps < 0:
        raise Bad(f"epsilon={eps!r} must be a finite number >= 0")
    x = shapes.get(node.input[0])
    c = x[1] if x is not None and len(x) >= 2 else None
    for i, role in enumerate(("scale", "bias", "mean", "var"), start=1):
        p = _const(consts, node, i)
        if p is None:
            continue
        if p.ndim != 1 or (c is not None and p.shape[0] != c):
            raise Bad(f"its {role} has shape {list(p.shape)}; it needs one value per channel "
                      f"({c if c is not None else 'C'})")
        if role == "var" and (p < 0).any():
            raise Bad("its running variance has negative values")


@_check("Dropout")
def _dropout(node, consts, shapes):
    r = _const(consts, node, 1)
    if r is not None:
        if r.size != 1 or r.ndim != 0:
            raise Bad(f"its ratio input has shape {list(r.shape)}; it must be a scalar")
        r = float(r)
    else:
        r = attr(node, "ratio", 0.5)
    if not isinstance(r, (int, float)) or not 0 <= r < 1:
        raise Bad(f"ratio={r!r} must lie in [0, 1)")


@_check("Clip")
def _clip(node, consts, shapes):
    for i, key in ((1, "min"), (2, "max")):
        v = _const(consts, node, i)
        if v is not None and (v.size != 1 or v.ndim > 1):
            raise Bad(f"its {key} input has shape {list(v.shape)}; it must be a scalar")
        if v is not None and not np.isfinite(v).all():
            raise Bad(f"its {key} input is {float(v.reshape(-1)[0])}")


@_check("Concat")
def _concat(node, consts, shapes):
    x = shapes.get(node.input[0]) if node.input else None
    axis = attr(node, "axis")
    if x is not None and (not isinstance(axis, int) or not -len(x) <= axis < len(x)):
        raise Bad(f"axis={axis!r} is out of range for rank {len(x)}")


def _finite_attrs(node) -> None:
    """Float attributes (Gemm alpha/beta, Clip min/max, ...) must be finite numbers: each
    attribute, read from the node's table (which the checks and converters read next) unless
    a name repeats (then the node's list, every attribute)."""
    table = attributes(node)
    for a in table.values() if len(table) == len(node.attribute) else node.attribute:
        t = a.type
        if t == _FLOAT and not math.isfinite(a.f):
            raise Bad(f"attribute {a.name}={a.f} is not a finite number")
        if t == _FLOATS and not np.isfinite(list(a.floats)).all():
            raise Bad(f"attribute {a.name}={list(a.floats)} holds non-finite values")


_FLOAT, _FLOATS = onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS


def check_nodes(model: onnx.ModelProto, consts: dict[str, np.ndarray],
                shapes: Shapes) -> list[tuple[int, onnx.NodeProto, str]]:
    """Every (node index, node, reason) that breaks one of snnc's attribute checks."""
    bad = []
    for index, node in enumerate(model.graph.node):
        fn = _CHECKS.get(node.op_type)
        if fn is None or node.domain not in ("", "ai.onnx"):
            continue
        try:
            _finite_attrs(node)
            fn(node, consts, shapes)
        except Bad as why:
            bad.append((index, node, str(why)))
    return bad
