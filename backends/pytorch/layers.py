"""Autograd functions that keep what they save for backward small.

A conv or linear layer fed by spikes (payload binary or count: values 0..255) saves its input as
uint8 instead of float32 and expands it again in backward; the result is bit-identical because
those values are small integers. `convolution_backward` then computes both gradients in one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class SpikeConv2d(torch.autograd.Function):
    """conv2d whose input is small non-negative integers, saved as uint8."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        ctx.save_for_backward(x.to(torch.uint8), weight)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        xq, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias]
        gi, gw, gb = torch.ops.aten.convolution_backward(
            grad, xq.to(weight.dtype), weight, [weight.shape[0]] if has_bias else None,
            list(stride), list(padding), list(dilation), False, [0, 0], groups, mask)
        return gi, gw, gb, None, None, None, None


class SpikeLinear(torch.autograd.Function):
    """linear whose input is small non-negative integers, saved as uint8."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x.to(torch.uint8), weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        xq, weight = ctx.saved_tensors
        gi = grad @ weight if ctx.needs_input_grad[0] else None
        g2 = grad.reshape(-1, grad.shape[-1])
        gw = g2.t() @ xq.reshape(-1, xq.shape[-1]).to(weight.dtype)
        gb = g2.sum(0) if ctx.has_bias else None
        return gi, gw, gb


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
                steps, compact=False):
        y = empty_steps(x, steps)
        n = weight.shape[1]
        mean = x.new_empty((steps, n))
        invstd = x.new_empty((steps, n))
        for t in range(steps):
            torch.ops.aten.native_batch_norm.out(
                x[t if x.shape[0] > 1 else 0], weight[t], bias[t], running_mean[t],
                running_var[t], training, momentum, eps, out=y[t], save_mean=mean[t],
                save_invstd=invstd[t])
        keep = x.to(torch.float16) if compact and x.dtype == torch.float32 else x
        ctx.save_for_backward(keep, weight, running_mean, running_var, mean, invstd)
        ctx.conf = (training, eps)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, rm, rv, mean, invstd = ctx.saved_tensors
        training, eps = ctx.conf
        steps = grad.shape[0]
        static = x.shape[0] == 1 and steps > 1
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
        return gx, gw, gb, None, None, None, None, None, None, None
