"""densenet121: pre-activation dense layers (BN-ReLU-conv), growth 32, transitions with avgpool.

Dense layer: ``conv2(relu2(norm2(conv1(relu1(norm1(cat(features)))))))`` with a 1x1 bottleneck of
4 * growth channels; every layer of a block reads the concatenation [block input, then the
outputs of the earlier layers] (DSC edges, paper 1). Transition: BN-ReLU-1x1 conv halving the
channels, then 2x2 average pool. Conv outputs, not activations, travel on the concat edges.
"""

from __future__ import annotations

import torch
from torch import nn

from snnc.models import register_model


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (4k channels) then BN-ReLU-conv3x3 (k = growth channels)."""

    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    """`n` dense layers, each reading the concatenation of everything before it."""

    def __init__(self, n: int, cin: int, growth: int, bn_size: int):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.children():
            inp = torch.cat(features, 1) if len(features) > 1 else features[0]
            features.append(layer(inp))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) then 2x2 average pool."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al.): stem, dense blocks and transitions, BN-ReLU, pool, linear."""

    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, init_features: int = 64,
                 bn_size: int = 4, num_classes: int = 1000, in_channels: int = 3,
                 input_size: int = 224, stem: str = "imagenet"):
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        feats = nn.Sequential()
        if stem == "imagenet":
            feats.add_module("conv0", nn.Conv2d(in_channels, init_features, 7, 2, 3, bias=False))
        elif stem == "cifar":
            feats.add_module("conv0", nn.Conv2d(in_channels, init_features, 3, 1, 1, bias=False))
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', not {stem!r}")
        feats.add_module("norm0", nn.BatchNorm2d(init_features))
        feats.add_module("relu0", nn.ReLU(inplace=True))
        if stem == "imagenet":
            feats.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        c = init_features
        for i, n in enumerate(blocks):
            feats.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i + 1 < len(blocks):
                feats.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        feats.add_module("norm5", nn.BatchNorm2d(c))
        feats.add_module("relu5", nn.ReLU(inplace=True))
        self.features = feats
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


@register_model("densenet121")
def densenet121(num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                stem: str = "imagenet") -> DenseNet:
    """DenseNet-121: blocks (6, 12, 24, 16), growth 32, 64 initial features, compression 0.5.

    With the ImageNet stem the input must be at least 32x32 (five halvings before block 4).
    """
    return DenseNet((6, 12, 24, 16), 32, 64, 4, num_classes, in_channels, input_size, stem)
