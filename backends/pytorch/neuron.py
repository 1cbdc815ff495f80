"""The multi-step LIF kernel: all T steps of a layer in one autograd node.

Paper semantics (paper 2 eq. 3-6; docs/ir.md "LIF"), x_t the neuron's total input:

    u_t = x_t + lam * (u_{t-1} - theta * o_{t-1})       reset = subtract
    u_t = x_t + lam * u_{t-1} * (1 - o_{t-1})           reset = zero
    o_t = 1[u_t >= theta]  (fire = ge)    or   1[u_t > theta]  (fire = gt)
    u_{-1} = v_init * theta,  o_{-1} = 0

(v_init = 1/2: the initial membrane potential of Bu et al. 2022, ICLR, "Optimal ANN-SNN
conversion for high-accuracy and ultra-low-latency spiking neural networks", Theorem 2: with
u_{-1} = theta / 2 the expected error of the rate as an estimate of the clipped, floored ANN
activation is zero, and on a constant input the rate is within 1 / (2T) of x / theta.)

Target-exact Loihi 2 semantics (`fixed=True`, docs/pytorch-backend.md "Target-exact"), the
arithmetic of Lava's bit-accurate LIF (PyLifModelBitAcc) with iDecay = 4096, in units of 1/4096:

    v_t = trunc((v_{t-1} * (4096 - vDecay)) / 4096) + trunc(4096 * x_t),  clipped to +-(2^23 - 1)
    o_t = 1[v_t > vThMant * 64],   v_t <- 0 where o_t = 1
    vDecay = round(4096 * (1 - lam)),   vThMant = int(64 * theta)
    v_{-1} = trunc(v_init * vThMant * 64)

Backward is BPTT through the same recursion (the quantisers pass gradients straight through),
with d o / d u given by the registered surrogate. The forward saves only the membrane (in
`save_dtype`: float32 for exact gradients, float16 to halve the memory) and, for reset to zero,
the spikes as bool; the input and the float spikes are not kept. With `surrogate_u8` (the
module's compact mode), where backward needs the surrogate and not the membrane itself (reset
to subtract, or a detached reset), the forward evaluates the surrogate and saves it in 8 bits,
round(255 s / alpha) (every registered surrogate lies in [0, alpha]): one byte per neuron and
step instead of two, within alpha / 510 of the float value (docs/pytorch-backend.md "Memory").

Plain torch operations on whatever device the input lives on (CPU or CUDA), in one autograd
node per layer; torch.compile traces it. A fused C kernel was measured against this path and
removed (docs/pytorch-backend.md "Execution: multi-step").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snnc.backends.pytorch.layers import donatable, empty_steps, like_steps
from snnc.backends.pytorch.surrogate import SURROGATES

V_LIMIT = (1 << 23) - 1  # Loihi's 24-bit membrane saturates at +-(2^23 - 1)


@dataclass(frozen=True)
class LIFConfig:
    """Everything the kernel needs to know about one lif node."""

    leak: float = 0.874
    vth: float = 1.0
    reset: str = "subtract"  # subtract | zero
    fire: str = "ge"  # ge | gt
    surrogate: str = "triangle"
    alpha: float = 0.3
    width: float = 1.0
    detach_reset: bool = False
    fixed: bool = False  # Loihi 2 fixed-point arithmetic (implies reset zero, fire gt)
    save_dtype: torch.dtype = torch.float32
    surrogate_u8: bool = False  # save the surrogate as uint8 where the membrane is not needed
    decay_k: int | None = None  # set by the quantize pass (lif attr decay_k)
    vth_mantissa: int | None = None  # set by the quantize pass (lif attr vth_mant)
    v_init: float = 0.0  # initial membrane u_{-1} as a fraction of the threshold (lif v_init)

    @property
    def v_decay(self) -> int:
        """Lava's vDecay: the lif's decay_k, else round(4096 (1 - lam)) as slayer computes it
        (float32, half-even)."""
        if self.decay_k is not None:
            return int(self.decay_k)
        return int(torch.round(torch.tensor([4096.0 * (1.0 - self.leak)])).item())

    @property
    def vth_mant(self) -> int:
        """Lava's vThMant: the lif's vth_mant, else int(64 * theta) (truncation)."""
        return int(self.vth_mantissa) if self.vth_mantissa is not None else int(self.vth * 64)

    def effective(self) -> tuple[float, float, bool, bool]:
        """(lam, theta, reset_zero, fire_gt) as the backward pass and the docs use them."""
        if self.fixed:
            return 1.0 - self.v_decay / 4096.0, self.vth_mant / 64.0, True, True
        return self.leak, self.vth, self.reset == "zero", self.fire == "gt"

    def saves_surrogate(self) -> bool:
        """Whether backward reads only the surrogate (saved as uint8), not the membrane: the
        reset-to-zero gradient (unless detached) multiplies by u itself."""
        return self.surrogate_u8 and not self.fixed and (self.reset != "zero"
                                                         or self.detach_reset)


def _save_surrogate(u: torch.Tensor, cfg: LIFConfig, out: torch.Tensor) -> None:
    """out (uint8) <- round(255 * surrogate(u) / alpha)."""
    _, theta, _, _ = cfg.effective()
    s = SURROGATES[cfg.surrogate](u, theta, cfg.alpha, cfg.width)
    # truncation = rounding; through int32, as float -> uint8 runs torch's slow path (2x)
    out.copy_(s.mul_(255.0 / cfg.alpha).add_(0.5).clamp_(0.0, 255.0).to(torch.int32))


def _forward_float(x, steps, cfg: LIFConfig, out, mem, spk):
    """The float recursion, in place on one state tensor: per step (u - theta o) * lam + x_t
    (subtract) or (u - u o) * lam + x_t (zero: u o is u where o = 1, so u - u o is +0 there and
    u elsewhere, as masking u to 0 where o gives, up to the sign of a zero, for finite u),
    which equals x_t + lam (...) bit for bit (one rounding per operation, addition commutes).
    Spikes are compared straight into the float output and kept as bool only where backward
    needs them (`spk`, reset to zero): torch's CPU kernels that write or read bool (a comparison
    into bool, bool -> float, masked_fill) run 4-20x slower than their float forms (measured,
    docs/pytorch-backend.md "Execution"). `mem` (uint8 when the config saves the surrogate)
    receives what backward reads at each step."""
    lam, theta, zero, gt = cfg.effective()
    static = x.shape[0] == 1
    fire = torch.gt if gt else torch.ge
    u = x[0].clone()
    if cfg.v_init:
        u.add_(lam * cfg.v_init * theta)
    for t in range(steps):
        if t:
            if zero:
                u.addcmul_(u, out[t - 1], value=-1.0)
            else:
                u.sub_(out[t - 1], alpha=theta)  # theta * o is exact (o in {0, 1})
            u.mul_(lam).add_(x[0 if static else t])
        fire(u, theta, out=out[t])
        if spk is not None:
            spk[t].copy_(out[t])
        if mem.dtype == torch.uint8:
            _save_surrogate(u, cfg, mem[t])
        else:
            mem[t].copy_(u)


def _forward_fixed(x, steps, cfg: LIFConfig, out, mem, spk):
    keep = 4096 - cfg.v_decay
    th = cfg.vth_mant << 6
    v = torch.full(x.shape[1:], int(cfg.v_init * cfg.vth_mant * 64), dtype=torch.int64,
                   device=x.device)
    for t in range(steps):
        xt = x[t if x.shape[0] > 1 else 0]
        v = torch.div(v * keep, 4096, rounding_mode="trunc") + (4096 * xt).to(torch.int64)
        v.clamp_(-V_LIMIT, V_LIMIT)
        o = v > th
        mem[t] = v.to(torch.float32) / 4096.0
        spk[t] = o
        out[t] = o.to(x.dtype)
        v = v.masked_fill(o, 0)


def _backward(grad, mem, spk, cfg: LIFConfig, static: bool):
    """BPTT through the recursion, one step at a time from the last. With s_t the surrogate at
    u_t, g_t = dL/dx_t and n = g_{t+1}:

        g_t = s_t (grad_t - lam theta n) + lam n                 subtract
        g_t = s_t (grad_t - lam u_t n) + lam (1 - o_t) n        zero
        (the reset term dropped with detach_reset: g_t = s_t grad_t + lam [1 - o_t] n)

    `mem` holds u_t, or (uint8) the saved surrogate 255 s_t / alpha."""
    lam, theta, zero, _ = cfg.effective()
    sur = SURROGATES[cfg.surrogate]
    gx = torch.zeros_like(grad[0]) if static else torch.empty_like(grad)
    n = None
    saved_s = mem.dtype == torch.uint8
    for t in range(mem.shape[0] - 1, -1, -1):
        if saved_s:
            u, s = None, mem[t].to(grad.dtype).mul_(cfg.alpha / 255.0)
        else:
            u = mem[t].to(grad.dtype)
            s = sur(u, theta, cfg.alpha, cfg.width)
        dst = None if static else gx[t]  # the step's gradient computed in place, no copy
        if n is None or cfg.detach_reset:
            g = torch.mul(grad[t], s, out=dst)
        elif zero:
            g = torch.addcmul(grad[t], u, n, value=-lam, out=dst).mul_(s)
        else:
            g = torch.add(grad[t], n, alpha=-lam * theta, out=dst).mul_(s)
        if n is not None:
            if zero:  # n (1 - o_t): bool read as uint8 (bool -> float and masked_fill are slow)
                o = spk[t].view(torch.uint8).to(grad.dtype)
                g.add_(torch.addcmul(n, n, o, value=-1.0), alpha=lam)
            else:
                g.add_(n, alpha=lam)
        if static:
            gx.add_(g)
        n = g
    return gx.unsqueeze(0) if static else gx


class LIFScan(torch.autograd.Function):
    """Multi-step LIF: input [T or 1, ...] (1 = the same input every step), output [steps, ...]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, steps: int, cfg: LIFConfig, inplace=None):
        zero = cfg.effective()[2]
        folded = x
        if inplace is not None:  # spikes written over the input (`layers.donatable`): step t's
            x = out = x.view(inplace)  # input is read before its spikes are written
        else:
            out = empty_steps(x, steps)
        saves_s = cfg.saves_surrogate()
        mem = empty_steps(x, steps, torch.uint8 if saves_s else cfg.save_dtype)
        spk = empty_steps(x, steps, torch.bool) if zero else None
        with torch.no_grad():
            if cfg.fixed:
                _forward_fixed(x, steps, cfg, out, mem, spk)
            else:
                _forward_float(x, steps, cfg, out, mem, spk)
        ctx.cfg, ctx.static = cfg, x.shape[0] == 1 and steps > 1
        ctx.save_for_backward(mem, *(() if spk is None else (spk,)))
        ctx.folded = inplace is not None
        if inplace is not None:
            ctx.mark_dirty(folded)
            return folded
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mem, *rest = ctx.saved_tensors
        g = grad.reshape(mem.shape) if ctx.folded else grad
        gx = _backward(like_steps(g, mem), mem, rest[0] if rest else None, ctx.cfg, ctx.static)
        return (gx.reshape(grad.shape) if ctx.folded else gx), None, None, None


