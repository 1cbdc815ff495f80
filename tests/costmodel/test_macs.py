"""MACs = half of torch.utils.flop_counter's FLOPs for conv + linear (docs/design.md "Cost model"),
on zoo models imported both ways: the fx front end (nn.Module) and ONNX exported by torch."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from snnc import models
from snnc.compiler.api import import_ann
from snnc.costmodel import estimate
from snnc.costmodel.connectivity import macs_of

SIZE = 32  # tests/conftest.py ZOO_TEST_SIZE
_CONV_LINEAR = ("convolution", "addmm", "mm")


def _torch_flops(net: torch.nn.Module) -> int:
    """FLOPs of aten convolution / addmm / mm ops (conv + linear) for one sample."""
    x = torch.randn(1, *net.input_shape)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x)
    counts = fc.get_flop_counts()["Global"]
    other = {str(op) for op in counts} - {f"aten.{n}" for n in _CONV_LINEAR}
    assert not other, f"unexpected FLOP-counted ops {other}"
    return int(sum(counts.values()))


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "mobilenetv2"])
def test_macs_half_of_flop_counter_fx(name):
    net = models.get(name, input_size=SIZE).eval()
    flops = _torch_flops(net)
    g = import_ann(net, input_shape=tuple(net.input_shape))
    macs = macs_of(g)
    assert 2 * sum(macs.values()) == flops
    rep = estimate(g, target="generic")  # the report's total is the same figure
    assert 2 * rep.totals["macs"] == flops


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_macs_half_of_flop_counter_onnx(name, zoo_onnx):
    torch.manual_seed(0)
    net = models.get(name, input_size=SIZE).eval()
    g = import_ann(str(zoo_onnx(name)))
    assert 2 * sum(macs_of(g).values()) == _torch_flops(net)
