"""Every zoo model through both front ends and both torch ONNX exporters.

Checks (docs/design.md "The IR"): the ONNX IR equals the fx IR up to names once BN is folded on
both sides (fold-bn on the fx side; the exporters fold it themselves), and the interpreted
ANN-form IR reproduces torch and onnxruntime within rtol 1e-4, atol 1e-4 x max|reference|.
"""

from __future__ import annotations

import pytest
import torch

from snnc.compiler.compare import check_equivalence, explain_difference, same_up_to_names
from snnc.compiler.frontends import import_model
from snnc.compiler.frontends.fx import from_torch
from snnc.compiler.frontends.onnx import from_onnx
from snnc.compiler.verify import verify
from snnc.passes.fold_bn import fold_bn

from .conftest import ZOO_IDS, build, example

# resnet18's CIFAR stem only differs from the ImageNet one in the stem: TorchScript only
CASES = [(z, e) for z in ZOO_IDS for e in ("torchscript", "dynamo")
         if not (z == "resnet18_cifar" and e == "dynamo")]


@pytest.fixture(scope="module")
def fx_graphs():
    cache = {}

    def get(zoo_id):
        if zoo_id not in cache:
            cache[zoo_id] = verify(from_torch(build(zoo_id)))
        return cache[zoo_id]
    return get


@pytest.mark.parametrize("zoo_id", ZOO_IDS)
def test_fx_interpreted_matches_torch(zoo_id, fx_graphs):
    model = build(zoo_id)
    g = fx_graphs(zoo_id)
    x = example(model, batch=2)
    report = check_equivalence(g, model, x)
    assert report.ok, str(report)
    g_folded = fold_bn(g)
    folded = check_equivalence(g_folded, model, x)
    assert folded.ok, str(folded)
    assert g.by_op("batchnorm") and len(g_folded.by_op("batchnorm")) < len(g.by_op("batchnorm"))


@pytest.mark.parametrize("zoo_id,exporter", CASES)
def test_onnx_matches_fx_and_onnxruntime(zoo_id, exporter, exports, fx_graphs):
    path = exports(zoo_id, exporter)
    g = verify(from_onnx(path))
    diff = explain_difference(fold_bn(fx_graphs(zoo_id)), fold_bn(g))
    assert diff is None, diff
    report = check_equivalence(g, path, example(build(zoo_id), seed=5))
    assert report.ok, str(report)
    assert report.reference.startswith("onnxruntime")


def test_import_model_dispatches(exports):
    model = build("resnet20")
    g_fx = import_model(model)
    g_onnx = import_model(str(exports("resnet20", "torchscript")))
    assert same_up_to_names(fold_bn(g_fx), g_onnx)
    assert [n.name for n in g_fx.nodes[:3]] == ["x", "conv1", "bn1"]
    assert g_fx.params["conv1.weight"].dtype == torch.float32
    assert g_fx.params["conv1.weight"] is not model.conv1.weight  # cloned, not shared
    assert torch.equal(g_fx.params["conv1.weight"], model.conv1.weight)
