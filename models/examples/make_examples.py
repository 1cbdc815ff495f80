"""Regenerate the example ONNX files shipped in models/examples/ (deterministic).

    python models/examples/make_examples.py     # or: python -m snnc.models.examples.make_examples

resnet20.onnx: paper 2's S-ResNet20 (16 base filters, 3x32x32 input, 10 classes) with seeded
random weights and trained-like BatchNorm statistics (torch.manual_seed(0), BN seed 1),
exported by torch's TorchScript exporter (dynamo=False, opset 20, eval mode, so BN is folded
into the convolutions). It is the model of the README's ``snnc compile`` command; it is not
trained, so its predictions mean nothing -- it exists to show the compiler working.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
OPSET = 20


def resnet20_example() -> torch.nn.Module:
    """The exact module exported to resnet20.onnx (eval mode)."""
    from snnc import models

    torch.manual_seed(0)
    net = models.get("resnet20", num_classes=10, input_size=32)
    return models.randomize_batchnorm(net, seed=1).eval()


def write_resnet20(path: Path = HERE / "resnet20.onnx") -> Path:
    """Export :func:`resnet20_example` to `path` with a batch-1 3x32x32 input named 'image'."""
    model = resnet20_example()
    x = torch.zeros(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["logits"])
    return path


if __name__ == "__main__":
    p = write_resnet20()
    print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB)")
