"""Small source nets for the fuzzing harness, exported by both torch exporters.

`tiny_cnn` covers the ops the ONNX importer converts (Conv, Relu, Clip, BatchNormalization
after a ReLU so that no exporter folds it, MaxPool, AveragePool, Add, Concat,
GlobalAveragePool, Flatten, Gemm); `mlp` a Flatten/Gemm chain; `mini_mobilenet` and
`mini_densenet` follow pytorchcv's definitions in miniature (depthwise separable blocks with
ReLU6; dense blocks concatenating their inputs); `zoo:resnet20` is the bundled CIFAR ResNet.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu6 = nn.ReLU6()
        self.conv3 = nn.Conv2d(16, 8, 1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.bn(torch.relu(self.conv1(x))))
        y = self.relu6(self.conv2(x)) + x
        y = self.avg(self.conv3(torch.cat([x, y], 1)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class MLP(nn.Module):
    input_shape = (1, 4, 4)

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 12), nn.Linear(12, 5)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class _DwsBlock(nn.Module):  # pytorchcv mobilenet's DwsConvBlock, in miniature
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                                nn.BatchNorm2d(cin), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                nn.ReLU6())

    def forward(self, x):
        return self.pw(self.dw(x))


class MiniMobileNet(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU6())
        self.blocks = nn.Sequential(_DwsBlock(8, 16, 1), _DwsBlock(16, 16, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Linear(16, 10)

    def forward(self, x):
        return self.output(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class _DenseUnit(nn.Module):  # pytorchcv densenet's DenseUnit (pre-activation), in miniature
    def __init__(self, cin, growth):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(cin), nn.Conv2d(cin, growth, 3, padding=1)

    def forward(self, x):
        return torch.cat([x, self.conv(torch.relu(self.bn(x)))], 1)


class MiniDenseNet(nn.Module):
    input_shape = (3, 12, 12)

    def __init__(self):
        super().__init__()
        self.init = nn.Conv2d(3, 8, 3, padding=1)
        self.units = nn.Sequential(_DenseUnit(8, 4), _DenseUnit(12, 4))
        self.trans = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1),
                                   nn.AvgPool2d(2))
        self.output = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        return self.output(torch.flatten(self.trans(self.units(self.init(x))), 1))


NETS = {"tiny_cnn": TinyCNN, "mlp": MLP, "mini_mobilenet": MiniMobileNet,
        "mini_densenet": MiniDenseNet}


def build(name: str) -> nn.Module:
    """Net `name` (a key of NETS, ``zoo:NAME`` or ``zoo:NAME@SIZE``) with seeded weights and
    BN statistics."""
    torch.manual_seed(0)
    if name.startswith("zoo:"):
        from snnc import models

        zoo, _, size = name[4:].partition("@")  # zoo:mobilenetv2@32: a 32x32 input
        kw = {"input_size": int(size), "num_classes": 10} if size else {}
        net = models.randomize_batchnorm(models.get(zoo, **kw), seed=1)
    else:
        net = NETS[name]()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def export(name: str, exporter: str, folder: Path) -> Path:
    """Export net `name` with `exporter` ("torchscript" or "dynamo") into `folder`; the
    dynamo exporter may write its weights as external data beside the file."""
    net = build(name)
    path = Path(folder) / f"{name.replace(':', '_').replace('@', '_')}-{exporter}.onnx"
    x = torch.randn(1, *net.input_shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        kw = {"verbose": False} if exporter == "dynamo" else {}
        torch.onnx.export(net, (x,), str(path), dynamo=exporter == "dynamo", **kw)
    return path