def lif_scan(x: torch.Tensor, cfg: LIFConfig, steps: int | None = None,
             donate: bool = False) -> torch.Tensor:
    """Run a LIF layer over time. `x` is [T, ...] or [1, ...] (the same input at every step,
    then `steps` gives T); returns float spikes [T, ...]. `donate`: nothing reads x after
    this (the caller knows): the spikes are written over it where `layers.donatable` allows
    (float arithmetic only)."""
    steps = steps or x.shape[0]
    base = donatable(x, steps) if donate and not cfg.fixed else None
    if base is not None:
        return LIFScan.apply(base, steps, cfg, tuple(x.shape)).view(x.shape)
    return LIFScan.apply(x, steps, cfg)


def delay(seq: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Shift a [T, ...] sequence `steps` later (zeros first): Lava's synaptic delay."""
    if steps <= 0:
        return seq
    if steps >= seq.shape[0]:
        return torch.zeros_like(seq)
    return torch.cat([seq.new_zeros((steps, *seq.shape[1:])), seq[:-steps]], 0)


# the 8-bit weight and 13-bit bias grids (slayer quantize_8bit, w_scale 64; exponent 6)
from snnc.compiler.core.relays import BIAS_GRID, WEIGHT_GRID  # noqa: E402,F401


def quantize_weight(w: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    """round(w / step) * step clipped to [lo, hi]; the gradient passes straight through."""
    return _Quant.apply(w, step, lo, hi)


def quantize_weight_8bit(w: torch.Tensor) -> torch.Tensor:
    """slayer's `quantize_8bit` with w_scale 64: round(w * 32) / 32 clipped to [-4, 254/64],
    i.e. the even integers 64 w in [-256, 254]; the gradient passes straight through."""
    return _Quant.apply(w, *WEIGHT_GRID)


class _Quant(torch.autograd.Function):
    """Exact forward quantisation (no `w + (q - w).detach()` round-off), identity backward."""

    @staticmethod
    def forward(ctx, w, step, lo, hi):
        return (torch.round(w / step) * step).clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None
