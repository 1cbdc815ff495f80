"""models/examples/resnet20.onnx: a real torch export of our seeded S-ResNet20."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import torch

from snnc.compiler.compare import check_equivalence, explain_difference
from snnc.compiler.frontends.fx import from_torch
from snnc.compiler.frontends.onnx import from_onnx
from snnc.passes.fold_bn import fold_bn

EXAMPLES = Path(__file__).resolve().parents[2] / "models" / "examples"


def _maker():
    spec = importlib.util.spec_from_file_location("make_examples",
                                                  EXAMPLES / "make_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_resnet20_example_is_what_the_script_builds():
    path = EXAMPLES / "resnet20.onnx"
    assert 0.5e6 < path.stat().st_size < 2e6
    proto = onnx.load(str(path))
    assert proto.producer_name == "pytorch" and proto.opset_import[0].version == 20
    model = _maker().resnet20_example()
    g = from_onnx(path)
    assert g.input_nodes()[0].shape == (1, 3, 32, 32) and g.node(g.outputs[0]).shape == (1, 10)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    report = check_equivalence(g, model, x)
    assert report.ok, str(report)
    assert explain_difference(fold_bn(from_torch(model)), g) is None


def test_regeneration_matches(tmp_path):
    """The script reproduces the shipped file's weights within float32 rounding: the exporter
    folds BN into the convs (W*g/sqrt(v+eps)), whose last bit depends on the CPU's SIMD path,
    so bit equality would fail on another machine (docs/frontends.md "Bundled example")."""
    fresh = _maker().write_resnet20(tmp_path / "r20.onnx")
    a = {t.name: onnx.numpy_helper.to_array(t)
         for t in onnx.load(str(EXAMPLES / "resnet20.onnx")).graph.initializer}
    b = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(fresh)).graph.initializer}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
        # a few ulps of float32 on the largest value: rounding, not a different weight
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6,
                                   atol=4 * np.finfo(np.float32).eps * float(np.abs(a[k]).max()),
                                   err_msg=k)
