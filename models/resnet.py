"""resnet18 with a CIFAR stem (3x3 conv, no max pool) or the ImageNet stem (7x7/2 + 3x3/2 pool)."""

from __future__ import annotations

from snnc.models import register_model
from snnc.models.sresnet import SResNet


@register_model("resnet18")
def resnet18(num_classes: int = 1000, in_channels: int = 3, input_size: int | None = None,
             stem: str = "imagenet") -> SResNet:
    """ResNet-18: four stages of two basic blocks, 64-512 filters, 1x1 conv + BN projections.

    `stem` is "imagenet" (7x7/2 conv + 3x3/2 max pool; default input 224) or "cifar" (3x3/1
    conv, no pool; default input 32).
    """
    if input_size is None:
        input_size = 224 if stem == "imagenet" else 32
    return SResNet([2, 2, 2, 2], [64, 128, 256, 512], num_classes, in_channels, input_size,
                   stem=stem)
