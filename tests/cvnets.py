"""Small networks written like pytorchcv's definitions (pytorchcv itself is not installed),
shared by the cost model's tests (tests/costmodel), the Lava deployment tests (tests/lava, run
in the Python 3.10 / torch 2.3 environment: plain torch.nn only) and the NIR route's tests:
a CIFAR ResNet (resnet20_cifar10's structure: init conv, three stages of basic blocks, 1x1
projection shortcuts + BN on stride 2), a pre-activation ResNet (preresnet20_cifar10: BN-ReLU-
conv units, the projection reads the pre-activation, the sum passed on without activation, a
post-activation at the end), and a DenseNet (densenet: BN-ReLU-conv units, bottleneck or not,
concatenated, transitions BN-ReLU-conv1x1-avgpool2). Widths and depths are parameters so that
the tests run on tiny inputs (and the Lava simulator in CI time); `init_bn` gives every BN
non-trivial statistics, as a trained net has."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3_block(cin, cout, stride=1, act=True):
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU()] if act else []))


def _stages(block, channels, blocks):
    """(pytorchcv's stage layout: `blocks` units of `block` per width, stride 2 in the first
    unit of every stage but the first, output channels)."""
    layers, c = [], channels[0]
    for i, w in enumerate(channels):
        for j in range(blocks):
            layers.append(block(c, w, 2 if (j == 0 and i > 0) else 1))
            c = w
    return nn.Sequential(*layers), c


class ResBlock(nn.Module):
    """pytorchcv ResUnit (bottleneck=False): body conv-bn-relu-conv-bn, identity or 1x1
    projection, relu after the sum."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv3x3_block(cin, cout, stride), conv3x3_block(cout, cout,
                                                                                   act=False))
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        idn = x if self.proj is None else self.proj(x)
        return F.relu(self.body(x) + idn)


class CIFARResNet(nn.Module):
    """resnet20_cifar10's structure (pytorchcv `CIFARResNet`), channels/blocks scaled down."""

    def __init__(self, channels=(4, 8, 8), blocks=1, classes=10, cin=3):
        super().__init__()
        self.init = conv3x3_block(cin, channels[0])
        self.stages, c = _stages(ResBlock, channels, blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.stages(self.init(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class PreResBlock(nn.Module):
    """pytorchcv PreResUnit: bn-relu-conv, bn-relu-conv; the projection reads the
    pre-activation; the sum is passed on without activation."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) \
            if stride != 1 or cin != cout else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        idn = x if self.proj is None else self.proj(pre)
        return self.conv2(F.relu(self.bn2(self.conv1(pre)))) + idn


class PreResNet(nn.Module):
    """preresnet20-style (pytorchcv `CIFARPreResNet`): init conv, pre-activation units,
    post-activation bn-relu, global average pool, fc."""

    def __init__(self, channels=(4, 8), blocks=1, classes=10, cin=3):
        super().__init__()
        self.init = nn.Conv2d(cin, channels[0], 3, 1, 1, bias=False)
        self.stages, c = _stages(PreResBlock, channels, blocks)
        self.post = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.post(self.stages(self.init(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DenseUnit(nn.Module):
    """pytorchcv DenseUnit: with `bottleneck` bn-relu-conv1x1 (4 g), bn-relu-conv3x3 (g),
    else bn-relu-conv3x3 (g); concat with the input. With `preact=False` (bottleneck only):
    conv-bn-relu twice (the next unit's conv reads the concatenation of spikes directly)."""

    def __init__(self, cin, growth, preact=True, bottleneck=True):
        super().__init__()
        mid = 4 * growth
        self.preact, self.bottleneck = preact, bottleneck
        if not bottleneck:
            if not preact:
                raise ValueError("DenseUnit(bottleneck=False) is pre-activation only")
            self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, growth, 3, 1, 1,
                                                                    bias=False)
            return
        self.bn1 = nn.BatchNorm2d(cin if preact else mid)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid if preact else growth)
        self.conv2 = nn.Conv2d(mid, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        if not self.bottleneck:
            y = self.conv1(F.relu(self.bn1(x)))
        elif self.preact:
            y = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        else:
            y = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return torch.cat([x, y], 1)


class Transition(nn.Module):
    """pytorchcv TransitionBlock: bn-relu-conv1x1-avgpool2."""

    def __init__(self, cin, cout):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2, 2)


class DenseNet(nn.Module):
    """densenet-style (pytorchcv `CIFARDenseNet`): init conv, dense stages with transitions,
    post bn-relu, global average pool, fc."""

    def __init__(self, init=8, growth=4, units=(2, 2), classes=10, cin=3, preact=True,
                 bottleneck=True):
        super().__init__()
        self.init = nn.Conv2d(cin, init, 3, 1, 1, bias=False)
        self.preact = preact
        layers, c = [], init
        for i, n in enumerate(units):
            if i > 0:
                layers.append(Transition(c, c // 2))
                c //= 2
            for _ in range(n):
                layers.append(DenseUnit(c, growth, preact, bottleneck))
                c += growth
        self.features = nn.Sequential(*layers)
        self.post = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.init(x)
        if not self.preact:
            x = F.relu(x)
        x = F.relu(self.post(self.features(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SmallNet(nn.Module):
    """The small net trained in the tests: conv-relu-maxpool, grouped dilated conv, a strided
    conv with asymmetric-free padding, fc (8x8 grey input, the digits' shape)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, 1, 1)
        self.c2 = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=2)
        self.c3 = nn.Conv2d(8, 8, 3, 2, 1)
        self.fc = nn.Linear(8 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.relu(self.c3(F.relu(self.c2(x))))
        return self.fc(torch.flatten(x, 1))


def init_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters (seeded), so that the converted SNN fires."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2)
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.8 + torch.rand(n, generator=g))
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4)
    return net.eval()
