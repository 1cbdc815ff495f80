"""The zoo: registry, topology facts, and parameter counts equal to the published models'."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnc import models
from snnc.compiler.errors import SnncError


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _count(name: str, **kw) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return _params(models.get(name, **kw))


def test_registry():
    assert models.available() == ["densenet121", "mobilenetv2", "resnet18", "resnet20",
                                  "resnet38", "resnet44", "vgg11"]
    with pytest.raises(SnncError, match="no model named 'resnet1000'.*resnet20"):
        models.get("resnet1000")


@pytest.mark.parametrize("name,n", [("resnet20", 3), ("resnet38", 6), ("resnet44", 7)])
def test_sresnet_depth(name, n):
    """Paper 2 Table 1: 1 + 2n + 2n + 2n conv layers + the linear head = 6n + 2 layers."""
    net = models.get(name)
    main_path = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(main_path) + 1 == 6 * n + 2  # + the linear head; 1x1 projections not counted
    widths = [net.layer1[0].conv1.out_channels, net.layer2[0].conv1.out_channels,
              net.layer3[0].conv1.out_channels]
    assert widths == [16, 32, 64]
    assert models.get(name, base=32).layer3[0].conv1.out_channels == 128
    assert net.layer1[0].shortcut is None and net.layer2[0].shortcut is not None
    assert net.input_shape == (3, 32, 32)
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # every other model runs at 32x32 in test_zoo.py (fx, both exporters, onnxruntime)


def test_published_parameter_counts():
    """torchvision's resnet18 / densenet121 / mobilenet_v2 / vgg11 (ImageNet heads). With BN our
    VGG convs have no bias (redundant before BN), unlike torchvision's vgg11_bn."""
    assert _count("resnet18") == 11_689_512
    assert _count("densenet121") == 7_978_856
    assert _count("mobilenetv2") == 3_504_872
    assert _count("vgg11", num_classes=1000, input_size=224, hidden=4096,
                  batch_norm=False) == 132_863_336


def test_randomize_batchnorm_is_seeded():
    a = models.randomize_batchnorm(models.get("resnet20"), seed=3)
    b = models.randomize_batchnorm(models.get("resnet20"), seed=3)
    assert torch.equal(a.bn1.running_var, b.bn1.running_var)
    assert not torch.equal(a.bn1.running_mean, torch.zeros(16))
