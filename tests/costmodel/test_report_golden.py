"""`snnc cost MODEL --format json` against reports written before the whole path was made
faster (docs/costmodel.md "Speed"): the bundled example (models/examples/resnet20.onnx) on
generic, loihi1, loihi2 and with v2v residuals, and a pytorchcv-style DenseNet
(tests/cvnets.py, seed 0, exported to ONNX) on generic and loihi2. Every count and
figure must stay what it was (floats to 1e-5 relative: some come from float32 reductions, whose
last bits depend on the machine's SIMD width);
only the notes (prose) are left out. After an intended change of the cost model, rewrite the
files with SNNC_UPDATE_GOLDEN=1 and review their diff."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch

from snnc.compiler.cli import main
from tests import cvnets as nets

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "resnet20_generic": ("resnet20", ["--target", "generic"]),
    "resnet20_loihi1": ("resnet20", ["--target", "loihi1"]),
    "resnet20_loihi2": ("resnet20", ["--target", "loihi2"]),
    "resnet20_generic_v2v": ("resnet20", ["--target", "generic", "--residual", "v2v"]),
    "densenet_generic": ("dense", ["--target", "generic"]),
    "densenet_loihi2": ("dense", ["--target", "loihi2"]),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "dense.onnx"
    torch.manual_seed(0)
    net = nets.DenseNet().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False)
    return {"resnet20": ROOT / "models" / "examples" / "resnet20.onnx", "dense": path}


def _same(got, want, where="report"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-5,
                                                               abs_tol=1e-300), (where, got, want)
    else:
        assert got == want and type(got) is type(want), (where, got, want)


@pytest.mark.parametrize("case", list(CASES))
def test_cost_report_unchanged(case, files):
    name, args = CASES[case]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["cost", str(files[name]), "--format", "json", *args]) == 0
    got = json.loads(out.getvalue())
    got.pop("notes")
    path = GOLDEN / f"{case}.json"
    if os.environ.get("SNNC_UPDATE_GOLDEN"):  # review the diff after updating
        path.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
    _same(got, json.loads(path.read_text()))
