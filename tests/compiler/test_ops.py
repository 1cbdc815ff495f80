"""The op table (compiler/core/ops.py) and every per-op registry agree: each op has a shape
rule, payload rule, interpreter rule, PyTorch builder, cost rule, importer source and emitter
branch, or the table lists it as deliberately unsupported by that component (docs/ir.md "Op
support")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from snnc.compiler.core import ops
from snnc.compiler.core.ops import OPS, supported

ROOT = Path(__file__).resolve().parents[2]


def test_derived_sets():
    from snnc.compiler.core import ir

    assert ir.SPIKING_OPS == {"encoder", "lif", "bntt", "readout", "vote"}
    assert ir.WEIGHTED_OPS == {"conv2d", "linear"}
    assert all(OPS[o].form == "snn" for o in ir.SPIKING_OPS)


def test_shape_rules():
    from snnc.compiler.core.shapes import SHAPE_RULES

    assert set(SHAPE_RULES) == supported("shape")


def test_payload_rules():
    from snnc.compiler.core.payload import PAYLOAD_RULES

    assert set(PAYLOAD_RULES) == supported("payload")


def test_interpreter_rules():
    from snnc.compiler.core.interpret import BOUND_OPS, INTERPRETERS

    assert set(INTERPRETERS) | BOUND_OPS == supported("interpret")


def test_pytorch_builders():
    from snnc.backends.pytorch.module import RUN_BY_MODULE
    from snnc.backends.pytorch.ops import EMITTERS

    assert set(EMITTERS) | RUN_BY_MODULE == supported("pytorch")
    assert not set(EMITTERS) & RUN_BY_MODULE


def test_cost_rules():
    from snnc.costmodel.connectivity import _RULES
    from snnc.costmodel.counting import NEURON_OPS

    # weighted ops are priced by their connectivity; neurons by their updates; every other op
    # passes activity on (costmodel.activity.propagate handles every op)
    assert set(_RULES) == ops.WEIGHTED_OPS
    assert set(NEURON_OPS) <= ops.SPIKING_OPS
    assert supported("cost") == set(OPS)


def test_onnx_importer_accepts_exactly_the_table_sources():
    from snnc.compiler.frontends.onnx_ops import ONNX_CONVERTERS, onnx_converter

    assert set(ONNX_CONVERTERS) == set(ops.ONNX_SOURCES)
    with pytest.raises(ValueError, match="Softmax has no IR op in compiler/core/ops.py"):
        onnx_converter("Softmax")(lambda ctx, node: None)


def test_fx_importer_accepts_exactly_the_table_sources():
    import torch

    from snnc.compiler.frontends.fx_ops import (FUNCTION_CONVERTERS, METHOD_CONVERTERS,
                                                MODULE_CONVERTERS, fx_converter, table_sources)

    registered = [*MODULE_CONVERTERS, *FUNCTION_CONVERTERS, *METHOD_CONVERTERS]
    table = table_sources()
    assert all(any(t is s or t == s for s in table) for t in registered)
    assert all(any(t is s or t == s for s in registered) for t in table)
    with pytest.raises(ValueError, match="has no IR op in compiler/core/ops.py"):
        fx_converter(torch.nn.GELU)(lambda m, n, ctx: [])


def test_nir_builders():
    pytest.importorskip("nir", reason="pip install 'snnc[nir]'")
    from snnc.backends.nir import _BUILDERS

    assert set(_BUILDERS) == supported("nir")


def test_lava_rules():
    from snnc.backends.lava.lowering import _VALUE_RULES, _WEIGHT_RULES, MAPPED_ELSEWHERE

    mapped = set(_VALUE_RULES) | set(_WEIGHT_RULES) | MAPPED_ELSEWHERE
    assert mapped == supported("lava")


@pytest.mark.parametrize("component", ["lava", "nir"])
def test_emitters_refuse_what_the_table_marks_unsupported(component):
    """The Lava and NIR emitters refuse, with the table's reason, any op it marks unsupported
    (a maxpool in an SNN-form graph here)."""
    from snnc.compiler.core.errors import UnsupportedOp
    from snnc.compiler.core.text import parse

    g = parse("""graph t(%x: f32[1,2,4,4]) snn {
  %enc = encoder(%x) {kind=direct}                          : f32[1,2,4,4]
  %c = conv2d(%enc) {in=2, out=2, k=(1,1)} [c.weight]        : f32[1,2,4,4]
  %l = lif(%c) {leak=1.0, vth=1.0, reset=zero, fire=gt}     : f32[1,2,4,4]
  %p = maxpool(%l) {k=(2,2), stride=(2,2)}                  : f32[1,2,2,2]
  %f = flatten(%p) {start=1}                                : f32[1,8]
  %fc = linear(%f) {in=8, out=2} [fc.weight]                : f32[1,2]
  %r = readout(%fc)                                          : f32[1,2]
  return %r
}""")
    import torch

    g = g.with_params({"c.weight": torch.ones(2, 2, 1, 1), "fc.weight": torch.ones(2, 8)})
    if component == "lava":
        from snnc.backends.lava.lowering import lower as emit
    else:
        pytest.importorskip("nir", reason="pip install 'snnc[nir]'")
        from snnc.backends.nir import to_nir as emit
    with pytest.raises(UnsupportedOp) as err:
        emit(g)
    assert "node 'p' (op maxpool)" in str(err.value)
    assert ops.why_unsupported("maxpool", component) in str(err.value)


def _doc_ops(section: str) -> dict[str, str]:
    text = (ROOT / "docs" / "ir.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): line for line in body.splitlines()
            if (m := re.match(r"\| `([a-z_0-9]+)` \|", line))}


def test_docs_op_lists_match_the_table():
    ann, snn = _doc_ops("Ops (ANN form)"), _doc_ops("Ops (SNN form)")
    assert set(ann) == {o for o, s in OPS.items() if s.form in ("ann", "both")}
    assert set(snn) == set(ops.SPIKING_OPS)
    for name, row in {**ann, **snn}.items():
        for word in (*OPS[name].attrs, *OPS[name].params):
            assert f"`{word}`" in row, f"docs/ir.md: op {name} does not list `{word}`"


def test_docs_support_table_is_generated_from_the_table():
    text = (ROOT / "docs" / "ir.md").read_text()
    block = text.split("<!-- op-support: generated from compiler/core/ops.py -->\n", 1)[1]
    block = block.split("<!-- /op-support -->", 1)[0]
    assert block == ops.markdown(), ("docs/ir.md 'Op support' is stale: replace the block "
                                     "with the output of `python -m snnc.compiler.core.ops`")
