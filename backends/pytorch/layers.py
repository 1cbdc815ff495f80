"""Autograd functions that keep what they save for backward small.

A conv or linear layer fed by spikes (payload binary or count: values 0..255) saves its input as
uint8 instead of float32 and expands it again in backward; the result is bit-identical because
those values are small integers. A binary input (0/1 spikes) is saved packed, eight spikes to a
byte (`pack_bits`): 1/32 of float32, and just as exact. `convolution_backward` then computes
both gradients in one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# pack_bits: eight bytes b_0..b_7 in {0, 1}, read as one little-endian int64 word w, times MAGIC
# put b_i at bit 56 + i (every other product lands below bit 56 or above bit 63, without carries)
_MAGIC = 0x0102040810204080
_UNPACK: dict[torch.device, torch.Tensor] = {}  # byte v -> int64 whose byte i is bit i of v


def pack_bits(x: torch.Tensor) -> tuple[torch.Tensor, tuple, tuple[int, ...]]:
    """(packed uint8 [ceil(n / 8)], the shape in memory order, the permutation) for a tensor of
    0/1 values, in its memory order (a channels-last tensor stays channels-last when unpacked)."""
    perm = tuple(sorted(range(x.dim()), key=lambda d: -x.stride(d)))
    xp = x.permute(perm)
    if not xp.is_contiguous():
        perm, xp = tuple(range(x.dim())), x.contiguous()
    flat = xp.reshape(-1) != 0
    pad = -flat.numel() % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    words = flat.view(torch.uint8).view(torch.int64)
    return words.mul_(_MAGIC).bitwise_right_shift_(56).to(torch.uint8), tuple(xp.shape), perm


def unpack_bits(packed: torch.Tensor, shape: tuple, perm: tuple[int, ...],
                dtype: torch.dtype) -> torch.Tensor:
    """The tensor `pack_bits` packed, as `dtype`, in its original shape and memory order."""
    lut = _UNPACK.get(packed.device)
    if lut is None:
        v = torch.arange(256, dtype=torch.int64)
        lut = sum(((v >> i) & 1) << (8 * i) for i in range(8)).to(packed.device)
        _UNPACK[packed.device] = lut
    n = 1
    for d in shape:
        n *= d
    bits = torch.index_select(lut, 0, packed.int()).view(torch.uint8)[:n].view(shape)
    inv = [perm.index(d) for d in range(len(perm))]
    return bits.permute(inv).to(dtype)


def _save(ctx, x: torch.Tensor, weight: torch.Tensor, binary: bool) -> None:
    """Save a spike input compactly: bit-packed (binary) or as uint8 (count)."""
    if binary:
        packed, ctx.shape, ctx.perm = pack_bits(x)
        ctx.save_for_backward(packed, weight)
    else:
        ctx.shape = None
        ctx.save_for_backward(x.to(torch.uint8), weight)


def _load(ctx, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    xq, weight = ctx.saved_tensors
    if ctx.shape is not None:
        return unpack_bits(xq, ctx.shape, ctx.perm, dtype), weight
    return xq.to(dtype), weight


class SpikeConv2d(torch.autograd.Function):
    """conv2d whose input is small non-negative integers (`binary`: 0/1), saved compactly."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, binary=False):
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        _save(ctx, x, weight, binary)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = _load(ctx, grad.dtype)
        stride, padding, dilation, groups, has_bias = ctx.conf
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias]
        gi, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if has_bias else None,
            list(stride), list(padding), list(dilation), False, [0, 0], groups, mask)
        return gi, gw, gb, None, None, None, None, None


class SpikeLinear(torch.autograd.Function):
    """linear whose input is small non-negative integers (`binary`: 0/1), saved compactly."""

    @staticmethod
    def forward(ctx, x, weight, bias, binary=False):
        ctx.has_bias = bias is not None
        _save(ctx, x, weight, binary)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = _load(ctx, grad.dtype)
        gi = grad @ weight if ctx.needs_input_grad[0] else None
        g2 = grad.reshape(-1, grad.shape[-1])
        gw = g2.t() @ x.reshape(-1, x.shape[-1])
        gb = g2.sum(0) if ctx.has_bias else None
        return gi, gw, gb, None


