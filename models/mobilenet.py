"""mobilenetv2: inverted residuals with ReLU6 and a linear bottleneck (Sandler et al. 2018).

Inverted residual: 1x1 expand (t x channels) + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1
project + BN with no activation; ``x + block(x)`` when stride 1 and channels unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from snnc.models import register_model

# t (expansion), c (channels), n (repeats), s (stride of the first repeat)
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1)]


def _divisible(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class ConvBNReLU6(nn.Sequential):
    """conv (no bias) + BN + ReLU6."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand, depthwise, linear project; identity skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if t != 1:
            layers.append(ConvBNReLU6(cin, hidden, 1))
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """Stem conv, 17 inverted residuals, 1x1 conv to 1280, global pool, dropout, linear."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, in_channels: int = 3,
                 input_size: int = 224, stem_stride: int = 2, dropout: float = 0.2):
        super().__init__()
        self.input_shape = (in_channels, input_size, input_size)
        c = _divisible(32 * width_mult)
        last = _divisible(1280 * max(1.0, width_mult))
        feats: list[nn.Module] = [ConvBNReLU6(in_channels, c, 3, stem_stride)]
        for t, ch, n, s in SETTINGS:
            out = _divisible(ch * width_mult)
            for i in range(n):
                feats.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        feats.append(ConvBNReLU6(c, last, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean((2, 3))  # global average pool, as torchvision writes it
        return self.classifier(x)


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 1000, in_channels: int = 3, input_size: int = 224,
                width_mult: float = 1.0, stem_stride: int | None = None) -> MobileNetV2:
    """MobileNetV2; `stem_stride` defaults to 2 (ImageNet) or 1 for inputs under 64x64."""
    if stem_stride is None:
        stem_stride = 2 if input_size >= 64 else 1
    return MobileNetV2(num_classes, width_mult, in_channels, input_size, stem_stride)
