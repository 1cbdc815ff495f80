"""Converters from torch.fx nodes (modules, functions, methods) to IR ops, by registry.

``@fx_converter(nn.Conv2d)``, ``@fx_converter(torch.relu)`` or ``@fx_converter("view")`` register
a function ``(module or None, fx node, ctx) -> [(op, attrs, params), ...]``: the steps applied one
after another to the node's tensor inputs (usually one step; none for a no-op such as
``.contiguous()``; two for ``x.mean((2, 3))`` = adaptive_avgpool + flatten). A converter refuses
with ``Reject(reason)``; the front end collects every refusal and unknown op into one error.
"""
from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from snnc.compiler.core.ops import FX_SOURCES

# A converter gets (module or None, fx node, trace context) and returns a list of
# (op, attrs, params) steps applied one after another to the node's tensor inputs, or raises
# Reject(reason).
Step = tuple[str, dict, dict]
Converter = Callable[["nn.Module | None", fx.Node, "Ctx"], list[Step]]
MODULE_CONVERTERS: dict[type, Converter] = {}
FUNCTION_CONVERTERS: dict[Any, Converter] = {}
METHOD_CONVERTERS: dict[str, Converter] = {}


def resolve_source(name: str) -> Any:
    """A torch module/function named in the op table (`torch.nn.Conv2d`), or a Tensor method
    name (no dot) as is."""
    if "." not in name:
        return name
    mod, _, attr = name.rpartition(".")
    import importlib

    try:
        obj = importlib.import_module(mod)
    except ImportError:
        obj = resolve_source(mod)
    return getattr(obj, attr)


@functools.lru_cache(maxsize=None)
def table_sources() -> tuple[Any, ...]:
    """The fx sources of the op table (compiler/core/ops.py), resolved."""
    return tuple(resolve_source(name) for name in FX_SOURCES)


class Reject(Exception):
    """A converter's refusal: the reason goes into the UnsupportedOp message."""


def fx_converter(*targets: Any):
    """Register a converter for module classes, functions (torch.relu) or method names ("view")."""
    def deco(fn: Converter) -> Converter:
        for t in targets:
            if not any(t is s or t == s for s in table_sources()):
                raise ValueError(f"fx source {t!r} has no IR op in compiler/core/ops.py: add it "
                                 f"to the `fx` sources of the op it traces as")
            if isinstance(t, type):
                MODULE_CONVERTERS[t] = fn
            elif isinstance(t, str):
                METHOD_CONVERTERS[t] = fn
            else:
                FUNCTION_CONVERTERS[t] = fn
        return fn
    return deco


