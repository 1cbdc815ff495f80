"""One neuron / one layer of the multi-step LIF kernel against plain loops from the equations
(paper 2 eq. 3-6 and 24), Lava's bit-accurate LIF arithmetic, and real snnTorch."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import snntorch
import torch

from snnc.backends.pytorch.neuron import LIFConfig, delay, lif_scan, quantize_weight_8bit
from snnc.backends.pytorch.surrogate import SURROGATES, spike

sys.path.insert(0, str(Path(__file__).parent))
from test_pytorch_reference import lif_loop, loihi_lif  # noqa: E402

LEAK, VTH = 0.874, 1.0


def _inputs(shape=(8, 3, 50), scale=1.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 * scale - 0.4 * scale).requires_grad_(True)


@pytest.mark.parametrize("name,u,expect", [
    ("triangle", 1.25, 0.3 * 0.75), ("triangle", 2.5, 0.0), ("triangle", 1.0, 0.3),
    ("fast_sigmoid", 1.5, 0.3 / 1.5 ** 2), ("arctan", 1.5, 0.3 / (1 + (math.pi * 0.5) ** 2)),
])
def test_surrogate_formulas(name, u, expect):
    """Paper 2 eq. 24 (triangle, centred at theta) and the two alternatives, width 1."""
    x = torch.tensor([u], requires_grad=True)
    spike(x, VTH, surrogate=name, alpha=0.3, width=1.0).backward()
    assert x.grad.item() == pytest.approx(expect, rel=1e-6)


FORMULAS = {  # the docstrings' formulas, as plain out-of-place torch expressions
    "triangle": lambda u, th, a, w: (1.0 - (u - th).abs() / w).clamp(min=0.0) * a,
    "fast_sigmoid": lambda u, th, a, w: a / (1.0 + (u - th).abs() / w) ** 2,
    "arctan": lambda u, th, a, w: a / (1.0 + ((u - th) * (math.pi / w)) ** 2),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_surrogates_equal_their_formula_bit_for_bit_and_leave_u_alone(name, dtype):
    """The registered surrogates compute in place on one new tensor (surrogate.py) for speed;
    they must give the formula's floats exactly and never write to the membrane they read."""
    g = torch.Generator().manual_seed(3)
    u = (torch.randn(20_000, generator=g) * 3).to(dtype)
    for th, a, w in ((1.0, 0.3, 1.0), (0.7, 1.0, 0.37), (2.5, 0.5, 3.0)):
        before = u.clone()
        got = SURROGATES[name](u, th, a, w)
        assert torch.equal(u, before)
        assert torch.equal(got, FORMULAS[name](u, th, a, w)), (name, dtype, th, a, w)


