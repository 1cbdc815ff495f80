"""Fixtures shared by the whole suite: seeded torch, and ONNX exports of the zoo cached once
per test session (exporting densenet121 twice per test would cost minutes)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis profiles (loaded here, before any test module builds its `settings`, so that they
# inherit from it). "ci": derandomized (the same examples on every machine and every run) and no
# example database; chosen when CI is set (CI=true in CI; scripts/test.sh sets it too) or with
# HYPOTHESIS_PROFILE=ci. "dev": random exploration for local runs (HYPOTHESIS_PROFILE=dev).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

ZOO_TEST_SIZE = 32  # every zoo model at 32x32 keeps the suite fast


@pytest.fixture(autouse=True)
def _seed_torch():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """`zoo_onnx(name, exporter="torchscript"|"dynamo", opset=None) -> Path`, cached."""
    import torch

    from snnc import models

    root = tmp_path_factory.mktemp("zoo-onnx")
    cache: dict[tuple, Path] = {}

    def get(name: str, exporter: str = "torchscript", opset: int | None = None) -> Path:
        key = (name, exporter, opset)
        if key not in cache:
            torch.manual_seed(0)
            net = models.get(name, input_size=ZOO_TEST_SIZE).eval()
            x = torch.randn(1, *net.input_shape)
            path = root / f"{name}-{exporter}-{opset or 'default'}.onnx"
            kw = {} if opset is None else {"opset_version": opset}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (x,), str(path), dynamo=(exporter == "dynamo"), **kw)
            cache[key] = path
        return cache[key]

    return get
