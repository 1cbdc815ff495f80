"""One emitter per IR op: `@emitter("conv2d")` turns a node into a small nn.Module.

Every module's `forward(ins)` takes its inputs in port order as *time-major* tensors
`[T', B, ...]`, where T' is T (one value per step) or 1 (the same value at every step: a direct
encoded image and everything computed from it before the first neuron). Stateless per-step ops
fold time into the batch (`[T' * B, ...]`: a conv over T*B at once), so time-invariant work is
done once. The lif, readout and encoder are built in `module.py`, which owns the time axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from snnc.backends.pytorch.layers import BNTTFn, SpikeConv2d, SpikeLinear, donatable
from snnc.backends.pytorch.neuron import BIAS_GRID, WEIGHT_GRID, quantize_weight
from snnc.backends.relay import exact_loihi2
from snnc.compiler.core.errors import UnsupportedOp
from snnc.compiler.core.ir import Graph, Node, Payload
from snnc.compiler.core.shapes import pad4, pair


@dataclass(frozen=True)
class EmitContext:
    """What an emitter may read: the graph, input payloads, T, and options."""

    graph: Graph
    in_payloads: tuple[Payload, ...]
    timesteps: int
    quantize: bool  # 8-bit weights with Lava-dl's scaling (target-exact loihi2)
    compact: bool  # save binary/count inputs as uint8 for backward


EMITTERS: dict[str, Callable[[Node, EmitContext], nn.Module]] = {}


def emitter(*ops: str):
    """Decorator: register a builder `fn(node, ctx) -> nn.Module` for `ops`."""

    def deco(fn):
        for op in ops:
            EMITTERS[op] = fn
        return fn

    return deco


def emit(node: Node, ctx: EmitContext) -> nn.Module:
    """The module for `node`, or UnsupportedOp naming the node and op."""
    fn = EMITTERS.get(node.op)
    if fn is None:
        raise UnsupportedOp(
            f"graph '{ctx.graph.name}', node '{node.name}': the PyTorch backend has no emitter "
            f"for op '{node.op}'. Run the conversion pipeline first, or register one with "
            f"snnc.backends.pytorch.ops.emitter('{node.op}').")
    return fn(node, ctx)


def _param(ctx: EmitContext, node: Node, role: str, shape) -> torch.Tensor | None:
    key = node.param(role)
    if key is None:
        return None
    value = ctx.graph.param(key)
    if value is None:  # structure only: initialise like torch would
        value = torch.zeros(shape)
        if role == "weight" and len(shape) > 1:
            nn.init.kaiming_uniform_(value, a=5 ** 0.5)
        elif role in ("weight", "running_var"):
            value.fill_(1.0)
    return value.detach().clone().float()


def _fold(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-step function over [T', B, ...] by folding time into the batch."""
    y = fn(x.reshape(-1, *x.shape[2:]))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