def test_surrogate_width_scales_support():
    x = torch.tensor([1.75], requires_grad=True)
    spike(x, 1.0, surrogate="triangle", alpha=0.5, width=2.0).backward()
    assert x.grad.item() == pytest.approx(0.5 * (1 - 0.75 / 2.0))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("fire", ["ge", "gt"])
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_kernel_matches_loop(reset, fire, surrogate):
    """Spikes bit-exact and BPTT gradients equal to autograd through the equations."""
    x = _inputs()
    kw = dict(leak=LEAK, vth=VTH, reset=reset, fire=fire, surrogate=surrogate, alpha=0.3,
              width=1.0)
    ref, _ = lif_loop(list(x), **kw)
    w = torch.randn(ref.shape)
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    out = lif_scan(x, LIFConfig(**kw))
    (gout,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.equal(out, ref)
    assert 0.02 < out.mean() < 0.9  # the test exercises spikes and silences
    torch.testing.assert_close(gout, gref, rtol=1e-5, atol=1e-6)


def test_static_input_equals_repeated_input():
    """A direct-encoded input ([1, ...], the same every step) is the repeated sequence."""
    x = _inputs((1, 4, 30))
    cfg = LIFConfig(leak=LEAK, vth=VTH)
    out = lif_scan(x, cfg, steps=6)
    (g,) = torch.autograd.grad(out.sum(), x)
    xr = x.detach().expand(6, 4, 30).clone().requires_grad_(True)
    ref = lif_scan(xr, cfg)
    (gr,) = torch.autograd.grad(ref.sum(), xr)
    assert torch.equal(out, ref)
    torch.testing.assert_close(g, gr.sum(0, keepdim=True))


def test_detach_reset_drops_reset_gradient():
    x = _inputs()
    cfg = LIFConfig(leak=LEAK, vth=VTH, detach_reset=True)
    (g,) = torch.autograd.grad(lif_scan(x, cfg).sum(), x)
    # reference: the reset term o_{t-1} detached from the graph
    u = torch.zeros_like(x[0])
    o = torch.zeros_like(x[0])
    outs = []
    for t in range(x.shape[0]):
        u = x[t] + LEAK * (u - VTH * o.detach())
        o = spike(u, VTH)
        outs.append(o)
    (gr,) = torch.autograd.grad(torch.stack(outs).sum(), x)
    torch.testing.assert_close(g, gr, rtol=1e-5, atol=1e-6)


def test_compact_membrane_keeps_spikes_and_gradients_close():
    x = _inputs()
    exact = lif_scan(x, LIFConfig(leak=LEAK, vth=VTH))
    (ge,) = torch.autograd.grad(exact.sum(), x)
    compact = lif_scan(x, LIFConfig(leak=LEAK, vth=VTH, save_dtype=torch.float16))
    (gc,) = torch.autograd.grad(compact.sum(), x)
    assert torch.equal(exact, compact)
    torch.testing.assert_close(gc, ge, rtol=2e-2, atol=2e-3)


def _snntorch_run(x):
    lif = snntorch.Leaky(beta=LEAK, threshold=VTH, reset_mechanism="subtract", reset_delay=False)
    mem = lif.init_leaky()
    out = []
    for t in range(x.shape[0]):
        s, mem = lif(x[t], mem)
        out.append(s)
    return torch.stack(out)


def test_equals_snntorch_leaky_without_ties():
    """snnTorch Leaky(reset_mechanism="subtract", reset_delay=False) = paper eq. 3-6 while no
    membrane reaches 2 theta (snnTorch subtracts theta again, before firing, from a membrane
    still above theta after its reset; docs/pytorch-backend.md) and no u_t equals theta."""
    x = _inputs((30, 4, 200), scale=0.6, seed=3).detach()
    _, mem = lif_loop(list(x), leak=LEAK, vth=VTH)
    assert mem.max() < 2 * VTH and not (mem == VTH).any()
    ours = lif_scan(x, LIFConfig(leak=LEAK, vth=VTH))
    assert ours.sum() > 100
    assert torch.equal(ours, _snntorch_run(x))


def test_snntorch_tie_differs_by_fire_rule():
    """u_t == theta exactly: the paper (eq. 4, >=) fires, snnTorch (>) does not; fire=gt agrees."""
    x = torch.tensor([[1.0], [0.25]])
    assert lif_scan(x, LIFConfig(leak=LEAK, vth=VTH))[0].item() == 1.0
    assert _snntorch_run(x)[0].item() == 0.0
    assert torch.equal(lif_scan(x, LIFConfig(leak=LEAK, vth=VTH, fire="gt")), _snntorch_run(x))


@pytest.mark.parametrize("leak,vth", [(0.874, 1.0), (0.5, 0.3), (1.0, 1.25), (0.9, 2.0)])
def test_fixed_point_matches_lava_arithmetic(leak, vth):
    """Target-exact loihi2: bit-exact with Lava's PyLifModelBitAcc integer arithmetic, with
    weights on the 8-bit grid (64 w even integers) and graded input alike."""
    g = torch.Generator().manual_seed(1)
    spikes_in = (torch.rand(16, 64, 20, generator=g) < 0.3).float()
    w = quantize_weight_8bit(torch.randn(20, 30, generator=g) * 0.7)
    x = torch.cat([spikes_in @ w, torch.rand(16, 64, 30, generator=g) * 2 - 0.5], 1)
    cfg = LIFConfig(leak=leak, vth=vth, reset="zero", fire="gt", fixed=True)
    out = lif_scan(x.requires_grad_(True), cfg)
    ref_s, _ = loihi_lif(x.detach().numpy(), leak, vth)
    assert 0.01 < out.mean() < 0.9
    assert torch.equal(out, torch.from_numpy(ref_s))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0


def test_quantize_8bit_grid():
    w = torch.tensor([0.0, 0.015, 0.016, 1.0 / 3, -5.0, 5.0, 3.97, -4.0])
    q = quantize_weight_8bit(w)
    assert torch.equal(q * 64 % 2, torch.zeros_like(q))  # even integers 64 w
    assert q.min() == -4.0 and q.max() == 254 / 64
    assert q[1].item() == 0.0 and q[2].item() == 1 / 32


def test_delay_shifts_one_step():
    s = torch.arange(1.0, 5.0).view(4, 1)
    assert delay(s, 1).flatten().tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("u8", [False, True])
def test_compact_and_static_paths_match_the_equations(reset, static, detach, u8):
    """Float16-saved membranes, 8-bit saved surrogates (the module's default: `u8`) and a static
    [1, ...] input: spikes equal the equations' loop bit for bit, gradients equal autograd
    through it (surrogate at the float16 membrane, or within alpha / 510:
    docs/pytorch-backend.md "Memory")."""
    x = _inputs((1, 3, 40) if static else (7, 3, 40), seed=5)
    kw = dict(leak=LEAK, vth=VTH, reset=reset, surrogate="arctan")
    xs = [x[0]] * 7 if static else list(x)
    if detach:  # the reset term o_{t-1} detached from the graph
        u, o, outs = torch.zeros_like(xs[0]), torch.zeros_like(xs[0]), []
        for xt in xs:
            od = o.detach()
            u = xt + LEAK * (u - VTH * od if reset == "subtract" else u * (1.0 - od))
            o = spike(u, VTH, surrogate="arctan")
            outs.append(o)
        ref = torch.stack(outs)
    else:
        ref, _ = lif_loop(xs, **kw)
    w = torch.arange(7.0).view(7, 1, 1)
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    out = lif_scan(x, LIFConfig(**kw, detach_reset=detach, save_dtype=torch.float16,
                                surrogate_u8=u8), steps=7)
    (g,) = torch.autograd.grad((out * w).sum(), x)
    assert torch.equal(out, ref) and 0.05 < out.mean() < 0.9
    if u8 and (reset == "subtract" or detach):  # each surrogate value within alpha / 510
        err = float((g - gref).norm() / gref.norm())
        assert err < 5e-3, err
    else:
        torch.testing.assert_close(g, gref, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("reset, detach, saved", [("subtract", False, torch.uint8),
                                                  ("zero", True, torch.uint8),
                                                  ("zero", False, torch.float16)])
def test_compact_scan_saves_one_byte_where_the_membrane_is_not_needed(reset, detach, saved):
    """With surrogate_u8 a lif saves its surrogate as one byte per neuron and step (float16
    membranes only for reset to zero, whose gradient reads u), and nothing of float32 size."""
    x = _inputs((6, 3, 40))
    seen = []

    def pack(t):
        seen.append(t)
        return t

    cfg = LIFConfig(leak=LEAK, vth=VTH, reset=reset, detach_reset=detach,
                    save_dtype=torch.float16, surrogate_u8=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = lif_scan(x, cfg)
    big = [t for t in seen if t.numel() == x.numel()]
    assert big[0].dtype == saved and all(t.element_size() == 1 for t in big[1:])
    assert sum(t.numel() * t.element_size() for t in seen) <= x.numel() * (
        2 if saved == torch.uint8 else 3)
    assert out.shape == x.shape


def test_torch_compile_traces_the_scan():
    """The scan is plain torch in one autograd.Function: torch.compile captures it whole
    (fullgraph; aot_eager needs no C compiler) with the same spikes and gradients."""
    x = _inputs((6, 3, 40))
    cfg = LIFConfig(leak=LEAK, vth=VTH, save_dtype=torch.float16)
    compiled = torch.compile(lambda v: lif_scan(v, cfg), backend="aot_eager", fullgraph=True)
    out = compiled(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    ref = lif_scan(x, cfg)
    (gref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.equal(out, ref)
    torch.testing.assert_close(g, gref, rtol=0, atol=0)
