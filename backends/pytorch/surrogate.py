"""Surrogate gradients of the spike function o = H(u - theta) (docs/ir.md "LIF").

Each surrogate is a function `(u, theta, alpha, width) -> d o / d u`, registered by name with
:func:`register_surrogate`:

* ``triangle`` (paper 2 eq. 24): ``alpha * max(0, 1 - |u - theta| / width)``, alpha 0.3, width 1;
* ``fast_sigmoid``: ``alpha / (1 + |u - theta| / width)^2``;
* ``arctan``: ``alpha / (1 + (pi (u - theta) / width)^2)``.

:class:`SpikeFn` is the single-step spike function with that gradient; the multi-step kernel in
`neuron.py` evaluates the same registered function in its own backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from snnc.compiler.core.errors import SnncError

SurrogateFn = Callable[[torch.Tensor, float, float, float], torch.Tensor]
SURROGATES: dict[str, SurrogateFn] = {}


def register_surrogate(name: str) -> Callable[[SurrogateFn], SurrogateFn]:
    """Decorator: register `fn(u, theta, alpha, width) -> do/du` under `name`."""

    def deco(fn: SurrogateFn) -> SurrogateFn:
        SURROGATES[name] = fn
        return fn

    return deco


def get_surrogate(name: str, node: str = "?") -> SurrogateFn:
    """The registered surrogate `name`; an unknown name is a user error naming the node."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise SnncError(
            f"lif node '{node}': unknown surrogate '{name}'. Use one of "
            f"{', '.join(sorted(SURROGATES))}, or register your own with "
            f"snnc.backends.pytorch.surrogate.register_surrogate.") from None


@register_surrogate("triangle")
def triangle(u: torch.Tensor, theta: float, alpha: float, width: float) -> torch.Tensor:
    """Paper 2 eq. 24, centred at the threshold: alpha * max(0, 1 - |u - theta| / width)."""
    # one new tensor, the rest in place (-a + 1 rounds as 1 - a: the same float)
    return (u - theta).abs_().div_(width).neg_().add_(1.0).clamp_(min=0.0).mul_(alpha)


@register_surrogate("fast_sigmoid")
def fast_sigmoid(u: torch.Tensor, theta: float, alpha: float, width: float) -> torch.Tensor:
    """alpha / (1 + |u - theta| / width)^2 (Zenke & Ganguli's SuperSpike shape)."""
    # one new tensor, the rest in place; alpha / d is torch's reciprocal(d) * alpha
    return (u - theta).abs_().div_(width).add_(1.0).square_().reciprocal_().mul_(alpha)


@register_surrogate("arctan")
def arctan(u: torch.Tensor, theta: float, alpha: float, width: float) -> torch.Tensor:
    """alpha / (1 + (pi (u - theta) / width)^2), the derivative shape of an arctan step."""
    # one new tensor, the rest in place; alpha / d is torch's reciprocal(d) * alpha
    return (u - theta).mul_(math.pi / width).square_().add_(1.0).reciprocal_().mul_(alpha)


class SpikeFn(torch.autograd.Function):
    """o = 1[u >= theta] (or 1[u > theta] with `gt`), backward = surrogate(u)."""

    @staticmethod
    def forward(ctx, u, theta: float, gt: bool, name: str, alpha: float, width: float):
        ctx.save_for_backward(u)
        ctx.args = (theta, name, alpha, width)
        return (u > theta if gt else u >= theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        theta, name, alpha, width = ctx.args
        return grad * SURROGATES[name](u, theta, alpha, width), None, None, None, None, None


def spike(u: torch.Tensor, theta: float = 1.0, *, gt: bool = False, surrogate: str = "triangle",
          alpha: float = 0.3, width: float = 1.0) -> torch.Tensor:
    """Single-step spike function with a surrogate gradient (see the module docstring)."""
    return SpikeFn.apply(u, float(theta), bool(gt), surrogate, float(alpha), float(width))
