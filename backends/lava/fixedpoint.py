"""Loihi 2 fixed-point conventions for the Lava backend, checked rather than clipped.

The units are those of lava-dl 0.6.0 / lava-nc 0.10.0 (docs/lava.md "Fixed point"):

* a float weight w is the integer ``64·w`` in the file; conv weights are used as written and must
  be even integers in [-256, 254] (8-bit mantissa, exponent 1: steps of 1/32 in [-4, 3.97]);
  dense weights are re-encoded by netx into an 8-bit mantissa with a shared exponent, which is
  exact only when ``64·w / 2**e`` is an integer in [-128, 127] for one e in 0..7;
* a threshold θ is ``vThMant = θ·64``, an unsigned integer below 2**17;
* a leak λ is the decay ``vDecay = 4096·(1 − λ)``, an integer in 0..4096;
* a bias b is ``biasMant = b·64`` (netx uses bias exponent 6), a signed 13-bit integer.

Rounding to these grids is part of target-exact semantics (the PyTorch backend rounds the same
way: to the nearest step, ties to even); a value *outside* a range, or a threshold, leak or bias
*off* its grid, is a violation. Violations are collected with the layer's name and raised together
as one :class:`~snnc.compiler.core.errors.ConstraintViolation`, never clipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snnc.compiler.core.errors import ConstraintViolation

W_SCALE = 64  # file weight = 64 · float weight
W_STEP = 2  # conv weights are even integers (8-bit mantissa, exponent 1)
W_MIN, W_MAX = -256, 254
TH_BITS = 17  # vThMant is unsigned 17-bit
BIAS_BITS = 13  # signed mantissa
DECAY_UNITY = 4096
BIAS_EXP = 6
STATE_BITS = 24  # membrane and current registers


@dataclass
class Checker:
    """Collects fixed-point violations by layer and raises them together (`raise_if_any`)."""

    source: str = "<graph>"
    violations: list[str] = field(default_factory=list)

    def add(self, layer: str, op: str, msg: str) -> None:
        self.violations.append(f"layer '{layer}' (op {op}): {msg}")

    def raise_if_any(self) -> None:
        if not self.violations:
            return
        lines = "\n  ".join(self.violations)
        raise ConstraintViolation(
            f"{self.source}: the network breaks Loihi 2's fixed-point conventions; the Lava "
            f"backend does not clip values silently:\n  {lines}\nTrain or compile in "
            f"target-exact mode (--target loihi2 --semantics target), which keeps weights, "
            f"thresholds and leaks on the Loihi grid, or rescale the named layers.")


def quantize_weight(w: np.ndarray, step: float = W_STEP / W_SCALE) -> np.ndarray:
    """Float weights to file units ``64·w`` on a grid of `step` (nearest, ties to even); the
    default step 1/32 is the 8-bit grid (the quantize pass records it as ``weight_step``)."""
    return np.round(np.asarray(w, dtype=np.float64) / step) * step * W_SCALE


def conv_weight(w: np.ndarray, layer: str, op: str, chk: Checker,
                step: float = W_STEP / W_SCALE) -> np.ndarray:
    """The integer kernel ``64·w`` rounded to the layer's grid; a value off Loihi's 8-bit
    grid (not an even integer) or outside [-256, 254] is reported."""
    q = quantize_weight(w, step)
    off = (np.abs(q - np.round(q)) > 1e-9) | (np.round(q) % W_STEP != 0)
    if off.any():
        chk.add(layer, op, f"{int(off.sum())} weight(s) are not multiples of 1/32 (grid step "
                           f"{step!r}); Loihi's 8-bit synapse holds even integers 64·w")
    bad = (q < W_MIN) | (q > W_MAX)
    if bad.any():
        lo, hi = float(np.min(w)), float(np.max(w))
        chk.add(layer, op, f"{int(bad.sum())} weight(s) outside [-4, 3.97] (range {lo:.4g}.."
                           f"{hi:.4g}); 8-bit weights x64 would clip them")
    return q.astype(np.int32)


def threshold(theta: float, layer: str, op: str, chk: Checker) -> int:
    """``vThMant = θ·64``; θ must be a positive multiple of 1/64 below 2**17/64."""
    m = theta * W_SCALE
    r = int(round(m))
    if abs(m - r) > 1e-9:
        chk.add(layer, op, f"threshold {theta!r} is not a multiple of 1/64 (vThMant = {m:.4f}); "
                           f"Loihi truncates it to {int(m)}/64")
    if not 0 < r < (1 << TH_BITS):
        chk.add(layer, op, f"threshold {theta!r} gives vThMant {r}, outside "
                           f"1..{(1 << TH_BITS) - 1}"
                           f" (17 bits unsigned)")
    return r


def voltage_decay(leak: float, layer: str, op: str, chk: Checker) -> int:
    """``vDecay = 4096·(1 − λ)``; λ must be a multiple of 1/4096 in [0, 1]."""
    m = DECAY_UNITY * (1.0 - leak)
    r = int(round(m))
    if abs(m - r) > 1e-6:
        chk.add(layer, op, f"leak {leak!r} is not a multiple of 1/4096 (vDecay = {m:.4f}); Loihi "
                           f"decays in steps of 1/4096")
    if not 0 <= r <= DECAY_UNITY:
        chk.add(layer, op, f"leak {leak!r} is outside [0, 1]")
    return r


def bias(b: np.ndarray, layer: str, op: str, chk: Checker) -> np.ndarray:
    """``biasMant = 64·b``: b rounded to a multiple of 1/64 (ties to even, as the PyTorch
    backend's target-exact mode rounds it), within the signed 13-bit mantissa; netx loads it
    with exponent 6. A bias outside [-64, 63.98] is reported."""
    r = np.round(np.asarray(b, dtype=np.float64) * W_SCALE)
    lim = 1 << (BIAS_BITS - 1)
    bad = (r < -lim) | (r >= lim)
    if bad.any():
        chk.add(layer, op, f"{int(bad.sum())} bias value(s) outside the 13-bit mantissa range "
                           f"[-64, 63.98]")
    return r.astype(np.int32)
