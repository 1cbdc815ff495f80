"""CIFAR networks in the structure of pytorchcv's resnet20_cifar10, preresnet20_cifar10 and
densenet (pytorchcv is not installed; these are written from its architecture: a 3x3 stem,
three stages of basic units with stride-2 1x1 projection shortcuts + BN at each stage change,
global average pool, linear), with channel widths as parameters so the Lava simulator runs
them in CI time."""

from __future__ import annotations

import torch
import torch.nn as nn


class ConvBlock(nn.Module):
    """conv (no bias) - BN - optional ReLU (pytorchcv's conv3x3_block / conv1x1_block)."""

    def __init__(self, cin, cout, k, stride, pad, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return torch.relu(x) if self.act else x


class ResUnit(nn.Module):
    """relu(body(x) + identity), identity = 1x1 conv + BN when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body1 = ConvBlock(cin, cout, 3, stride, 1)
        self.body2 = ConvBlock(cout, cout, 3, 1, 1, act=False)
        self.resize = cin != cout or stride != 1
        if self.resize:
            self.identity_conv = ConvBlock(cin, cout, 1, stride, 0, act=False)

    def forward(self, x):
        idt = self.identity_conv(x) if self.resize else x
        return torch.relu(self.body2(self.body1(x)) + idt)


class ResNetCifar(nn.Module):
    """resnet20_cifar10's structure: channels (16, 32, 64) and 3 units per stage at full size."""

    def __init__(self, channels=(16, 32, 64), units=3, in_channels=3, classes=10):
        super().__init__()
        self.init = ConvBlock(in_channels, channels[0], 3, 1, 1)
        layers, c = [], channels[0]
        for s, width in enumerate(channels):
            for u in range(units):
                layers.append(ResUnit(c, width, 2 if (u == 0 and s > 0) else 1))
                c = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.init(x))).flatten(1))


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial running statistics and affine parameters (as a trained net
    has), so that folding and the projections' biases are exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.8 + 0.6 * torch.rand(n, generator=gen))
                m.bias.copy_(0.3 * torch.randn(n, generator=gen))
    return model.eval()


class PreConv(nn.Module):
    """BN - ReLU - conv (pytorchcv's pre_conv3x3_block): returns the conv output and the
    pre-activation (the projection of a resized unit reads it)."""

    def __init__(self, cin, cout, k, stride, pad):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, bias=False)

    def forward(self, x):
        pre = torch.relu(self.bn(x))
        return self.conv(pre), pre


class PreResUnit(nn.Module):
    """body(x) + identity, identity = 1x1 conv of the pre-activation when resized."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = PreConv(cin, cout, 3, stride, 1)
        self.c2 = PreConv(cout, cout, 3, 1, 1)
        self.resize = cin != cout or stride != 1
        if self.resize:
            self.identity_conv = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        y, pre = self.c1(x)
        y, _ = self.c2(y)
        return y + (self.identity_conv(pre) if self.resize else x)


class PreResNetCifar(nn.Module):
    """preresnet20_cifar10's structure: conv stem, pre-activation units, final BN-ReLU, pool."""

    def __init__(self, channels=(16, 32, 64), units=3, in_channels=3, classes=10):
        super().__init__()
        self.init = nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False)
        layers, c = [], channels[0]
        for s, width in enumerate(channels):
            for u in range(units):
                layers.append(PreResUnit(c, width, 2 if (u == 0 and s > 0) else 1))
                c = width
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.stages(self.init(x))))
        return self.fc(self.pool(x).flatten(1))


class DenseUnit(nn.Module):
    """concat(x, BN-ReLU-conv3x3(x)) (pytorchcv's DenseUnit without the bottleneck)."""

    def __init__(self, cin, growth):
        super().__init__()
        self.c = PreConv(cin, growth, 3, 1, 1)

    def forward(self, x):
        return torch.cat([x, self.c(x)[0]], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 then 2x2 average pool (pytorchcv's TransitionBlock)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.c = PreConv(cin, cout, 1, 1, 0)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.c(x)[0])


class DenseNetCifar(nn.Module):
    """A DenseNet in densenet40_k12_cifar10's structure (conv stem, dense units, transitions,
    final BN-ReLU, global pool, linear), with small growth and depth."""

    def __init__(self, init=8, growth=4, units=3, stages=2, in_channels=3, classes=10):
        super().__init__()
        self.init = nn.Conv2d(in_channels, init, 3, 1, 1, bias=False)
        layers, c = [], init
        for s in range(stages):
            if s:
                layers.append(Transition(c, c // 2))
                c //= 2
            for _ in range(units):
                layers.append(DenseUnit(c, growth))
                c += growth
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.stages(self.init(x))))
        return self.fc(self.pool(x).flatten(1))
