"""BNTT and the shared batch norm of the PyTorch backend against torch's own BatchNorm2d
(docs/pytorch-backend.md "Neuron semantics": BNTT uses step t's statistics and affine; a
`batchnorm` in an SNN graph normalises over all T * B samples)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from snnc.backends.pytorch.layers import BNTTFn, channels_last

T, B, C, H = 4, 3, 5, 6


def _loop_bns(w, b, rm, rv):
    bns = [nn.BatchNorm2d(C) for _ in range(T)]
    for t, bn in enumerate(bns):
        bn.weight.data.copy_(w[t])
        bn.bias.data.copy_(b[t])
        bn.running_mean.copy_(rm[t])
        bn.running_var.copy_(rv[t])
    return bns


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, C, generator=g) + 0.5, torch.rand(T, C, generator=g) - 0.5,
            torch.rand(T, C, generator=g) - 0.5, torch.rand(T, C, generator=g) + 0.5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_bntt_equals_a_loop_of_t_batchnorms(training, static, layout):
    """Output, input/affine gradients and running statistics equal T separate BatchNorm2d
    (float tolerance: the same native kernels, summed in another order for a static input)."""
    w, b, rm, rv = _params()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1 if static else T, B, C, H, H, generator=g) * 2 + 0.3
    x0 = channels_last(x0) if layout == "channels_last" else x0
    x = x0.clone().requires_grad_(True)
    weight, bias = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    run_m, run_v = rm.clone(), rv.clone()
    y = BNTTFn.apply(x, weight, bias, run_m, run_v, training, 0.1, 1e-5, T)
    gy = torch.randn(y.shape, generator=g)
    gx, gw, gb = torch.autograd.grad((y * gy).sum(), (x, weight, bias))

    bns = _loop_bns(w, b, rm, rv)
    xr = x0.detach().clone().requires_grad_(True)
    ref = torch.stack([bn.train(training)(xr[0 if static else t]) for t, bn in enumerate(bns)])
    aff = [p for bn in bns for p in (bn.weight, bn.bias)]
    grx, *gaff = torch.autograd.grad((ref * gy).sum(), (xr, *aff))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, grx, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, torch.stack(gaff[0::2]))
    torch.testing.assert_close(gb, torch.stack(gaff[1::2]))
    torch.testing.assert_close(run_m, torch.stack([bn.running_mean for bn in bns]))
    torch.testing.assert_close(run_v, torch.stack([bn.running_var for bn in bns]))
    assert y.shape == (T, B, C, H, H)


def test_module_bntt_and_shared_bn_against_torch():
    """In the compiled module, `--bn bntt` normalises each step on its own and `--bn shared`
    over all T * B samples: checked on a BN's output through forward hooks."""
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    net = resnet20(base=4, in_channels=3, num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    for bn in ("bntt", "shared"):
        c = compile(net, timesteps=T, bn=bn, encoder="direct")
        m = c.to_torch().train()
        # the second BN: its conv reads the stem's spikes, so its T steps differ
        first = [n for n in c.graph.nodes if n.op in ("bntt", "batchnorm")][1]
        conv = c.graph.inputs_of(first.name)[0].src
        seen = {}
        m.layers[conv].register_forward_hook(lambda mod, i, o: seen.__setitem__("conv", o))
        m.layers[first.name].register_forward_hook(lambda mod, i, o: seen.__setitem__("bn", o))
        m(x)
        v = seen["conv"].detach()
        assert v.shape[0] == T and not torch.equal(v[0], v[-1])
        if bn == "bntt":
            ref = torch.stack([nn.functional.batch_norm(v[t], None, None, training=True)
                               for t in range(T)])
        else:
            ref = nn.functional.batch_norm(v.reshape(-1, *v.shape[2:]), None, None,
                                           training=True).view(v.shape)
        torch.testing.assert_close(seen["bn"].detach(), ref, rtol=1e-4, atol=1e-4)


def test_bntt_affine_gradients_without_input_gradient():
    """An input that needs no gradient (e.g. a frozen conv before it) still trains the affine."""
    w, b, rm, rv = _params(3)
    x = torch.randn(T, B, C, H, H)
    weight, bias = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y = BNTTFn.apply(x, weight, bias, rm.clone(), rv.clone(), True, 0.1, 1e-5, T)
    gw, gb = torch.autograd.grad(y.square().sum(), (weight, bias))
    bns = _loop_bns(w, b, rm, rv)
    ref = torch.stack([bn(x[t]) for t, bn in enumerate(bns)]).square().sum()
    ref.backward()
    torch.testing.assert_close(gw, torch.stack([bn.weight.grad for bn in bns]))
    torch.testing.assert_close(gb, torch.stack([bn.bias.grad for bn in bns]))


@pytest.mark.parametrize("bn", ["bntt", "shared"])
def test_compact_bn_saves_half_and_keeps_the_forward(bn):
    """compact=True (the default) saves each BN's input as float16 for backward: the forward is
    bit-identical to compact=False, gradients agree to float16 precision."""
    from snnc.backends.pytorch import build_module
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    g = compile(resnet20(base=4, in_channels=3, num_classes=10).eval(), timesteps=3, bn=bn,
                encoder="direct").graph
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    outs, grads = [], []
    for compact in (True, False):
        m = build_module(g, compact=compact).train()
        y = m(x)
        outs.append(y.detach())
        grads.append(torch.autograd.grad(y.square().sum(), [p for p in m.parameters()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-3 * float(b.abs().max()) + 1e-6)


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("grad_layout", ["contiguous", "channels_last"])
def test_shared_bn_backward_in_slices_equals_one_batchnorm(monkeypatch, compact, grad_layout):
    """The shared BN's backward over all T * B samples runs in slices of CHUNK_BYTES (here 3
    samples of 12 and a remainder: 5 slices); input and affine gradients equal one
    BatchNorm2d over the T * B samples, whatever the incoming gradient's layout (the global
    pool sends a contiguous one to channels-last inputs: docs/pytorch-backend.md
    "Execution")."""
    from snnc.backends.pytorch import layers

    n = 2 * 7 - 1  # T * B = 13 samples
    monkeypatch.setattr(layers, "CHUNK_BYTES", 3 * 4 * C * H * H)
    g = torch.Generator().manual_seed(4)
    w, b = torch.rand(C, generator=g) + 0.5, torch.rand(C, generator=g) - 0.5
    x0 = channels_last(torch.randn(1, n, C, H, H, generator=g) * 2 + 0.3)
    if compact:  # the saved input is float16: the reference sees the same rounded values
        x0 = x0.half().float()
    gy = torch.randn(1, n, C, H, H, generator=g)
    gy = channels_last(gy) if grad_layout == "channels_last" else gy.contiguous()
    x = x0.clone().requires_grad_(True)
    weight, bias = w.view(1, C).clone().requires_grad_(True), b.view(1, C).clone() \
        .requires_grad_(True)
    rm, rv = torch.zeros(1, C), torch.ones(1, C)
    seen = []
    real = layers._shared_backward
    monkeypatch.setattr(layers, "_shared_backward",
                        lambda *a: seen.append(layers._rows(a[0][0])) or real(*a))
    y = BNTTFn.apply(x, weight, bias, rm, rv, True, 0.1, 1e-5, 1, compact)
    gx, gw, gb = torch.autograd.grad(y, (x, weight, bias), gy)
    assert seen == [3]  # the sliced path ran, 3 samples a slice

    bn = nn.BatchNorm2d(C)
    bn.weight.data.copy_(w)
    bn.bias.data.copy_(b)
    xr = x0[0].detach().clone().requires_grad_(True)
    gxr, gwr, gbr = torch.autograd.grad(bn(xr), (xr, bn.weight, bn.bias), gy[0])
    torch.testing.assert_close(y[0], bn(xr).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx[0], gxr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw[0], gwr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb[0], gbr, rtol=1e-4, atol=1e-5)
    assert gx[0].is_contiguous(memory_format=torch.channels_last)


def test_lif_backward_returns_the_inputs_layout():
    """A contiguous gradient into a lif whose input is channels-last comes out channels-last
    (one copy), with the same values as the contiguous computation."""
    from snnc.backends.pytorch.neuron import LIFConfig, lif_scan

    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(T, B, C, H, H, generator=g) + 0.8
    gy = torch.randn(T, B, C, H, H, generator=g)
    grads = []
    for x in (x0, channels_last(x0)):
        x = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(lif_scan(x, LIFConfig(), T), x, gy.contiguous())
        grads.append(gx)
    assert not grads[0][0].is_contiguous(memory_format=torch.channels_last)
    assert grads[1][0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


def test_module_gradients_with_sliced_shared_bn_equal_one_kernel(monkeypatch):
    """A whole `--bn shared` module: every parameter gradient with the BN backward in slices
    equals the one-kernel backward to float tolerance: the two differ (the same sums in
    another order) by under a quarter of what float32 itself costs either of them against a
    float64 run."""
    from snnc.backends.pytorch import build_module, layers
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    g = compile(resnet20(base=4, in_channels=3, num_classes=10).eval(), timesteps=3,
                bn="shared", encoder="direct").graph
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    grads, calls = [], []
    real = layers._shared_backward
    monkeypatch.setattr(layers, "_shared_backward", lambda *a: calls.append(1) or real(*a))
    # slices of ~4 samples; one slice (= one native kernel); float64 (compact off)
    for chunk, dtype in ((4 * 4 * 8 * 8, torch.float32), (1 << 40, torch.float32),
                         (1 << 40, torch.float64)):
        monkeypatch.setattr(layers, "CHUNK_BYTES", chunk)
        n = len(calls)
        m = build_module(g, compact=dtype == torch.float32).train().to(dtype)
        y = m(x.to(dtype))
        grads.append(torch.autograd.grad(y.square().sum(), list(m.parameters())))
        assert (len(calls) > n) == (chunk < 1 << 40)
    for sliced, one, exact in zip(*grads):
        float_error = float((one.double() - exact).abs().max())
        assert float_error > 0
        assert float((sliced - one).abs().max()) <= 0.25 * float_error  # measured: at most 0.11


def _donation_net(residual="s2s", bn="bntt", target="generic"):
    from snnc.backends.pytorch import build_module
    from snnc.compiler import compile
    from snnc.models.sresnet import resnet20

    torch.manual_seed(0)
    g = compile(resnet20(base=4, in_channels=3, num_classes=10).eval(), timesteps=3,
                bn=bn, encoder="direct", residual=residual, target=target).graph
    return g, build_module, torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("residual,bn,target", [
    ("s2s", "bntt", "generic"), ("v2v", "bntt", "generic"), ("s2m", "bntt", "generic"),
    ("s2s", "shared", "generic"), ("s2s", "shared", "loihi2")])  # loihi2: BN trained folded
def test_writing_over_a_dead_input_changes_no_bit(monkeypatch, residual, bn, target):
    """A bntt that is the only reader of a conv's output normalises it in place, and a lif
    that is the only reader of its input writes its spikes over it (module `_donors`,
    docs/pytorch-backend.md "Memory"): outputs, every parameter gradient and the running
    statistics equal the out-of-place run bit for bit, in training and in eval, for every
    residual mode (V2V lifs, whose input current another node reads, are left alone; a BN
    trained folded passes its conv's output through and is no producer to write over)."""
    from snnc.backends.pytorch import neuron, ops

    g, build_module, x = _donation_net(residual, bn, target)
    donated = {"bntt": [], "lif": []}
    for mod, key in ((ops, "bntt"), (neuron, "lif")):
        real = getattr(mod, "donatable")
        monkeypatch.setattr(mod, "donatable", lambda *a, _r=real, _k=key: (
            lambda r: donated[_k].append(r is not None) or r)(_r(*a)))
    runs = []
    for donate in (True, False):
        torch.manual_seed(0)
        m = build_module(g).train()
        if not donate:
            m._donors = set()
        y = m(x)
        grads = torch.autograd.grad(y.square().sum(), list(m.parameters()))
        state = {k: v.clone() for k, v in m.state_dict().items()}
        runs.append((y.detach(), grads, state, m.eval()(x)))
    if target == "generic":  # loihi2's lifs run Lava's fixed-point arithmetic: not donated
        assert donated["lif"].count(True) > 4
    if bn == "bntt":
        # the stem's conv ran once for all steps (T' = 1): its bntt writes T steps, so it
        # cannot reuse that memory (two forward passes with donation: training and eval)
        assert donated["bntt"].count(False) == 2
        assert donated["bntt"].count(True) == len(donated["bntt"]) - 2 > 4
    (y1, g1, s1, e1), (y2, g2, s2, e2) = runs
    assert torch.equal(y1, y2) and torch.equal(e1, e2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_hooks_and_observers_keep_the_conv_output_intact():
    """Whoever may look at the conv's output (a forward hook on either layer, the module's
    observer) sees it as the conv computed it: nothing is overwritten then."""
    g, build_module, x = _donation_net()
    m = build_module(g).train()
    bntt = [n for n in g.nodes if n.op == "bntt"][2]
    conv = g.inputs_of(bntt.name)[0].src
    layer, flags = m.layers[bntt.name], []
    real = layer.forward
    layer.forward = lambda ins, steps, donate=False: flags.append(donate) or real(
        ins, steps, donate=donate)
    m(x)
    assert flags == [True]
    seen = {}
    handle = m.layers[conv].register_forward_hook(lambda mod, i, o: seen.setdefault("c", o))
    m(x)
    handle.remove()
    m.observer = lambda node, ins, out: None
    m(x)
    m.observer = None
    assert flags == [True, False, False]
    # what the hook saw is the conv's output, not its normalisation (which has mean 0 per
    # step and channel over batch and space)
    c = seen["c"].detach()
    assert c.mean(dim=(1, 3, 4)).abs().max() > 1e-3