class Weighted(nn.Module):
    """conv2d or linear; compact backward when the input is spikes (binary or count)."""

    def __init__(self, node: Node, ctx: EmitContext, conv: bool):
        super().__init__()
        a = node.attrs
        self.conv = conv
        if conv:
            k = pair(a["k"])
            groups = a.get("groups", 1)
            wshape = (a["out"], a["in"] // groups, *k)
            top, left, bottom, right = pad4(a.get("pad", 0))
            self.sym = top == bottom and left == right
            self.pad = (top, left) if self.sym else (0, 0)
            self.fpad = (left, right, top, bottom)
            self.stride, self.dil = pair(a.get("stride", 1)), pair(a.get("dilation", 1))
            self.groups = groups
        else:
            wshape = (a["out"], a["in"])
        self.weight = nn.Parameter(_param(ctx, node, "weight", wshape))
        b = _param(ctx, node, "bias", (a["out"],))
        self.bias = nn.Parameter(b) if b is not None else None
        self.quantize = ctx.quantize
        rng = a.get("weight_range")
        self.grid = (a["weight_step"], *rng) if "weight_step" in a and rng else WEIGHT_GRID
        bs = a.get("bias_step")  # quantize's per-layer bias exponent (13-bit mantissa)
        self.bias_grid = (bs, -(2 ** 12) * bs, (2 ** 12 - 1) * bs) if bs else BIAS_GRID
        self.spiking = ctx.compact and bool(ctx.in_payloads) and ctx.in_payloads[0] in (
            Payload.BINARY, Payload.COUNT)
        self.binary = self.spiking and ctx.in_payloads[0] is Payload.BINARY  # saved bit-packed
        self._bn: tuple = ()  # the BatchNorm trained folded into this layer (fold_bn)

    def fold_bn(self, bn: "BatchNorm") -> None:
        """Train batchnorm `bn` folded into this layer, QAT-style (Jacob et al. 2018 sec. 3.2,
        Krishnamoorthi 2018 sec. 3.2; docs/lava.md "Deployable default"): in training the
        batch statistics of the float layer output give s = g / sqrt(var_B + eps), and the
        layer runs with the quantised folded weight q(W s) and bias q((b - mu_B) s + beta), so
        the rounding of the folded weights is seen while training; in eval the running
        statistics give the same fold in float64, exactly what the Lava lowering writes
        (lowering._Lowering.weighted). `bn` keeps the parameters and statistics and passes
        its input through."""
        self._bn = (bn,)
        bn.folded = True

    def _folded(self, x: torch.Tensor):
        bn = self._bn[0]
        w, b = self.weight, self.bias
        if self.training:
            y = self._run(x, w, b)  # the float layer output: its batch statistics
            dims = [0] + list(range(2, y.dim()))
            mu, var = y.mean(dims), y.var(dims, unbiased=False)
            with torch.no_grad():  # running statistics as torch's batch_norm keeps them
                n = y.numel() // y.shape[1]
                m = bn.momentum
                bn.running_mean.mul_(1 - m).add_(m * mu.detach())
                bn.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
            s = bn.weight / torch.sqrt(var + bn.eps)
            shift = bn.bias - mu * s
        else:  # float64, in the lowering's order of operations
            s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = bn.bias.double() - bn.running_mean.double() * s
            w, b = w.double(), None if b is None else b.double()
        wf = w * s.view(-1, *([1] * (w.dim() - 1)))
        bf = shift if b is None else b * s + shift
        if self.quantize:
            wf, bf = quantize_weight(wf, *self.grid), quantize_weight(bf, *BIAS_GRID)
        return self._run(x, wf.float(), bf.float())

    def _wb(self):
        if not self.quantize:
            return self.weight, self.bias
        b = None if self.bias is None else quantize_weight(self.bias, *self.bias_grid)
        return quantize_weight(self.weight, *self.grid), b

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self._bn:
            return self._folded(x)
        return self._run(x, *self._wb())

    def _run(self, x: torch.Tensor, w, b) -> torch.Tensor:
        spiking = self.spiking and torch.is_grad_enabled()
        if not self.conv:
            return SpikeLinear.apply(x, w, b, self.binary) if spiking else F.linear(x, w, b)
        if not self.sym:
            x = F.pad(x, self.fpad)
        if spiking:
            return SpikeConv2d.apply(x, w, b, self.stride, self.pad, self.dil, self.groups,
                                     self.binary)
        return F.conv2d(x, w, b, self.stride, self.pad, self.dil, self.groups)

    def forward(self, ins):
        return _fold(self.step, ins[0])


@emitter("conv2d")
def _conv(node, ctx):
    return Weighted(node, ctx, conv=True)


@emitter("linear")
def _linear(node, ctx):
    return Weighted(node, ctx, conv=False)


class BatchNorm(nn.Module):
    """batchnorm; in training its statistics cover all T' * B samples of the batch."""

    def __init__(self, node: Node, ctx: EmitContext):
        super().__init__()
        c = node.shape[1]
        self.eps = node.attrs.get("eps", 1e-5)
        self.momentum = node.attrs.get("momentum", 0.1)
        self.weight = nn.Parameter(_param(ctx, node, "weight", (c,)))
        self.bias = nn.Parameter(_param(ctx, node, "bias", (c,)))
        self.register_buffer("running_mean", _param(ctx, node, "running_mean", (c,)))
        self.register_buffer("running_var", _param(ctx, node, "running_var", (c,)))
        self.compact = ctx.compact  # save the input as float16 for backward
        # target-exact loihi2: an unfolded BN reads a relay and becomes a 1x1 synapse with an
        # 8-bit per-channel weight and a bias on the 1/64 grid (docs/lava.md "Relays")
        self.exact = ctx.quantize and exact_loihi2(ctx.graph)
        self.folded = False  # trained folded into the layer before it (Weighted.fold_bn)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode (scale, shift), on Loihi's weight and bias grids when exact (computed
        in float64, as the Lava lowering does)."""
        var = self.running_var.double() + self.eps
        scale = self.weight.double() / torch.sqrt(var)
        shift = self.bias.double() - self.running_mean.double() * scale
        if self.exact:
            scale, shift = quantize_weight(scale, *WEIGHT_GRID), quantize_weight(shift, *BIAS_GRID)
        return scale.float(), shift.float()

    def forward(self, ins, donate: bool = False):
        """`donate`: as BNTT's (the module's plan says nothing else reads the conv output)."""
        if self.folded:
            return ins[0]
        if self.exact and not self.training:
            scale, shift = self.affine()
            shape = (1, 1, -1) + (1,) * (ins[0].dim() - 3)
            return ins[0] * scale.view(shape) + shift.view(shape)
        x = ins[0]
        if self.compact and torch.is_grad_enabled():  # one BN over the T' * B fold, x saved
            c = self.weight.shape[0]                   # as float16 for backward (BNTTFn)
            base = donatable(x, x.shape[0]) if donate else None
            fold = (1, x.shape[0] * x.shape[1], *x.shape[2:])
            y = BNTTFn.apply(x.reshape(fold) if base is None else base,
                             self.weight.view(1, c), self.bias.view(1, c),
                             self.running_mean.view(1, c), self.running_var.view(1, c),
                             self.training, self.momentum, self.eps, 1, True,
                             None if base is None else fold)
            return y.view(x.shape)
        return _fold(lambda v: F.batch_norm(v, self.running_mean, self.running_var, self.weight,
                                            self.bias, self.training, self.momentum, self.eps),
                     x)


class BNTT(nn.Module):
    """Batch norm through time (paper 2 sec. 3.2.2): statistics and affine of step t."""

    def __init__(self, node: Node, ctx: EmitContext):
        super().__init__()
        t, c = node.attrs.get("timesteps", ctx.timesteps), node.shape[1]
        self.eps = node.attrs.get("eps", 1e-5)
        self.momentum = node.attrs.get("momentum", 0.1)
        self.weight = nn.Parameter(_param(ctx, node, "weight", (t, c)))
        self.bias = nn.Parameter(_param(ctx, node, "bias", (t, c)))
        self.register_buffer("running_mean", _param(ctx, node, "running_mean", (t, c)))
        self.register_buffer("running_var", _param(ctx, node, "running_var", (t, c)))
        self.compact = ctx.compact  # save the input as float16 for backward

    def forward(self, ins, steps: int, donate: bool = False):
        """`donate`: the input is a fresh conv/linear output nothing else reads (the module's
        plan says so): it is normalised in place, on the folded tensor it is a view of."""
        x = ins[0]
        if steps > self.weight.shape[0]:
            raise UnsupportedOp(f"bntt has statistics for {self.weight.shape[0]} steps; the "
                                f"module runs {steps}. Recompile with --timesteps {steps}.")
        base = donatable(x, steps) if donate else None
        if base is not None:
            y = BNTTFn.apply(base, self.weight, self.bias, self.running_mean, self.running_var,
                             self.training, self.momentum, self.eps, steps, self.compact,
                             tuple(x.shape))
            return y.view(x.shape)
        return BNTTFn.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps, steps, self.compact)


@emitter("batchnorm")
def _bn(node, ctx):
    return BatchNorm(node, ctx)


@emitter("bntt")
def _bntt(node, ctx):
    return BNTT(node, ctx)


class Lambda(nn.Module):
    """A parameter-free op given as a function of its input list."""

    def __init__(self, fn, name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, ins):
        return self.fn(ins)

    def extra_repr(self) -> str:
        return self.name


def _pool(node: Node, kind: str):
    a = node.attrs
    k, s = pair(a["k"]), pair(a.get("stride", a["k"]))
    top, left, bottom, right = pad4(a.get("pad", 0))
    ceil = a.get("ceil", False)

    def f(x):
        if (top, left) != (bottom, right):
            x = F.pad(x, (left, right, top, bottom), value=-float("inf") if kind == "max" else 0)
            pad = (0, 0)
        else:
            pad = (top, left)
        if kind == "max":
            return F.max_pool2d(x, k, s, pad, pair(a.get("dilation", 1)), ceil)
        return F.avg_pool2d(x, k, s, pad, ceil, a.get("count_include_pad", True))

    return Lambda(lambda ins: _fold(f, ins[0]), f"{kind}pool k={k} s={s}")


@emitter("maxpool")
def _maxpool(node, ctx):
    return _pool(node, "max")


@emitter("avgpool")
def _avgpool(node, ctx):
    return _pool(node, "avg")


@emitter("adaptive_avgpool")
def _adaptive(node, ctx):
    out = pair(node.attrs.get("out", 1))
    return Lambda(lambda ins: _fold(lambda x: F.adaptive_avg_pool2d(x, out), ins[0]),
                  f"adaptive_avgpool {out}")


@emitter("flatten")
def _flatten(node, ctx):
    start = node.attrs.get("start", 1)
    return Lambda(lambda ins: ins[0].flatten(start + 1), "flatten")


@emitter("reshape")
def _reshape(node, ctx):
    shape = tuple(node.attrs["shape"])[1:]
    return Lambda(lambda ins: ins[0].reshape(ins[0].shape[0], ins[0].shape[1], *shape), "reshape")


@emitter("relu")
def _relu(node, ctx):
    return Lambda(lambda ins: F.relu(ins[0]), "relu")


@emitter("clip")
def _clip(node, ctx):
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return Lambda(lambda ins: ins[0].clamp(lo, hi), f"clip {lo} {hi}")


@emitter("identity", "dropout")
def _identity(node, ctx):
    return Lambda(lambda ins: ins[0], node.op)


def _common_time(ins):
    steps = max(x.shape[0] for x in ins)
    return [x.expand(steps, *x.shape[1:]) if x.shape[0] != steps else x for x in ins]


@emitter("add")
def _add(node, ctx):
    def f(ins):
        out = ins[0]
        for x in ins[1:]:
            out = out + x
        return out

    return Lambda(f, "add")


@emitter("concat")
def _concat(node, ctx):
    axis = node.attrs.get("axis", 1)
    return Lambda(lambda ins: torch.cat(_common_time(ins), axis + 1), f"concat axis={axis}")


@emitter("vote")
def _vote(node, ctx):
    k = node.attrs["k"]
    return Lambda(lambda ins: ins[0].reshape(*ins[0].shape[:-1], -1, k).mean(-1), f"vote k={k}")