def empty_steps(x: torch.Tensor, steps: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised [steps, *x.shape[1:]] tensor laid out like one step of time-major `x`:
    channels-last steps (what the module runs convs in, docs/pytorch-backend.md "Execution")
    stay channels-last, anything else is contiguous."""
    dtype = dtype or x.dtype
    one = x[0]
    if one.dim() == 4 and not one.is_contiguous() and one.is_contiguous(
            memory_format=torch.channels_last):
        return torch.empty((steps * one.shape[0], *one.shape[1:]), dtype=dtype, device=x.device,
                           memory_format=torch.channels_last).view(steps, *one.shape)
    return torch.empty((steps, *one.shape), dtype=dtype, device=x.device)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Time-major images [T', B, C, H, W] with every step channels-last (one copy, or none)."""
    if x.dim() != 5:
        return x
    flat = x.reshape(-1, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
    return flat.view(x.shape)


def _is_cl(x: torch.Tensor) -> bool:
    return x.dim() == 5 and x.shape[0] > 0 and not x[0].is_contiguous() and \
        x[0].is_contiguous(memory_format=torch.channels_last)


def like_steps(grad: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`grad` with each step channels-last where `ref`'s steps are (one copy), else as it is.

    A gradient that reaches a layer contiguous while its saved input is channels-last (the
    global pool's backward returns a contiguous gradient, and the S2S adds pass it up the
    residual chain) sends native batch norm backward and every elementwise op after it to
    their slow mixed-layout paths (docs/pytorch-backend.md "Execution")."""
    if _is_cl(ref) and not _is_cl(grad) and grad.dim() == 5:
        return channels_last(grad)
    return grad


def donatable(x: torch.Tensor, steps: int) -> torch.Tensor | None:
    """The tensor to write in place of time-major `x` [T, B, ...] when x's last reader may
    reuse its memory (the caller knows it is; docs/pytorch-backend.md "Memory"): x itself when
    it is not a view, else the folded [T * B, ...] tensor x views (what `_fold` returns), so
    that autograd sees a plain in-place write and adds no view bookkeeping. None when x has
    other steps than `steps`, views anything else (or a tensor autograd does not connect to
    x), or is a leaf that autograd needs."""
    if x.shape[0] != steps or x.dim() < 3:
        return None
    base = x._base
    if base is None:
        return None if x.is_leaf and x.requires_grad else x
    if (base.dim() != x.dim() - 1 or base.shape[0] != x.shape[0] * x.shape[1]
            or base.shape[1:] != x.shape[2:] or base.data_ptr() != x.data_ptr()
            or base.stride()[1:] != x.stride()[2:] or (base.is_leaf and base.requires_grad)
            or base.requires_grad != x.requires_grad):  # an autograd Function's output that
        return None                                     # views a buffer made inside it
    return base


class BNTTFn(torch.autograd.Function):
    """BNTT (paper 2 sec. 3.2.2) over time-major x [T' or T, B, C, ...]: step t normalised with
    its own statistics and affine (row t of weight, bias, running_mean, running_var [T, C]).

    One autograd node writes all T steps into one output and, in backward, all T input
    gradients into one tensor: each step is one native batch-norm kernel on its contiguous
    slice, so nothing is stacked, transposed or copied (a [B, T*C, H, W] view of time-major
    data does not exist; building it costs two transposing copies each way). With `compact`
    the input is saved for backward as float16 (half the memory; the gradients then see x
    rounded to float16, like the lif's membrane: docs/pytorch-backend.md "Memory")."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps,
                steps, compact=False, inplace=None):
        folded = x
        if inplace is not None:  # x (`donatable`'s tensor) is written in place; autograd is
            x = x.view(inplace)  # told (mark_dirty); `inplace` is its time-major shape
        keep = x.to(torch.float16) if compact and x.dtype == torch.float32 else x
        if inplace is not None and keep is x:
            keep = x.clone()
        y = x if inplace is not None else empty_steps(x, steps)
        n = weight.shape[1]
        mean = x.new_empty((steps, n))
        invstd = x.new_empty((steps, n))
        for t in range(steps):
            torch.ops.aten.native_batch_norm.out(
                x[t if x.shape[0] > 1 else 0], weight[t], bias[t], running_mean[t],
                running_var[t], training, momentum, eps, out=y[t], save_mean=mean[t],
                save_invstd=invstd[t])
        ctx.save_for_backward(keep, weight, running_mean, running_var, mean, invstd)
        ctx.conf = (training, eps)
        ctx.folded = inplace is not None
        if inplace is not None:
            ctx.mark_dirty(folded)
            return folded
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, rm, rv, mean, invstd = ctx.saved_tensors
        training, eps = ctx.conf
        if ctx.folded:  # the gradient of the folded [T * B, ...] tensor, as time-major
            grad = grad.reshape(x.shape)
        gx, gw, gb = BNTTFn._backward(ctx, grad, x, weight, rm, rv, mean, invstd, training, eps)
        if ctx.folded and gx is not None:
            gx = gx.reshape(-1, *gx.shape[2:])
        return gx, gw, gb, None, None, None, None, None, None, None, None

    @staticmethod
    def _backward(ctx, grad, x, weight, rm, rv, mean, invstd, training, eps):
        """(input, weight, bias) gradients for time-major `grad`."""
        grad = like_steps(grad, x)
        steps = grad.shape[0]
        static = x.shape[0] == 1 and steps > 1
        if steps == 1 and training and grad.dim() > 2 and _rows(grad[0]) < grad.shape[1]:
            return _shared_backward(grad, x, weight, mean, invstd, eps,
                                    ctx.needs_input_grad[0])
        gx = torch.empty_like(grad) if ctx.needs_input_grad[0] else None
        gw, gb = torch.zeros_like(weight), torch.zeros_like(weight)
        mask = [gx is not None, True, True]
        for t in range(steps):
            xt = x[0 if static else t].to(grad.dtype)
            args = (grad[t], xt, weight[t], rm[t], rv[t], mean[t], invstd[t], training, eps,
                    mask)
            if gx is None:
                _, gw[t], gb[t] = torch.ops.aten.native_batch_norm_backward(*args)
            else:
                torch.ops.aten.native_batch_norm_backward.out(*args, out0=gx[t], out1=gw[t],
                                                              out2=gb[t])
        if gx is not None and static:
            gx = gx.sum(0, keepdim=True)
        return gx, gw, gb


CHUNK_BYTES = 2 << 20  # float32 bytes per slice of the shared BN's backward (fits in L3 cache)


def _rows(x: torch.Tensor) -> int:
    """Samples per slice of [N, C, ...] `x` in `_shared_backward`: CHUNK_BYTES of float32."""
    return max(1, CHUNK_BYTES // max(1, 4 * x[0].numel()))


def _shared_backward(grad, x, weight, mean, invstd, eps, need_gx):
    """Training-mode backward of one BN over all N = T' * B samples ([1, N, C, ...]), in slices
    of `_rows` samples so that each slice's input, gradient and output stay in cache (one
    native kernel over all N reads 16 MiB tensors twice from memory: measured 2x slower per
    element than T kernels over B samples, which is what BNTT runs).

    Pass 1 sums per channel, slice by slice: gb = sum(dy), gw = invstd sum(dy (x - mean))
    (native_batch_norm_backward's own reduction, with the statistics of the whole batch).
    Pass 2: dx = k dy + a x + c with k = w invstd, a = -k invstd gw / M and
    c = -k gb / M - a mean, M = N * H * W: the training-mode formula of the native kernel,
    dx = k (dy - gb / M - (x - mean) invstd gw / M). Equal to one native call up to float
    summation order (tests/backends/test_pytorch_bn.py)."""
    g, xs = grad[0], x[0]
    rows = _rows(g)
    n = weight.shape[1]
    w, mu, inv = weight[0], mean[0], invstd[0]
    gw = torch.zeros_like(w)
    gb = torch.zeros_like(w)
    for s in range(0, g.shape[0], rows):
        _, gw_s, gb_s = torch.ops.aten.native_batch_norm_backward(
            g[s:s + rows], xs[s:s + rows].to(g.dtype), w, None, None, mu, inv, True, eps,
            [False, True, True])
        gw += gw_s
        gb += gb_s
    gx = None
    if need_gx:
        count = g.numel() // n
        k = w * inv
        a = -k * inv * gw / count
        c = -k * gb / count - a * mu
        shape = (1, n) + (1,) * (g.dim() - 2)
        k, a, c = k.view(shape), a.view(shape), c.view(shape)
        gx = torch.empty_like(grad)
        for s in range(0, g.shape[0], rows):
            out = gx[0, s:s + rows]
            torch.addcmul(c, xs[s:s + rows].to(g.dtype), a, out=out)
            out.addcmul_(g[s:s + rows], k)
    return gx, gw.view(1, n), gb.view(1, n)
