"""The multi-step LIF kernel: all T steps of a layer in one autograd node.

Paper semantics (paper 2 eq. 3-6; docs/ir.md "LIF"), x_t the neuron's total input:

    u_t = x_t + lam * (u_{t-1} - theta * o_{t-1})       reset = subtract
    u_t = x_t + lam * u_{t-1} * (1 - o_{t-1})           reset = zero
    o_t = 1[u_t >= theta]  (fire = ge)    or   1[u_t > theta]  (fire = gt)

Target-exact Loihi 2 semantics (`fixed=True`, docs/pytorch-backend.md "Target-exact"), the
arithmetic of Lava's bit-accurate LIF (PyLifModelBitAcc) with iDecay = 4096, in units of 1/4096:

    v_t = trunc((v_{t-1} * (4096 - vDecay)) / 4096) + trunc(4096 * x_t),  clipped to +-(2^23 - 1)
    o_t = 1[v_t > vThMant * 64],   v_t <- 0 where o_t = 1
    vDecay = round(4096 * (1 - lam)),   vThMant = int(64 * theta)

Backward is BPTT through the same recursion (the quantisers pass gradients straight through),
with d o / d u given by the registered surrogate. The forward saves only the membrane (in
`save_dtype`: float32 for exact gradients, float16 to halve the memory) and, for reset to zero,
the spikes as bool; the input and the float spikes are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snnc.backends.pytorch.kernels import SURROGATE_IDS, kernel
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
    decay_k: int | None = None  # set by the quantize pass (lif attr decay_k)
    vth_mantissa: int | None = None  # set by the quantize pass (lif attr vth_mant)

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


def _forward_float(x, steps, cfg: LIFConfig, out, mem, spk):
    lam, theta, zero, gt = cfg.effective()
    u = torch.zeros_like(x[0])
    o = torch.zeros_like(x[0])
    for t in range(steps):
        xt = x[t if x.shape[0] > 1 else 0]
        if t:
            if zero:
                u = xt + lam * (u * (1.0 - o))
            else:
                u = xt + lam * (u - theta * o)
        else:
            u = xt.clone()
        o = (u > theta) if gt else (u >= theta)
        if spk is not None:
            spk[t] = o
        o = o.to(x.dtype)
        out[t] = o
        mem[t] = u


def _forward_fixed(x, steps, cfg: LIFConfig, out, mem, spk):
    keep = 4096 - cfg.v_decay
    th = cfg.vth_mant << 6
    v = torch.zeros(x.shape[1:], dtype=torch.int64, device=x.device)
    for t in range(steps):
        xt = x[t if x.shape[0] > 1 else 0]
        v = torch.div(v * keep, 4096, rounding_mode="trunc") + (4096 * xt).to(torch.int64)
        v.clamp_(-V_LIMIT, V_LIMIT)
        o = v > th
        mem[t] = v.to(torch.float32) / 4096.0
        spk[t] = o
        out[t] = o.to(x.dtype)
        v = v.masked_fill(o, 0)


class LIFScan(torch.autograd.Function):
    """Multi-step LIF: input [T or 1, ...] (1 = the same input every step), output [steps, ...]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, steps: int, cfg: LIFConfig):
        lam, theta, zero, gt = cfg.effective()
        shape = (steps, *x.shape[1:])
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
        mem = torch.empty(shape, dtype=cfg.save_dtype, device=x.device)
        spk = torch.empty(shape, dtype=torch.bool, device=x.device) if zero else None
        lib = _c_kernel(x, cfg)
        with torch.no_grad():
            if cfg.fixed:
                _forward_fixed(x, steps, cfg, out, mem, spk)
            elif lib is not None:
                x = x.contiguous()
                state = torch.empty(x[0].numel())  # u_{t-1} in float32 (kept alive here)
                half = mem.dtype == torch.float16
                lib.lif_forward(x.data_ptr(), x.shape[0], x[0].numel(), steps, lam, theta,
                                int(zero), int(gt), out.data_ptr(),
                                None if half else mem.data_ptr(), mem.data_ptr() if half else None,
                                None if spk is None else spk.data_ptr(), state.data_ptr())
            else:
                _forward_float(x, steps, cfg, out, mem, spk)
        ctx.cfg, ctx.static, ctx.lib = cfg, x.shape[0] == 1 and steps > 1, lib
        ctx.save_for_backward(mem, *(() if spk is None else (spk,)))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cfg: LIFConfig = ctx.cfg
        lam, theta, zero, _ = cfg.effective()
        mem, *rest = ctx.saved_tensors
        sur = SURROGATES[cfg.surrogate]
        steps = mem.shape[0]
        if ctx.lib is not None:
            grad = grad.contiguous()
            gx = torch.empty((1, *grad.shape[1:]) if ctx.static else grad.shape,
                             dtype=grad.dtype)
            half = mem.dtype == torch.float16
            scratch = torch.empty(grad[0].numel())  # g_{t+1} (kept alive here)
            ctx.lib.lif_backward(
                grad.data_ptr(), None if half else mem.data_ptr(),
                mem.data_ptr() if half else None,
                rest[0].data_ptr() if rest else None, grad[0].numel(), steps, lam, theta,
                int(zero), int(cfg.detach_reset), SURROGATE_IDS[cfg.surrogate], cfg.alpha,
                cfg.width, int(ctx.static), gx.data_ptr(), scratch.data_ptr())
            return gx, None, None
        gx = torch.empty_like(grad) if not ctx.static else torch.zeros_like(grad[0])
        g_next = None
        for t in range(steps - 1, -1, -1):
            u = mem[t].to(grad.dtype)
            s = sur(u, theta, cfg.alpha, cfg.width)
            if g_next is None:
                g = grad[t] * s
            else:
                if cfg.detach_reset:
                    go = grad[t]
                elif zero:
                    go = grad[t] - lam * u * g_next
                else:
                    go = grad[t] - (lam * theta) * g_next
                keep = lam * g_next if not zero else lam * g_next * (~rest[0][t]).to(grad.dtype)
                g = go * s + keep
            if ctx.static:
                gx += g
            else:
                gx[t] = g
            g_next = g
        return (gx.unsqueeze(0) if ctx.static else gx), None, None


def _c_kernel(x: torch.Tensor, cfg: LIFConfig):
    """The fused C kernel when it applies (float32 CPU, built-in surrogate, float semantics)."""
    if (cfg.fixed or x.dtype != torch.float32 or x.device.type != "cpu"
            or cfg.surrogate not in SURROGATE_IDS
            or cfg.save_dtype not in (torch.float32, torch.float16)):
        return None
    return kernel()


def lif_scan(x: torch.Tensor, cfg: LIFConfig, steps: int | None = None) -> torch.Tensor:
    """Run a LIF layer over time. `x` is [T, ...] or [1, ...] (the same input at every step,
    then `steps` gives T); returns float spikes [T, ...]."""
    return LIFScan.apply(x, steps or x.shape[0], cfg)


def delay(seq: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Shift a [T, ...] sequence `steps` later (zeros first): Lava's synaptic delay."""
    if steps <= 0:
        return seq
    if steps >= seq.shape[0]:
        return torch.zeros_like(seq)
    return torch.cat([seq.new_zeros((steps, *seq.shape[1:])), seq[:-steps]], 0)


WEIGHT_GRID = (1 / 32, -256 / 64, 254 / 64)  # slayer quantize_8bit, w_scale 64
BIAS_GRID = (1 / 64, -(2 ** 12) / 64, (2 ** 12 - 1) / 64)  # 13-bit mantissa, exponent 6


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
