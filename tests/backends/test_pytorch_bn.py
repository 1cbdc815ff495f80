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
