"""The compact autograd functions of the PyTorch backend (docs/pytorch-backend.md "Memory"): a
conv or linear fed by spikes saves its input as uint8 (counts) or bit-packed (binary spikes);
the forward is the plain op's, and the gradients are the plain op's because the saved values
are exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnc.backends.pytorch.layers import SpikeConv2d, SpikeLinear, pack_bits, unpack_bits


@pytest.mark.parametrize("shape, channels_last", [((4, 3, 5, 7), False), ((4, 3, 5, 7), True),
                                                  ((2, 13), False), ((1, 1, 3, 3), True)])
def test_pack_bits_round_trip_keeps_values_and_memory_order(shape, channels_last):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(shape, generator=g) < 0.4).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    packed, pshape, perm = pack_bits(x)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-x.numel() // 8)
    y = unpack_bits(packed, pshape, perm, torch.float32)
    assert torch.equal(y, x) and y.stride() == x.stride()


def test_pack_bits_puts_spike_i_at_bit_i():
    x = torch.zeros(16)
    x[[0, 3, 7, 8, 15]] = 1
    packed, _, _ = pack_bits(x)
    assert packed.tolist() == [1 + 8 + 128, 1 + 128]


def _spikes(shape, hi, seed, channels_last=False):
    x = torch.randint(0, hi + 1, shape, generator=torch.Generator().manual_seed(seed)).float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("stride, bias", [(1, False), (2, True)])
def test_spike_conv_equals_conv2d(binary, channels_last, stride, bias):
    """Output, input, weight and bias gradients equal F.conv2d's bit for bit (the same kernels
    on the same values), and a binary input is saved in n / 8 bytes."""
    x0 = _spikes((6, 4, 9, 9), 1 if binary else 3, 1, channels_last)
    g = torch.Generator().manual_seed(2)
    w0, b0 = torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, generator=g)
    x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True) if bias else None
    seen = []

    def pack(t):
        seen.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = SpikeConv2d.apply(x, w, b, (stride, stride), (1, 1), (1, 1), 1, binary)
    gy = torch.randn(y.shape, generator=g)
    got = torch.autograd.grad((y * gy).sum(), [t for t in (x, w, b) if t is not None])
    xr, wr = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    br = b0.clone().requires_grad_(True) if bias else None
    ref = F.conv2d(xr, wr, br, stride, 1)
    want = torch.autograd.grad((ref * gy).sum(), [t for t in (xr, wr, br) if t is not None])
    assert torch.equal(y, ref)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
    saved_x = [t for t in seen if t.dtype == torch.uint8]
    assert len(saved_x) == 1
    assert saved_x[0].numel() == (-(-x.numel() // 8) if binary else x.numel())


@pytest.mark.parametrize("binary", [True, False])
def test_spike_linear_equals_linear(binary):
    x0 = _spikes((3, 5, 12), 1 if binary else 4, 3)
    g = torch.Generator().manual_seed(4)
    w0, b0 = torch.randn(7, 12, generator=g), torch.randn(7, generator=g)
    x, w, b = (t.clone().requires_grad_(True) for t in (x0, w0, b0))
    y = SpikeLinear.apply(x, w, b, binary)
    gy = torch.randn(y.shape, generator=g)
    got = torch.autograd.grad((y * gy).sum(), (x, w, b))
    xr, wr, br = (t.clone().requires_grad_(True) for t in (x0, w0, b0))
    ref = F.linear(xr, wr, br)
    want = torch.autograd.grad((ref * gy).sum(), (xr, wr, br))
    assert torch.equal(y, ref)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, rtol=1e-6, atol=1e-6)
