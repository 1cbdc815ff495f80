"""PyTorch front end: trace an ``nn.Module`` with torch.fx into an ANN-form graph.

    g = from_torch(model, input_shape=(3, 32, 32))            # or example_input=torch.randn(...)

Every module call, function and method of the trace goes through a converter registered with
``@fx_converter(...)`` (module classes, functions or method names), which returns the IR op and
its attributes (docs/ir.md). Shapes come from running the example input through the trace
(batch 1). Names come from module paths (``layer1.0.conv1`` -> ``layer1_0_conv1``) or, for
functions, from torch.fx's node names (``add_1``). Only plain DATA edges are written; skip
edges are annotated later (compiler/core/blocks.py).

Reshapes that flatten everything after the batch (``x.view(x.size(0), -1)``) become
``flatten{start=1}``, ``x.mean((2, 3))`` becomes ``adaptive_avgpool{out=(1,1)}`` + ``flatten``,
so that the trace and an ONNX export of the same model give the same graph.
"""

from __future__ import annotations

import contextlib
import io
import math
import operator
import re
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from snnc.compiler.core import limits
from snnc.compiler.core.errors import ImportFailed, SnncError, UnsupportedOp
from snnc.compiler.frontends.report import problem_list
from snnc.compiler.frontends.fx_ops import (
    MODULE_CONVERTERS, Ctx, Reject, converter_for, tensor_args,
)
from snnc.compiler.core.ir import Attrs, Graph, GraphBuilder, Node, sanitize

# -- tracing ----------------------------------------------------------------------------------
class _Tracer(fx.Tracer):
    """torch.fx's tracer, remembering which module's forward was running (for error messages)."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """torch.nn's modules, and user subclasses of any module snnc converts, are leaves."""
        if any(cls in MODULE_CONVERTERS for cls in type(m).__mro__):
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        self.stack.append(self.path_of_module(m) or type(m).__name__)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module whose forward raised
                self.failed_in = self.stack[-1]
            raise
        finally:
            self.stack.pop()


def _describe(n: fx.Node, gm: fx.GraphModule) -> str:
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        return f"module '{n.target}' ({type(m).__name__})"
    if n.op == "call_function":
        fn = getattr(n.target, "__name__", str(n.target))
        return f"node '{n.name}' (function {getattr(n.target, '__module__', '') or ''}.{fn})"
    if n.op == "call_method":
        return f"node '{n.name}' (method .{n.target}())"
    return f"node '{n.name}' ({n.op} {n.target})"


def _kind(n: fx.Node, gm: fx.GraphModule) -> str:
    """What groups unsupported nodes in a refusal: the module class, function or method."""
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    return str(getattr(n.target, "__name__", n.target))


def _trace(module: nn.Module, label: str) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except fx.proxy.TraceError as err:
        where = tracer.failed_in or "the top-level module"
        raise ImportFailed(
            f"{label}: torch.fx cannot trace the forward of {where!r}: it uses data-dependent "
            f"control flow or Python operations on traced values ({err}). Make that module a "
            f"leaf (subclass torch.fx.Tracer and return True from is_leaf_module) and convert it "
            f"yourself, or rewrite its forward as a plain sequence of tensor operations, or "
            f"export the model to ONNX and import the .onnx file.") from None
    except Exception as err:  # torch raises many types while tracing user code
        where = tracer.failed_in or "the top-level module"
        raise ImportFailed(f"{label}: torch.fx failed while tracing {where!r}: "
                           f"{type(err).__name__}: {err}. Rewrite that forward as plain tensor "
                           f"operations, or export the model to ONNX and import the .onnx "
                           f"file.") from None
    return fx.GraphModule(module, graph)


