"""VGG-11 (configuration "A" of Simonyan & Zisserman) with max pools, optional BN."""

from __future__ import annotations

import torch
from torch import nn

from snnc.models import register_model

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    """Conv3x3(-BN)-ReLU stacks with 2x2 max pools, adaptive pool, three linear layers."""

    def __init__(self, cfg=VGG11, batch_norm: bool = True, num_classes: int = 10,
                 in_channels: int = 3, input_size: int = 32, hidden: int = 512,
                 pool_out: int = 1, dropout: float = 0.5):
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, 3, 1, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_out, pool_out))
        self.classifier = nn.Sequential(
            nn.Linear(c * pool_out * pool_out, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = x.view(x.size(0), -1)
        return self.classifier(x)


@register_model("vgg11")
def vgg11(num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
          batch_norm: bool = True, hidden: int = 512) -> VGG:
    """VGG-11 for CIFAR by default (hidden 512); `hidden=4096` with input 224 for ImageNet."""
    return VGG(VGG11, batch_norm, num_classes, in_channels, input_size, hidden,
               pool_out=1 if input_size < 224 else 7)
