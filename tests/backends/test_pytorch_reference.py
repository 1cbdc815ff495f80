"""Plain per-step loops written straight from the equations, for the PyTorch backend's tests.

Nothing here is shared with the backend's kernels except the single-step spike function
(`surrogate.spike`, which is itself tested against the formulas of paper 2 eq. 24).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from snnc.backends.pytorch.surrogate import spike


def lif_step(x, u, o, *, leak, vth, reset="subtract", fire="ge", **sg):
    """One step of paper 2 eq. 3-6: u_t = x_t + lam (u_{t-1} - theta o_{t-1}) (or reset to 0)."""
    if reset == "subtract":
        u = x + leak * (u - vth * o)
    else:
        u = x + leak * (u * (1.0 - o))
    return u, spike(u, vth, gt=fire == "gt", **sg)


def lif_loop(xs, **kw):
    """Run lif_step over a list of inputs; returns (spikes [T, ...], membranes [T, ...])."""
    u = torch.zeros_like(xs[0])
    o = torch.zeros_like(xs[0])
    os_, us = [], []
    for x in xs:
        u, o = lif_step(x, u, o, **kw)
        os_.append(o)
        us.append(u)
    return torch.stack(os_), torch.stack(us)


def loihi_lif(x: np.ndarray, leak: float, vth: float) -> tuple[np.ndarray, np.ndarray]:
    """Lava's PyLifModelBitAcc (iDecay = 4096, no bias) on a float input x [T, ...], written
    from lava/proc/lif/models.py: the input arrives as trunc(4096 x) (weights 64 w shifted left
    by 6), v decays with sign * (|v * (4096 - dv)| >> 12), saturates at +-(2^23 - 1), spikes
    on v > vThMant << 6 and resets to 0. Returns (spikes, v / 4096)."""
    dv = int(np.round(np.float32(4096.0 * (1.0 - leak))))
    th = int(vth * 64) << 6
    v = np.zeros(x.shape[1:], np.int64)
    spikes, volts = [], []
    for t in range(x.shape[0]):
        a = (np.float32(4096.0) * x[t].astype(np.float32)).astype(np.int64)
        d = v * (4096 - dv)
        v = np.sign(d) * np.right_shift(np.abs(d), 12) + a
        v = np.clip(v, -(2 ** 23) + 1, 2 ** 23 - 1)
        s = v > th
        volts.append(v / 4096.0)
        spikes.append(s)
        v = np.where(s, 0, v)
    return np.stack(spikes).astype(np.float32), np.stack(volts)


def conv(x, m):
    """A per-step conv2d with a backend conv module's parameters (pad symmetric)."""
    return F.conv2d(x, m.weight, m.bias, m.stride, m.pad, m.dil, m.groups)


def bntt_step(x, m, t):
    """Paper 2 BNTT at step t in eval mode: (x - mean_t) / sqrt(var_t + eps) * w_t + b_t."""
    shape = (1, -1, 1, 1)
    return ((x - m.running_mean[t].view(shape)) / torch.sqrt(m.running_var[t].view(shape) + m.eps)
            * m.weight[t].view(shape) + m.bias[t].view(shape))