def _example(module: nn.Module, example_input: Any, input_shape: Any, label: str) -> tuple:
    if example_input is None:
        shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
        if shape is None:
            raise ImportFailed(
                f"{label}: no input shape. snnc runs an example input through the traced model "
                f"to learn every shape: pass example_input=torch.randn(1, 3, 32, 32) or "
                f"input_shape=(3, 32, 32) (without the batch dimension; on the command line "
                f"--input-shape 3,32,32).")
        shapes = [shape] if isinstance(shape[0], int) else list(shape)
        gen = torch.Generator().manual_seed(0)
        limits.require(sum(4 * math.prod(map(int, s)) for s in shapes), "the example input",
                       label)
        return tuple(torch.randn(1, *map(int, s), generator=gen) for s in shapes)
    xs = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    return tuple(x[:1] if x.dim() > 0 else x for x in xs)  # front ends use batch 1


class _ShapeProp(ShapeProp):
    """torch's ShapeProp, remembering the node that failed and printing no traceback (torch's
    own prints one to stderr before re-raising)."""

    current: fx.Node | None = None

    def run_node(self, n):
        self.current = n
        with contextlib.redirect_stderr(io.StringIO()):
            return super().run_node(n)


def _activation_bytes(gm: fx.GraphModule, inputs: tuple) -> tuple[int, str | None]:
    """Bytes of every node's output for `inputs`, from a run on fake tensors (no memory);
    (0, None) when the fake run is not possible."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode(allow_non_fake_inputs=True)
        fakes = [mode.from_tensor(x) for x in inputs]
        prop = _ShapeProp(gm, fake_mode=mode)
        prop.propagate(*fakes)
    except Exception:
        return 0, None
    total, worst, node = 0, 0, None
    for n in gm.graph.nodes:
        meta = n.meta.pop("tensor_meta", None)
        if hasattr(meta, "shape"):
            here = 4 * math.prod(meta.shape)
            total += here
            if here > worst:
                worst, node = here, n.name
    return total, node


def _run_shapes(gm: fx.GraphModule, module: nn.Module, inputs: tuple, label: str) -> None:
    modes = {m: m.training for m in module.modules()}
    prop = _ShapeProp(gm)
    try:
        module.eval()
        with torch.no_grad():
            need, node = _activation_bytes(gm, inputs)
            limits.require(need, "running the example input through the model", label, node)
            prop.propagate(*inputs)
    except SnncError:
        raise
    except Exception as err:  # the user's model failed on the example input
        shapes = ", ".join(str(list(x.shape)) for x in inputs)
        cause = err.__cause__ if isinstance(err, RuntimeError) and err.__cause__ else err
        where = f" at {_describe(prop.current, gm)}" if prop.current is not None else ""
        first = (str(cause).strip().splitlines() or [""])[0][:300]
        raise ImportFailed(f"{label}: running the example input(s) of shape {shapes} through the "
                           f"traced model failed{where}: {type(cause).__name__}: {first}. "
                           f"Check the input shape (without batch, e.g. input_shape=(3, 32, "
                           f"32); on the command line --input-shape 3,32,32).") from None
    finally:
        for m, mode in modes.items():
            m.training = mode


def _base_name(n: fx.Node) -> str:
    """layer1.0.conv1 for a module call; layer1.0.add for an add inside block layer1.0."""
    if n.op == "call_module":
        return sanitize(str(n.target))
    op = re.sub(r"_\d+$", "", n.name)
    stack = n.meta.get("nn_module_stack") or {}
    prefix = next(reversed(stack)) if stack else ""
    return sanitize(f"{prefix}.{op}" if prefix else op)


def _is_tensor(n: fx.Node) -> bool:
    """True when the example run gave `n` one tensor (a tuple of them does not count)."""
    return hasattr(n.meta.get("tensor_meta"), "shape")


def from_torch(module: nn.Module, example_input: Any = None, *, input_shape: Any = None,
               name: str | None = None) -> Graph:
    """Trace `module` into an ANN-form graph (docs/ir.md), parameters cloned as float32.

    `example_input` (a tensor or tuple of tensors; only the first sample is used) or
    `input_shape` (without batch, e.g. (3, 32, 32); a zoo model's ``input_shape`` is the
    default) gives the shapes. Raises ImportFailed for untraceable models (data-dependent
    control flow) or a missing shape, UnsupportedOp listing every unsupported node at once.
    """
    label = f"model {type(module).__name__}"
    gm = _trace(module, label)
    inputs = _example(module, example_input, input_shape, label)
    _run_shapes(gm, module, inputs, label)
    ctx = Ctx({n.name: tuple(n.meta["tensor_meta"].shape) for n in gm.graph.nodes
               if _is_tensor(n)})

    plans: dict[str, tuple[list, Any]] = {}
    bad: list[tuple[str, str, str]] = []
    bad_nodes: set[str] = set()
    for n in gm.graph.nodes:
        if n.op in ("placeholder", "output"):
            continue
        if "tensor_meta" not in n.meta and n.op in ("call_function", "call_method"):
            continue  # Python values (x.size(0), arithmetic on sizes) read by a view/reshape
        conv, mod = converter_for(n, gm)
        if n.op == "get_attr":
            if any(_is_tensor(u) for u in n.users):
                bad.append((_describe(n, gm), _kind(n, gm), "a parameter or buffer used directly "
                            "in forward (e.g. x + self.bias); use a supported module instead"))
                bad_nodes.add(n.name)
            continue
        if conv is None:
            if n.target is operator.getitem and any(a.name in bad_nodes
                                                    for a in n.all_input_nodes):
                bad_nodes.add(n.name)
                continue  # unpacking the output of an op already reported
            bad.append((_describe(n, gm), _kind(n, gm), "no converter"))
            bad_nodes.add(n.name)
            continue
        try:
            plans[n.name] = (conv(mod, n, ctx), mod)
        except Reject as why:
            bad.append((_describe(n, gm), _kind(n, gm), str(why)))
            bad_nodes.add(n.name)
    if bad:
        lines = problem_list(bad)
        raise UnsupportedOp(
            f"{label}: {len(bad)} node(s) cannot be imported:\n  {lines}\nsnnc imports conv2d, "
            f"linear, batchnorm, relu, relu6/hardtanh/clamp, add, cat, max/avg/adaptive-avg "
            f"pooling, flatten/view/reshape, dropout and identity (docs/ir.md). Replace these "
            f"ops (e.g. GELU/SiLU -> ReLU), or register a converter with "
            f"@fx_converter(...) in snnc.compiler.frontends.fx_ops.")
    return _build(gm, plans, ctx, sanitize(name or type(module).__name__.lower()), label)


def _build(gm: fx.GraphModule, plans: dict, ctx: Ctx, gname: str, label: str) -> Graph:
    b = GraphBuilder(gname, params={})
    alias: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            if not _is_tensor(n):
                continue
            nm = b.fresh(sanitize(n.name))
            b.add(Node(nm, "input", shape=ctx.shapes[n.name]))
            alias[n.name], shapes[nm] = nm, ctx.shapes[n.name]
        elif n.op == "output":
            outs = [a for a in fx.node.map_arg(n.args[0], lambda x: x).__iter__()] \
                if isinstance(n.args[0], (tuple, list)) else [n.args[0]]
            b.outputs = [alias[o.name] for o in outs if isinstance(o, fx.Node)]
        elif n.name in plans:
            steps, _ = plans[n.name]
            srcs = [alias[a.name] for a in tensor_args(n)]
            if not steps:
                alias[n.name] = srcs[0]
                continue
            base = _base_name(n)
            for i, (op, attrs, params) in enumerate(steps):
                nm = b.fresh(base if i == 0 else f"{base}_{op}")
                node = Node(nm, op, Attrs(attrs), (), tuple(f"{nm}.{r}" for r in params))
                shape = b.add_inferred(node, srcs, [shapes[s] for s in srcs]).shape
                for role, t in params.items():
                    b.set_param(f"{nm}.{role}", t.detach().to(torch.float32).clone())
                shapes[nm], srcs = shape, [nm]
            if shapes[srcs[0]] != ctx.shapes[n.name]:
                raise ImportFailed(f"{label}: node '{n.name}' ({steps[-1][0]}) gives shape "
                                   f"{list(shapes[srcs[0]])} in snnc but "
                                   f"{list(ctx.shapes[n.name])} in torch; this is a bug in "
                                   f"the converter of that op: please report it.")
            alias[n.name] = srcs[0]
    return b.build()
