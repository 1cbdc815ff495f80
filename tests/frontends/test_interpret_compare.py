"""The interpreter's skip-edge semantics, its registry error, and the graph comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnc.compiler.compare import check_equivalence, explain_difference, same_up_to_names
from snnc.compiler.errors import SnncError, VerifyError
from snnc.compiler.frontends.fx import from_torch
from snnc.compiler.interpret import interpret
from snnc.compiler.ir import Attrs, Edge, EdgeKind, GraphBuilder, Node
from snnc.compiler.text import parse

DSC = """
graph dsc(%x: f32[1,4,3,3]) ann {
  %conv = conv2d(%x) {in=4, out=2, k=(1,1), bias=false} [conv.weight] : f32[1,2,3,3]
  %cat = concat(%conv, %x ~DSC n=1 fraction=0.5) {axis=1} : f32[1,6,3,3]
  return %cat
}
"""

ASC = """
graph asc(%x: f32[1,2,4,4]) ann {
  %conv = conv2d(%x) {in=2, out=3, k=(1,1), stride=(2,2), bias=false} [conv.weight] : f32[1,3,2,2]
  %p = conv2d(%x) {in=2, out=3, k=(1,1), stride=(2,2), bias=true} [p.weight, p.bias] : f32[1,3,2,2]
  %add = add(%conv, %x ~ASC n=1 proj=%p) : f32[1,3,2,2]
  return %add
}
"""


def test_dsc_fraction_takes_first_channels():
    """Paper 1's generalised DSC: round(fraction * C) = 2 of the source's 4 channels."""
    g = parse(DSC)
    w = torch.randn(2, 4, 1, 1)
    g = g.with_params({"conv.weight": w})
    x = torch.randn(2, 4, 3, 3)
    y = interpret(g, x)
    assert y.shape == (2, 4, 3, 3)
    assert torch.allclose(y[:, :2], torch.nn.functional.conv2d(x, w))
    assert torch.equal(y[:, 2:], x[:, :2])


def test_asc_reads_the_projection():
    g = parse(ASC)
    p = {"conv.weight": torch.randn(3, 2, 1, 1), "p.weight": torch.randn(3, 2, 1, 1),
         "p.bias": torch.randn(3)}
    x = torch.randn(1, 2, 4, 4)
    y = interpret(g.with_params(p), x)
    F = torch.nn.functional
    want = F.conv2d(x, p["conv.weight"], stride=2) + F.conv2d(x, p["p.weight"], p["p.bias"],
                                                             stride=2)
    assert torch.allclose(y, want)


def test_unknown_op_names_registration():
    b = GraphBuilder("g", params={})
    b.add(Node("x", "input", shape=(1, 2)))
    b.add(Node("r", "relu", shape=(1, 2)), ["x"])
    b.outputs = ["r"]
    g = b.build()
    g = g.edit()
    g.replace_node(Node("r", "softplus", shape=(1, 2)))
    g = g.build(check=False)
    with pytest.raises(VerifyError,
                       match=r"node 'r' has op 'softplus'.*@interpreter\('softplus'\)"):
        interpret(g, torch.randn(1, 2))


def test_structure_only_graph_refused():
    with pytest.raises(SnncError, match="structure only"):
        interpret(parse(DSC), torch.randn(1, 4, 3, 3))


class Two(nn.Module):
    def __init__(self, swap=False, k=3):
        super().__init__()
        self.a = nn.Conv2d(3, 4, k, padding=k // 2)
        self.b = nn.Conv2d(3, 4, 1)
        self.drop = nn.Dropout()
        self.swap = swap

    def forward(self, x):
        # the two branches are independent: listing order must not matter
        if self.swap:
            b = self.b(x)
            a = self.a(x)
        else:
            a = self.a(x)
            b = self.b(x)
        return self.drop(torch.relu(a + b))


def test_same_up_to_names_ignores_order_and_names():
    g1 = from_torch(Two(False), input_shape=(3, 5, 5))
    g2 = from_torch(Two(True), input_shape=(3, 5, 5), name="other")
    assert g1.position("a") < g1.position("b") and g2.position("b") < g2.position("a")
    assert same_up_to_names(g1, g2)
    assert same_up_to_names(g1, g2, ignore=())  # dropout on both sides
    assert not same_up_to_names(g1, from_torch(Two(k=1), input_shape=(3, 5, 5)))


def test_difference_is_explained():
    g1 = from_torch(Two(), input_shape=(3, 5, 5))
    g3 = from_torch(Two(k=5), input_shape=(3, 5, 5))
    why = explain_difference(g1, g3)
    assert why is not None and "k=(5,5)" in why and "k=(3,3)" in why
    b = g1.edit()
    e = next(e for e in b.edges if e.dst.endswith("add") and e.port == 1)
    b.replace_edge(e, Edge(e.src, e.dst, e.port, EdgeKind.ASC, 1, None, None, Attrs()))
    why = explain_difference(g1, b.build())
    assert why is not None and "ASC" in why


def test_check_equivalence_reports_a_mismatch():
    model = Two().eval()
    g = from_torch(model, input_shape=(3, 5, 5))
    x = torch.randn(2, 3, 5, 5)
    assert check_equivalence(g, model, x).ok
    params = dict(g.params)
    params["b.bias"] = params["b.bias"] + 1e-2
    report = check_equivalence(g.with_params(params), model, x)
    assert not report.ok and "MISMATCH" in str(report) and report.max_abs_err > 1e-3


def test_check_command(capsys, tmp_path):
    from pathlib import Path

    from snnc.compiler.compare import _check_main

    example = Path(__file__).resolve().parents[2] / "models" / "examples" / "resnet20.onnx"
    assert _check_main([str(example), "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "resnet20.onnx" in out and "OK: interpreted IR vs onnxruntime" in out
    bad = tmp_path / "x.onnx"
    bad.write_text("hello")
    assert _check_main([str(bad)]) == 2
    assert "text file" in capsys.readouterr().out


def test_node_outputs_yields_every_node_in_order():
    """node_outputs (what calibration reads) runs each non-input node once, in topological
    order, and its last value is interpret's output."""
    from snnc.compiler.core.interpret import node_outputs

    g = parse(ASC)
    g = g.with_params({"conv.weight": torch.randn(3, 2, 1, 1), "p.weight": torch.randn(3, 2, 1, 1),
                       "p.bias": torch.randn(3)})
    x = torch.randn(2, 2, 4, 4)
    env = {"x": x}
    seen = [(n.name, y) for n, y in node_outputs(g, env)]
    assert [n for n, _ in seen] == [n.name for n in g.nodes if n.op != "input"]
    assert all(env[n] is y for n, y in seen)
    assert torch.equal(seen[-1][1], interpret(g, x))
