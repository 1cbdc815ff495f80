"""Train the four "networks users bring" on Fashion-MNIST and export them to ONNX.

Plain PyTorch (not snnc's zoo), as a user would write them; trained here on CPU and exported with
the TorchScript exporter in eval mode (the exporter folds each Conv+BatchNorm pair). The nets are
kept under tests/trained/ with `accuracy.json` (their ANN test accuracy on the 10,000 Fashion-MNIST
test images) so that the conversion, cost and deployment work reuse them (docs/passes.md
"Conversion").

    OMP_NUM_THREADS=1 python tests/trained/make_nets.py [--epochs 4] [--only vgg,resnet]

Fashion-MNIST comes from Debian's `dataset-fashion-mnist` (snnc.data, docs/pytorch-backend.md
"Data"). Inputs are 1x28x28 floats in [0, 1], no mean/std normalisation.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
NAMES = ("vgg", "resnet", "preact", "densenet")
OPSET = 17


def cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class VGG(nn.Module):
    """VGG-style: conv-BN-ReLU pairs with average pooling, one linear classifier."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.features = nn.Sequential(cbr(1, w), cbr(w, w), nn.AvgPool2d(2),
                                      cbr(w, 2 * w), cbr(2 * w, 2 * w), nn.AvgPool2d(2),
                                      cbr(2 * w, 4 * w), nn.AvgPool2d(2))
        self.fc = nn.Linear(4 * w * 3 * 3, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class Basic(nn.Module):
    """He et al. 2016 basic block; a stride-2 1x1 conv + BN projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.proj is None else self.proj(x)))


class ResNet(nn.Module):
    """Small ResNet: a stride-2 stem, three stages (the last two open with stride-2 projection
    shortcuts)."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.stem = cbr(1, w, 2)
        self.blocks = nn.Sequential(Basic(w, w, 1), Basic(w, 2 * w, 2), Basic(2 * w, 4 * w, 2))
        self.fc = nn.Linear(4 * w, 10)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class PreAct(nn.Module):
    """He et al. 2016 (Identity Mappings) pre-activation block: BN-ReLU-conv twice; the projection
    shortcut reads the pre-activated input."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.b1 = nn.BatchNorm2d(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = F.relu(self.b1(x))
        skip = x if self.proj is None else self.proj(a)
        return self.c2(F.relu(self.b2(self.c1(a)))) + skip


class PreActResNet(nn.Module):
    """Pre-activation ResNet: a stride-2 conv stem, three pre-activation stages, a final
    BN-ReLU."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(1, w, 3, 2, 1, bias=False)
        self.blocks = nn.Sequential(PreAct(w, w, 1), PreAct(w, 2 * w, 2),
                                    PreAct(2 * w, 4 * w, 2))
        self.bn = nn.BatchNorm2d(4 * w)
        self.fc = nn.Linear(4 * w, 10)

    def forward(self, x):
        y = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class Dense(nn.Module):
    """Dense block (Huang et al. 2017): each layer's conv-BN-ReLU output is concatenated."""

    def __init__(self, cin: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(cbr(cin + i * growth, growth) for i in range(layers))
        self.out = cin + layers * growth

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class DenseNet(nn.Module):
    """DenseNet-style concat net: a stride-2 stem, two dense blocks, a 1x1 transition with
    average pooling."""

    def __init__(self, w: int = 16, growth: int = 12):
        super().__init__()
        self.stem = cbr(1, w, 2)
        self.d1 = Dense(w, growth, 3)
        self.t1 = nn.Sequential(nn.Conv2d(self.d1.out, 2 * w, 1, bias=False),
                                nn.BatchNorm2d(2 * w), nn.ReLU(), nn.AvgPool2d(2))
        self.d2 = Dense(2 * w, growth, 3)
        self.t2 = nn.AvgPool2d(2)
        self.fc = nn.Linear(self.d2.out, 10)

    def forward(self, x):
        y = self.t2(self.d2(self.t1(self.d1(self.stem(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def build(name: str) -> nn.Module:
    """A fresh, untrained net by name (one of NAMES)."""
    return {"vgg": VGG, "resnet": ResNet, "preact": PreActResNet, "densenet": DenseNet}[name]()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of `model` (eval mode) on images `x`, labels `y`."""
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, len(y), batch))
    return hits / len(y)


def train(name: str, epochs: int, seed: int = 0) -> tuple[nn.Module, float]:
    """Train net `name` on the 60k Fashion-MNIST training images; return it and its test acc."""
    from snnc.data import load_dataset

    tr, te = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    torch.manual_seed(seed)
    model = build(name)
    opt = torch.optim.Adam(model.parameters(), 2e-3, weight_decay=1e-4)
    steps = epochs * ((len(tr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        model.train()
        t0, perm = time.time(), torch.randperm(len(tr), generator=gen)
        for i in range(0, len(tr), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(tr.x[idx]), tr.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, te.x, te.y)
        print(f"{name} epoch {ep + 1}/{epochs}: loss {loss.item():.3f} test {acc:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return model.eval(), acc


def export(model: nn.Module, path: Path) -> Path:
    """TorchScript export (eval mode: BN folded into the preceding conv), batch-1 1x28x28."""
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, 1, 28, 28),), str(tmp), dynamo=False,
                          opset_version=OPSET, input_names=["image"], output_names=["logits"],
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--only", default=",".join(NAMES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    acc_file = HERE / "accuracy.json"
    for name in args.only.split(","):
        model, acc = train(name, args.epochs)
        p = export(model, HERE / f"{name}.onnx")
        accs = json.loads(acc_file.read_text()) if acc_file.is_file() else {}  # re-read: runs
        accs[name] = {"ann_test_accuracy": acc, "epochs": args.epochs, "file": p.name,
                      "test_images": 10000}
        tmp = acc_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(accs, indent=1, sort_keys=True) + "\n")
        tmp.replace(acc_file)
        print(f"wrote {p} ({p.stat().st_size / 1e3:.0f} kB), test accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
