"""Shared fixtures: zoo models with trained-like BN statistics, ONNX exports cached per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from snnc import models

# (test id, zoo name, options): small inputs so the suite stays fast
ZOO = [
    ("resnet20", "resnet20", {}),
    ("resnet38", "resnet38", {}),
    ("resnet44", "resnet44", {}),
    ("resnet18", "resnet18", {"input_size": 32}),
    ("resnet18_cifar", "resnet18", {"stem": "cifar", "num_classes": 10}),
    ("densenet121", "densenet121", {"input_size": 32, "num_classes": 10}),
    ("mobilenetv2", "mobilenetv2", {"input_size": 32, "num_classes": 10}),
    ("vgg11", "vgg11", {}),
]
ZOO_IDS = [z[0] for z in ZOO]


def build(zoo_id: str) -> torch.nn.Module:
    """The zoo model of `zoo_id`, seeded, BN randomised, in eval mode."""
    _, name, kw = next(z for z in ZOO if z[0] == zoo_id)
    torch.manual_seed(0)
    return models.randomize_batchnorm(models.get(name, **kw), seed=1).eval()


def example(model: torch.nn.Module, batch: int = 1, seed: int = 2) -> torch.Tensor:
    return torch.randn(batch, *model.input_shape, generator=torch.Generator().manual_seed(seed))


def export(model: torch.nn.Module, path: Path, *, dynamo: bool, opset: int | None = None,
           **kw) -> Path:
    """torch.onnx.export with either exporter, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = {"dynamo": dynamo}
        if opset is not None:
            args["opset_version"] = opset
        if dynamo:
            args["verbose"] = False
        torch.onnx.export(model, (example(model),), str(path), **args, **kw)
    return path


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """exports(zoo_id, exporter, opset=None) -> path of the cached .onnx export."""
    root = tmp_path_factory.mktemp("onnx_exports")
    cache: dict[tuple, Path] = {}

    def get(zoo_id: str, exporter: str, opset: int | None = None) -> Path:
        key = (zoo_id, exporter, opset)
        if key not in cache:
            path = root / f"{zoo_id}_{exporter}_{opset or 'default'}.onnx"
            cache[key] = export(build(zoo_id), path, dynamo=exporter == "dynamo", opset=opset)
        return cache[key]
    return get
