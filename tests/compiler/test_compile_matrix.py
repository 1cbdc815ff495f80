"""`compile` succeeds on every zoo model exported to ONNX by both torch exporters, for each
residual mode and each target (issue 2, "done when"). Runs in-process with cached exports:
each (model, exporter) is imported once, then the conversion pipeline runs for every
(residual, target) pair and the SNN graph is verified, printed and parsed back."""

from __future__ import annotations

import pytest

from snnc import models
from snnc.compiler import compile
from snnc.compiler.api import import_ann
from snnc.compiler.ir import EdgeKind, Form
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify

TARGETS = ["generic", "loihi1", "loihi1-sanafe", "loihi2", "truenorth", "speck", "cmos45"]
RESIDUALS = ["s2s", "s2m", "v2v"]
_ANN: dict = {}


def _ann(zoo_onnx, name, exporter):
    key = (name, exporter)
    if key not in _ANN:
        _ANN[key] = import_ann(str(zoo_onnx(name, exporter)))
    return _ANN[key]


def test_the_matrix_covers_every_target_and_zoo_model():
    from snnc.compiler.targets import available_targets

    assert set(TARGETS) <= set(available_targets())
    assert len(models.available()) >= 7


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", models.available())
def test_compile_every_residual_and_target(zoo_onnx, name, exporter):
    ann = _ann(zoo_onnx, name, exporter)
    n_asc = sum(e.kind is EdgeKind.ASC for e in ann.edges)
    n_dsc = sum(e.kind is EdgeKind.DSC for e in ann.edges)
    for residual in RESIDUALS:
        for target in TARGETS:
            c = compile(ann, residual=residual, target=target, timesteps=2)
            g = verify(c.graph)
            assert g.form is Form.SNN and g.attrs["lowered"] is True
            assert not any(e.kind is EdgeKind.ASC for e in g.edges), (residual, target)
            lowered = sum(e.kind in (EdgeKind.S2S, EdgeKind.S2M, EdgeKind.V2V) for e in g.edges)
            assert lowered == n_asc, (residual, target)
            assert sum(e.kind is EdgeKind.DSC for e in g.edges) == n_dsc
            assert g.by_op("lif") and g.by_op("readout")
            assert parse(print_ir(g)) == g
