"""Converters from ONNX nodes to IR ops, and the constant evaluator, both by registry.

``@onnx_converter("Conv")`` registers ``fn(ctx, node)``: it reads inputs through the context
(``ctx.tensor`` for an activation, ``ctx.const`` for an initializer or folded constant) and
emits IR nodes with ``ctx.emit``, or aliases its output with ``ctx.alias`` (Identity). It
refuses with ``Reject(reason)``; the importer reports every refusal and every unknown op at once.

``@const_eval("Shape")`` registers ``fn(ctx, node) -> [arrays]`` for shape arithmetic that the
exporters leave in the graph (``x.view(x.size(0), -1)`` becomes Shape -> Gather -> Unsqueeze
-> Concat -> Reshape): it runs when all inputs are constants (Shape only needs a known shape).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from snnc.compiler.core.ops import ONNX_SOURCES

Converter = Callable[[Any, onnx.NodeProto], None]
ONNX_CONVERTERS: dict[str, Converter] = {}
CONST_EVALS: dict[str, Callable[[Any, onnx.NodeProto], list[np.ndarray]]] = {}


class Reject(Exception):
    """A converter's refusal: the reason goes into the UnsupportedOp message."""


def onnx_converter(*ops: str):
    """Register the decorated function as the converter of ONNX op types `ops` (each must be
    a source of an IR op in the op table, compiler/core/ops.py)."""
    def deco(fn: Converter) -> Converter:
        for op in ops:
            if op not in ONNX_SOURCES:
                raise ValueError(f"ONNX op {op} has no IR op in compiler/core/ops.py: add it to "
                                 f"the `onnx` sources of the op it imports as")
            ONNX_CONVERTERS[op] = fn
        return fn
    return deco


def const_eval(*ops: str):
    """Register the decorated function as the constant evaluator of ONNX op types `ops`."""
    def deco(fn):
        for op in ops:
            CONST_EVALS[op] = fn
        return fn
    return deco


_INT, _INTS = onnx.AttributeProto.INT, onnx.AttributeProto.INTS
_FLOAT, _STRING = onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute `name` of `node` (strings decoded), or `default`: what
    onnx.helper.get_attribute_value gives, the common types read directly."""
    a = attributes(node).get(name)
    if a is None:
        return default
    t = a.type
    if not a.ref_attr_name:
        if t == _INTS:
            return a.ints[:]  # a list, as list(a.ints) gives, in half the time
        if t == _INT:
            return a.i
        if t == _FLOAT:
            return a.f
        if t == _STRING:
            return a.s.decode()
    v = helper.get_attribute_value(a)
    return v.decode() if isinstance(v, bytes) else v


_LAST: tuple = (None, {})  # (node, its table) of the node `attributes` read last
# {id(node): (node, its table)} of every node read within `attribute_tables()` (None outside)
_TABLES: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "snnc_onnx_attribute_tables", default=None)


def attributes(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    """{name: attribute} of `node` (the first of a repeated name, as a scan finds it).

    A converter and snnc's checks read a node's attributes one `attr` call each (a Conv:
    six), and each call scanned the node's attribute list: the table of the node read last
    is kept (one tuple, replaced whole, so concurrent imports never mix two nodes' tables;
    `forget_attributes` drops it after an import, so no model is kept alive). Within
    `attribute_tables()` every node's table is kept: the node checks read each node first,
    the converters again (densenet121: ~250 nodes with attributes, each scanned once
    instead of twice)."""
    global _LAST
    last = _LAST
    if last[0] is node:
        return last[1]
    tables = _TABLES.get()
    if tables is not None:
        got = tables.get(id(node))  # each entry holds its node: no other has its id meanwhile
        if got is not None:
            _LAST = got
            return got[1]
    table: dict[str, onnx.AttributeProto] = {}
    for a in node.attribute:
        table.setdefault(a.name, a)
    _LAST = (node, table)
    if tables is not None:
        tables[id(node)] = _LAST
    return table


def forget_attributes() -> None:
    """Drop the table `attributes` keeps (and with it the node and its model)."""
    global _LAST
    _LAST = (None, {})


@contextlib.contextmanager
def attribute_tables():
    """Within this block (one import, on this thread or task: a context variable), keep the
    table of every node `attributes` reads; all of them dropped at its end, with the last."""
    token = _TABLES.set({})
    forget_attributes()  # a table made before the block would not be kept in it
    try:
        yield
    finally:
        _TABLES.reset(token)
        forget_attributes()


def f32(v: float) -> float:
    """A float32 attribute as the shortest decimal that round-trips (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(v)))


