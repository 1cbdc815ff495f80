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
