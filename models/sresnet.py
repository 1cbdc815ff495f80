"""Paper 2's S-ResNet topology (the CIFAR ResNet of He et al., paper 2 sec. 3.2.2, Table 1).

Three stages of `n` basic blocks at 32x32, 16x16, 8x8 with `base`, 2*base, 4*base filters
(16 in Table 1; 32 for the "wider" S-ResNet38 of Tables 2, 6, 7), 6n + 2 weighted layers in all.
A basic block is ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``; on a change of
shape the shortcut is a 1x1 conv + BN projection (paper 2 sec. 3.2.1, "as proposed in [31]"),
otherwise the identity. ANN form only: the spiking version is what snnc compiles this into.
"""

from __future__ import annotations

import torch
from torch import nn

from snnc.models import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with a skip around them (hops n = 2)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out + skip)


class SResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem, stages of basic blocks, global average pool, linear head."""

    def __init__(self, blocks: list[int], widths: list[int], num_classes: int = 10,
                 in_channels: int = 3, input_size: int = 32, stem: str = "cifar"):
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
            self.maxpool: nn.Module | None = None
        elif stem == "cifar-s2":  # the CIFAR stem with stride 2: a quarter of the compute
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False)
            self.maxpool = None
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            raise ValueError(f"stem must be 'cifar', 'cifar-s2' or 'imagenet', not {stem!r}")
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        cin = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layer = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layer.append(BasicBlock(cin, w, stride))
                cin = w
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def sresnet(n: int = 3, base: int = 16, num_classes: int = 10, in_channels: int = 3,
            input_size: int = 32, stem: str = "cifar") -> SResNet:
    """S-ResNet with `n` blocks per stage (6n + 2 layers) and `base` filters in stage 1;
    `stem` "cifar" (3x3, stride 1: paper 2), "cifar-s2" (3x3, stride 2) or "imagenet"."""
    return SResNet([n] * 3, [base, 2 * base, 4 * base], num_classes, in_channels, input_size,
                   stem)


@register_model("resnet20")
def resnet20(base: int = 16, **kw) -> SResNet:
    """S-ResNet20 (n = 3; paper 2 Table 3)."""
    return sresnet(3, base, **kw)


@register_model("resnet38")
def resnet38(base: int = 16, **kw) -> SResNet:
    """S-ResNet38 (n = 6; paper 2's default network; base=32 is its "wider" variant)."""
    return sresnet(6, base, **kw)


@register_model("resnet44")
def resnet44(base: int = 16, **kw) -> SResNet:
    """S-ResNet44 (n = 7; paper 2 Table 3)."""
    return sresnet(7, base, **kw)