def _window_pads(ctx, node, k, stride, dil) -> tuple[int, int, int, int]:
    """ONNX pads [top, left, bottom, right] (already our order), or from auto_pad."""
    auto = attr(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = list(attr(node, "pads", [0, 0, 0, 0]))
        return (p[0], p[1], p[2], p[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    h, w = ctx.shape(node.input[0])[2:]
    pads = []
    for size, kk, s, d in ((h, k[0], stride[0], dil[0]), (w, k[1], stride[1], dil[1])):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (kk - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _two_d(ctx, node) -> None:
    if len(ctx.shape(node.input[0])) != 4:
        raise Reject(f"input of rank {len(ctx.shape(node.input[0]))}; only 2-D (NCHW) is "
                     f"supported")


@onnx_converter("Conv")
def _conv(ctx, node):
    _two_d(ctx, node)
    w = ctx.const(node.input[1], "weight")
    b = ctx.const(node.input[2], "bias") if len(node.input) > 2 and node.input[2] else None
    k = tuple(attr(node, "kernel_shape", w.shape[2:]))
    stride = tuple(attr(node, "strides", [1, 1]))
    dil = tuple(attr(node, "dilations", [1, 1]))
    groups = attr(node, "group", 1)
    attrs = {"in": int(w.shape[1]) * groups, "out": int(w.shape[0]), "k": k, "stride": stride,
             "pad": _window_pads(ctx, node, k, stride, dil), "dilation": dil, "groups": groups,
             "bias": b is not None}
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    ctx.emit(node, "conv2d", attrs, [node.input[0]], params)


@onnx_converter("Gemm")
def _gemm(ctx, node):
    if attr(node, "transA", 0):
        raise Reject("transA=1")
    w = ctx.const(node.input[1], "weight")
    if attr(node, "alpha", 1.0) != 1.0:
        w = w * attr(node, "alpha", 1.0)
    if not attr(node, "transB", 0):
        w = w.T
    b = None
    if len(node.input) > 2 and node.input[2]:
        b = np.broadcast_to(ctx.const(node.input[2], "bias") * attr(node, "beta", 1.0),
                            (w.shape[0],))
    attrs = {"in": int(w.shape[1]), "out": int(w.shape[0]), "bias": b is not None}
    ctx.emit(node, "linear", attrs, [node.input[0]],
             {"weight": w} if b is None else {"weight": w, "bias": b})


@onnx_converter("MatMul")
def _matmul(ctx, node):
    if ctx.const(node.input[1]) is None:
        raise Reject("MatMul of two activations (attention or gating); only activation x "
                     "constant weight (a linear layer) is supported")
    w = ctx.const(node.input[1]).T
    if w.ndim != 2 or len(ctx.shape(node.input[0])) != 2:
        raise Reject("MatMul that is not [N, in] x [in, out]")
    ctx.emit(node, "linear", {"in": int(w.shape[1]), "out": int(w.shape[0]), "bias": False},
             [node.input[0]], {"weight": w})


@onnx_converter("Add", "Sum")
def _add(ctx, node):
    consts = [ctx.const(i) for i in node.input]
    if any(c is not None for c in consts):
        if len(node.input) == 2 and ctx.fold_bias(node, *node.input):
            return
        raise Reject("addition of a constant (only a bias right after a conv/MatMul folds)")
    shapes = {ctx.shape(i) for i in node.input}
    if len(shapes) != 1:
        raise Reject(f"broadcasting add of shapes {sorted(list(s) for s in shapes)}")
    ctx.emit(node, "add", {}, list(node.input), {})


@onnx_converter("BatchNormalization")
def _bn(ctx, node):
    if attr(node, "training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise Reject("training_mode=1 (batch statistics); export the model in eval mode")
    roles = ("weight", "bias", "running_mean", "running_var")
    params = {r: ctx.const(i, r) for r, i in zip(roles, node.input[1:5])}
    ctx.emit(node, "batchnorm", {"eps": f32(attr(node, "epsilon", 1e-5))},
             [node.input[0]], params)


@onnx_converter("Relu")
def _relu(ctx, node):
    ctx.emit(node, "relu", {}, [node.input[0]], {})


@onnx_converter("Clip")
def _clip(ctx, node):
    bounds = []
    for i, key in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            c = ctx.const(node.input[i], key)
            bounds.append(float(c.reshape(-1)[0]))
        else:
            bounds.append(attr(node, key))
    lo, hi = (None if v is None else f32(v) for v in bounds)
    ctx.emit(node, "clip", {"min": lo, "max": hi}, [node.input[0]], {})


@onnx_converter("Concat")
def _concat(ctx, node):
    if any(ctx.const(i) is not None for i in node.input):
        raise Reject("concatenation with a constant tensor")
    rank = len(ctx.shape(node.input[0]))
    ctx.emit(node, "concat", {"axis": attr(node, "axis") % rank}, list(node.input), {})


def _pool_attrs(ctx, node) -> dict:
    _two_d(ctx, node)
    k = tuple(attr(node, "kernel_shape"))
    stride = tuple(attr(node, "strides", [1, 1]))
    dil = tuple(attr(node, "dilations", [1, 1]))
    return {"k": k, "stride": stride, "pad": _window_pads(ctx, node, k, stride, dil),
            "ceil": bool(attr(node, "ceil_mode", 0)), "_dil": dil}


@onnx_converter("MaxPool")
def _maxpool(ctx, node):
    if len(node.output) > 1 and node.output[1] and ctx.is_used(node.output[1]):
        raise Reject("the Indices output is used")
    a = _pool_attrs(ctx, node)
    a["dilation"] = a.pop("_dil")
    ctx.emit(node, "maxpool", a, [node.input[0]], {})


@onnx_converter("AveragePool")
def _avgpool(ctx, node):
    a = _pool_attrs(ctx, node)
    if a.pop("_dil") != (1, 1):
        raise Reject("dilated average pooling")
    a["count_include_pad"] = bool(attr(node, "count_include_pad", 0))
    ctx.emit(node, "avgpool", a, [node.input[0]], {})


@onnx_converter("GlobalAveragePool")
def _gap(ctx, node):
    _two_d(ctx, node)
    ctx.emit(node, "adaptive_avgpool", {"out": (1, 1)}, [node.input[0]], {})


@onnx_converter("ReduceMean")
def _mean(ctx, node):
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node.input[1], "axes").tolist()
    rank = len(ctx.shape(node.input[0]))
    if rank != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
        raise Reject(f"ReduceMean over axes {axes}; only the spatial mean over (2, 3) "
                     f"(global average pool) is supported")
    steps = [("adaptive_avgpool", {"out": (1, 1)})]
    if not attr(node, "keepdims", 1):
        steps.append(("flatten", {"start": 1}))
    ctx.emit_chain(node, steps, node.input[0])


@onnx_converter("Flatten")
def _flatten(ctx, node):
    shape = ctx.shape(node.input[0])
    axis = attr(node, "axis", 1) % (len(shape) or 1)
    ctx.emit_reshape(node, (math.prod(shape[:axis]), math.prod(shape[axis:])))


@onnx_converter("Reshape")
def _reshape(ctx, node):
    target = ctx.const(node.input[1], "shape")
    if target is None:
        raise Reject("Reshape to a shape computed at run time")
    ctx.emit_reshape(node, _reshape_shape(ctx.shape(node.input[0]), target.tolist(),
                                          attr(node, "allowzero", 0)))


@onnx_converter("Squeeze", "Unsqueeze")
def _squeeze(ctx, node):
    shape = list(ctx.shape(node.input[0]))
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node.input[1], "axes").tolist()
    ctx.emit_reshape(node, _squeeze_shape(node.op_type, shape, axes))


@onnx_converter("Dropout")
def _dropout(ctx, node):
    ratio = attr(node, "ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        ratio = float(ctx.const(node.input[1], "ratio"))
    ctx.emit(node, "dropout", {"p": f32(ratio)}, [node.input[0]], {})


@onnx_converter("Identity")
def _identity(ctx, node):
    ctx.alias(node.output[0], node.input[0])


# -- constant evaluation ----------------------------------------------------------------------
def _reshape_shape(src, target, allowzero=0) -> tuple[int, ...]:
    out = [src[i] if (d == 0 and not allowzero) else int(d) for i, d in enumerate(target)]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(src) // known if known else 0
    return tuple(out)


def _squeeze_shape(op, shape, axes) -> tuple[int, ...]:
    if op == "Squeeze":
        if axes is None:
            return tuple(d for d in shape if d != 1)
        drop = {a % len(shape) for a in axes}
        return tuple(d for i, d in enumerate(shape) if i not in drop)
    out = list(shape)
    for a in sorted(a % (len(shape) + len(axes)) for a in axes):
        out.insert(a, 1)
    return tuple(out)


@const_eval("Shape")
def _c_shape(ctx, node):
    shape = np.array(ctx.shape(node.input[0]), dtype=np.int64)
    start, end = attr(node, "start", 0), attr(node, "end")
    return [shape[start:end]]


@const_eval("Constant")
def _c_constant(ctx, node):
    a = node.attribute[0]
    v = helper.get_attribute_value(a)
    if a.name == "value":
        return [onnx.numpy_helper.to_array(v)]
    return [np.array(v, dtype=np.float32 if "float" in a.name else np.int64)]


@const_eval("Identity", "Cast")
def _c_identity(ctx, node):
    x = ctx.const(node.input[0])
    if node.op_type == "Cast":
        x = x.astype(helper.tensor_dtype_to_np_dtype(attr(node, "to")))
    return [x]


@const_eval("Gather")
def _c_gather(ctx, node):
    data, idx = ctx.const(node.input[0]), ctx.const(node.input[1])
    return [np.take(data, idx, axis=attr(node, "axis", 0))]


@const_eval("Unsqueeze", "Squeeze")
def _c_squeeze(ctx, node):
    x = ctx.const(node.input[0])
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1:
        axes = ctx.const(node.input[1]).tolist()
    return [x.reshape(_squeeze_shape(node.op_type, list(x.shape), axes))]


@const_eval("Concat")
def _c_concat(ctx, node):
    return [np.concatenate([ctx.const(i) for i in node.input], axis=attr(node, "axis"))]


@const_eval("Reshape")
def _c_reshape(ctx, node):
    x = ctx.const(node.input[0])
    return [x.reshape(_reshape_shape(x.shape, ctx.const(node.input[1]).tolist()))]


@const_eval("Add", "Sub", "Mul", "Div")
def _c_arith(ctx, node):
    a, b = (ctx.const(i) for i in node.input)
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}.get(node.op_type)
    if fn is None:
        fn = np.floor_divide if np.issubdtype(a.dtype, np.integer) else np.divide
    return [fn(a, b).astype(a.dtype)]


@const_eval("Slice")
def _c_slice(ctx, node):
    x = ctx.const(node.input[0])
    starts, ends = ctx.const(node.input[1]), ctx.const(node.input[2])
    opt = [ctx.const(i) if i else None for i in list(node.input[3:5]) + ["", ""]][:2]
    axes = opt[0] if opt[0] is not None else range(len(starts))
    steps = opt[1] if opt[1] is not None else [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[int(a)] = slice(int(s), int(e), int(st))
    return [x[tuple(idx)]]
