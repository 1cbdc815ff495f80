"""bn-to-bntt's tensor maker (`_make`) against the plain construction of each tensor."""

from __future__ import annotations

import pytest
import torch

from snnc.compiler.core.ir import GraphBuilder
from snnc.passes.bn_to_bntt import _make


def _fills(gen: torch.Generator) -> list:
    """Row tensors and float fills of several shapes, interleaved as bn-to-bntt makes them
    (a layer's four roles in turn), with a float64 row and a repeated value among them."""
    fills = []
    for layer, (t, c) in enumerate([(3, 5), (3, 7), (3, 5), (1, 4), (3, 7), (3, 5)]):
        for role in ("weight", "bias", "running_mean", "running_var"):
            key = f"l{layer}.{role}"
            if layer % 2:  # an identity norm: float fills
                fills.append((key, (t, c), 1.0 if role == "weight" else 0.0 if role != "running_var"
                              else 1.0 - 1e-5))
            else:
                dtype = torch.float64 if (layer, role) == (2, "bias") else torch.float32
                fills.append((key, (t, c), torch.randn(c, generator=gen, dtype=dtype)))
    fills.append(("shared.weight", (6,), 1.0))  # mode=shared: [C] identity tensors
    fills.append(("shared.running_var", (6,), 1.0 - 1e-3))
    return fills


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_make_equals_the_plain_tensors(dtype):
    gen = torch.Generator().manual_seed(0)
    fills = _fills(gen)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        b = GraphBuilder("g", params={})
        _make(b, fills)
        want = {key: torch.full(shape, v) if isinstance(v, float) else v.repeat(shape[0], 1)
                for key, shape, v in fills}
    finally:
        torch.set_default_dtype(old)
    assert list(b.params) == [key for key, _, _ in fills]  # set in the order of `fills`
    pointers = set()
    for key, tensor in b.params.items():
        assert tensor.dtype == want[key].dtype and tensor.shape == want[key].shape, key
        assert torch.equal(tensor, want[key]), key
        storage = tensor.untyped_storage()  # its own storage, exactly its size
        assert storage.nbytes() == tensor.numel() * tensor.element_size(), key
        assert storage.data_ptr() not in pointers, key
        pointers.add(storage.data_ptr())
        tensor.add_(1)  # writable, and writing one changes no other
    for key, tensor in b.params.items():
        assert torch.equal(tensor, want[key] + 1), key