@dataclass
class Ctx:
    """What converters may read: input shapes (from the example run) and constant arguments."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def in_shape(self, n: fx.Node, i: int = 0) -> tuple[int, ...]:
        return self.shapes[tensor_args(n)[i].name]

    def out_shape(self, n: fx.Node) -> tuple[int, ...]:
        return self.shapes[n.name]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _arg(n: fx.Node, i: int, key: str, default: Any = None) -> Any:
    if len(n.args) > i:
        return n.args[i]
    return n.kwargs.get(key, default)


def tensor_args(n: fx.Node) -> list[fx.Node]:
    """The tensor-valued inputs of `n` in order (lists such as torch.cat's are flattened)."""
    out: list[fx.Node] = []

    def visit(a: Any) -> None:
        if isinstance(a, fx.Node):
            if hasattr(a.meta.get("tensor_meta"), "shape"):
                out.append(a)
        elif isinstance(a, (list, tuple)):
            for x in a:
                visit(x)
    for a in list(n.args) + list(n.kwargs.values()):
        visit(a)
    return out


# -- converters: modules ----------------------------------------------------------------------
@fx_converter(nn.Conv2d)
def _conv(m: nn.Conv2d, n, ctx) -> list[Step]:
    if m.padding_mode != "zeros":
        raise Reject(f"padding_mode={m.padding_mode!r}; only 'zeros' is supported")
    kh, kw = m.kernel_size
    if isinstance(m.padding, str):  # 'same' / 'valid'
        pads = []  # torch's 'same': d*(k-1) in all, the odd one at the bottom/right
        for k, d in ((kh, m.dilation[0]), (kw, m.dilation[1])):
            total = d * (k - 1) if m.padding == "same" else 0
            pads.append((total // 2, total - total // 2))
        pad = (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
    else:
        ph, pw = m.padding
        pad = (ph, pw, ph, pw)
    attrs = {"in": m.in_channels, "out": m.out_channels, "k": (kh, kw), "stride": _pair(m.stride),
             "pad": pad, "dilation": _pair(m.dilation), "groups": m.groups,
             "bias": m.bias is not None}
    params = {"weight": m.weight}
    if m.bias is not None:
        params["bias"] = m.bias
    return [("conv2d", attrs, params)]


@fx_converter(nn.Linear)
def _linear(m: nn.Linear, n, ctx) -> list[Step]:
    params = {"weight": m.weight}
    if m.bias is not None:
        params["bias"] = m.bias
    return [("linear", {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None},
             params)]


@fx_converter(nn.BatchNorm2d, nn.BatchNorm1d)
def _bn(m: nn.BatchNorm2d, n, ctx) -> list[Step]:
    if m.running_mean is None or m.running_var is None:
        raise Reject("track_running_stats=False (batch statistics at inference); keep running "
                      "statistics")
    c = m.num_features
    weight = m.weight if m.weight is not None else torch.ones(c)
    bias = m.bias if m.bias is not None else torch.zeros(c)
    return [("batchnorm", {"eps": float(m.eps)},
             {"weight": weight, "bias": bias, "running_mean": m.running_mean,
              "running_var": m.running_var})]


@fx_converter(nn.ReLU)
def _relu_mod(m, n, ctx) -> list[Step]:
    return [("relu", {}, {})]


@fx_converter(nn.ReLU6, nn.Hardtanh)
def _hardtanh_mod(m: nn.Hardtanh, n, ctx) -> list[Step]:
    return [("clip", {"min": float(m.min_val), "max": float(m.max_val)}, {})]


def _pool_attrs(k, stride, pad, ceil) -> dict:
    k = _pair(k)
    stride = _pair(stride) if stride not in (None, ()) else k
    ph, pw = _pair(pad)
    return {"k": k, "stride": stride, "pad": (ph, pw, ph, pw), "ceil": bool(ceil)}


@fx_converter(nn.MaxPool2d)
def _maxpool_mod(m: nn.MaxPool2d, n, ctx) -> list[Step]:
    if m.return_indices:
        raise Reject("return_indices=True")
    attrs = _pool_attrs(m.kernel_size, m.stride, m.padding, m.ceil_mode)
    return [("maxpool", {**attrs, "dilation": _pair(m.dilation)}, {})]


@fx_converter(nn.AvgPool2d)
def _avgpool_mod(m: nn.AvgPool2d, n, ctx) -> list[Step]:
    if m.divisor_override is not None:
        raise Reject("divisor_override is set")
    attrs = _pool_attrs(m.kernel_size, m.stride, m.padding, m.ceil_mode)
    return [("avgpool", {**attrs, "count_include_pad": bool(m.count_include_pad)}, {})]


def _adaptive(out, ctx, n) -> list[Step]:
    h, w = ctx.in_shape(n)[2:]
    oh, ow = (out, out) if isinstance(out, int) else out
    return [("adaptive_avgpool", {"out": (oh or h, ow or w)}, {})]


@fx_converter(nn.AdaptiveAvgPool2d)
def _adaptive_mod(m: nn.AdaptiveAvgPool2d, n, ctx) -> list[Step]:
    return _adaptive(m.output_size, ctx, n)


@fx_converter(nn.Flatten)
def _flatten_mod(m: nn.Flatten, n, ctx) -> list[Step]:
    return _flatten_steps(n, ctx)


@fx_converter(nn.Dropout, nn.Dropout2d)
def _dropout_mod(m: nn.Dropout, n, ctx) -> list[Step]:
    return [("dropout", {"p": float(m.p)}, {})]


@fx_converter(nn.Identity)
def _identity_mod(m, n, ctx) -> list[Step]:
    return [("identity", {}, {})]


# -- converters: functions and methods --------------------------------------------------------
@fx_converter(F.relu, torch.relu, torch.relu_, F.relu_, "relu", "relu_")
def _relu_fn(m, n, ctx) -> list[Step]:
    return [("relu", {}, {})]


@fx_converter(F.relu6)
def _relu6_fn(m, n, ctx) -> list[Step]:
    return [("clip", {"min": 0.0, "max": 6.0}, {})]


@fx_converter(F.hardtanh, F.hardtanh_)
def _hardtanh_fn(m, n, ctx) -> list[Step]:
    return [("clip", {"min": float(_arg(n, 1, "min_val", -1.0)),
                      "max": float(_arg(n, 2, "max_val", 1.0))}, {})]


@fx_converter(torch.clamp, torch.clip, "clamp", "clamp_", "clip", "clip_")
def _clamp(m, n, ctx) -> list[Step]:
    lo, hi = _arg(n, 1, "min"), _arg(n, 2, "max")
    if isinstance(lo, fx.Node) or isinstance(hi, fx.Node):
        raise Reject("clamp with tensor bounds; use constant bounds")
    return [("clip", {"min": None if lo is None else float(lo),
                      "max": None if hi is None else float(hi)}, {})]


@fx_converter(operator.add, operator.iadd, torch.add, "add", "add_")
def _add(m, n, ctx) -> list[Step]:
    if len(tensor_args(n)) != 2 or any(isinstance(a, (int, float)) for a in n.args):
        raise Reject("addition of a constant; only tensor + tensor of the same shape is "
                      "supported")
    if n.kwargs.get("alpha", 1) != 1:
        raise Reject("torch.add with alpha != 1")
    a, b = (ctx.shapes[t.name] for t in tensor_args(n))
    if a != b:
        raise Reject(f"broadcasting add of shapes {list(a)} and {list(b)}")
    return [("add", {}, {})]


@fx_converter(torch.cat, torch.concat)
def _cat(m, n, ctx) -> list[Step]:
    axis = _arg(n, 1, "dim", 0)
    rank = len(ctx.out_shape(n))
    return [("concat", {"axis": axis % rank}, {})]


@fx_converter(F.max_pool2d)
def _maxpool_fn(m, n, ctx) -> list[Step]:
    if _arg(n, 6, "return_indices", False):
        raise Reject("return_indices=True")
    attrs = _pool_attrs(_arg(n, 1, "kernel_size"), _arg(n, 2, "stride"), _arg(n, 3, "padding", 0),
                        _arg(n, 5, "ceil_mode", False))
    return [("maxpool", {**attrs, "dilation": _pair(_arg(n, 4, "dilation", 1))}, {})]


@fx_converter(F.avg_pool2d)
def _avgpool_fn(m, n, ctx) -> list[Step]:
    if _arg(n, 6, "divisor_override") is not None:
        raise Reject("divisor_override is set")
    attrs = _pool_attrs(_arg(n, 1, "kernel_size"), _arg(n, 2, "stride"), _arg(n, 3, "padding", 0),
                        _arg(n, 4, "ceil_mode", False))
    return [("avgpool", {**attrs, "count_include_pad": bool(_arg(n, 5, "count_include_pad",
                                                                   True))}, {})]


@fx_converter(F.adaptive_avg_pool2d)
def _adaptive_fn(m, n, ctx) -> list[Step]:
    return _adaptive(_arg(n, 1, "output_size"), ctx, n)


@fx_converter(torch.mean, "mean")
def _mean(m, n, ctx) -> list[Step]:
    dims = _arg(n, 1, "dim")
    keep = _arg(n, 2, "keepdim", False)
    rank = len(ctx.in_shape(n))
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if rank != 4 or sorted(d % 4 for d in dims) != [2, 3]:
        raise Reject(f"mean over dims {list(dims)}; only the spatial mean over (2, 3) "
                      f"(global average pool) is supported")
    steps: list[Step] = [("adaptive_avgpool", {"out": (1, 1)}, {})]
    if not keep:
        steps.append(("flatten", {"start": 1}, {}))
    return steps


def _flatten_steps(n: fx.Node, ctx: Ctx) -> list[Step]:
    src, out = ctx.in_shape(n), ctx.out_shape(n)
    if out == src:
        return [("identity", {}, {})]
    for start in range(len(src)):
        if out == (*src[:start], math.prod(src[start:])):
            return [("flatten", {"start": start}, {})]
    return [("reshape", {"shape": batch_free(src, out)}, {})]


def batch_free(src: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
    """A reshape target that keeps the batch dimension written as -1, so any batch runs."""
    if out and src and out[0] == src[0]:
        return (-1, *map(int, out[1:]))
    return tuple(map(int, out))


@fx_converter(torch.flatten, torch.reshape, "view", "reshape", "flatten")
def _reshape(m, n, ctx) -> list[Step]:
    return _flatten_steps(n, ctx)


@fx_converter(F.dropout, F.dropout2d)
def _dropout_fn(m, n, ctx) -> list[Step]:
    return [("dropout", {"p": float(_arg(n, 1, "p", 0.5))}, {})]


@fx_converter("contiguous")
def _contiguous(m, n, ctx) -> list[Step]:
    return []  # no-op: the node is an alias of its input


def converter_for(n: fx.Node, gm: fx.GraphModule) -> tuple[Converter | None, Any]:
    """The converter of `n` (None if unknown) and, for a module call, the module."""
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        for cls in type(m).__mro__:
            if cls in MODULE_CONVERTERS:
                return MODULE_CONVERTERS[cls], m
        return None, m
    if n.op == "call_function":
        return FUNCTION_CONVERTERS.get(n.target), None
    if n.op == "call_method":
        return METHOD_CONVERTERS.get(n.target), None
    return None, None
