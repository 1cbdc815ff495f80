"""The initial membrane potential of conversion (docs/passes.md "Conversion", `--init-membrane`).

Bu et al. 2022 (ICLR, "Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency spiking
neural networks"): an IF neuron (reset by subtraction) with threshold theta and initial
membrane u(0), driven by a constant current x for T steps, emits
clip(floor((T x + u(0)) / theta), 0, T) spikes; with u(0) = theta / 2 (their Theorem 2: the
expected conversion error is zero) the count is x T / theta rounded to nearest, so the rate
is within 1 / (2T) of x / theta, where u(0) = 0 floors it (error up to 1 / T).
"""

from __future__ import annotations

import pytest
import torch

from snnc.backends.pytorch.neuron import LIFConfig, lif_scan

# constant inputs in [0, theta) that put no count exactly on a rounding boundary
XS = (torch.arange(200, dtype=torch.float64) + 0.37) / 200.0


@pytest.mark.parametrize("theta", [1.0, 2.5])
@pytest.mark.parametrize("steps", [4, 8, 16, 64])
def test_half_threshold_start_bounds_the_rate_error_by_half_a_step(theta, steps):
    x = (XS * theta).to(torch.float32)
    half = LIFConfig(leak=1.0, vth=theta, reset="subtract", fire="ge", v_init=0.5)
    zero = LIFConfig(leak=1.0, vth=theta, reset="subtract", fire="ge")
    r_half = lif_scan(x[None], half, steps).mean(0)
    r_zero = lif_scan(x[None], zero, steps).mean(0)
    want = x / theta
    assert float((r_half - want).abs().max()) <= 1 / (2 * steps) + 1e-6
    # the floor of u(0) = 0 is up to a whole step off, and below the ANN on average
    assert float((r_zero - want).abs().max()) > 1 / (2 * steps)
    assert float((r_zero - want).abs().max()) <= 1 / steps + 1e-6
    assert float((r_half - want).mean().abs()) < float((r_zero - want).mean().abs())


def test_fixed_point_neuron_starts_at_the_initial_membrane():
    """Loihi 2 arithmetic (units of 1/4096, vThMant * 64): v_{-1} = v_init * vThMant * 64."""
    cfg = LIFConfig(leak=1.0, vth=1.0, fixed=True, v_init=0.5)
    x = torch.full((1, 3), 0.25)
    out = lif_scan(x, cfg, 4)
    # v: 0.5 + 0.25 = 0.75, 1.0 (not > 1), 1.25 (> 1: spike, reset to 0), 0.25
    assert out[:, 0].tolist() == [0.0, 0.0, 1.0, 0.0]
    plain = lif_scan(x, LIFConfig(leak=1.0, vth=1.0, fixed=True), 4)
    assert plain[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0]
