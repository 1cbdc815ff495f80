"""fold-bn: golden structure cases and the numbers (interpreter on folded vs unfolded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from snnc.compiler.interpret import interpret
from snnc.compiler.ir import Graph
from snnc.compiler.core.passmanager import run_pipeline
from snnc.passes import parse_pass_spec
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify
from snnc.passes.fold_bn import fold_bn

GOLDEN = Path(__file__).parent / "golden" / "fold_bn"
CASES = sorted(p.name.removesuffix(".before.snnc") for p in GOLDEN.glob("*.before.snnc"))
UPDATE = os.environ.get("SNNC_UPDATE_GOLDEN") == "1"


def _random_params(g: Graph, seed: int = 0) -> Graph:
    """Give a parsed (structure-only) graph random weights and non-trivial BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for n in g.nodes:
        for key in n.params:
            role = key.rsplit(".", 1)[1]
            if n.op == "batchnorm":
                c = n.shape[1]
                lo, hi = {"weight": (0.5, 1.5), "bias": (-0.5, 0.5), "running_mean": (-1, 1),
                          "running_var": (0.2, 2.0)}[role]
                params[key] = lo + (hi - lo) * torch.rand(c, generator=gen)
            elif role == "weight":
                a = n.attrs
                shape = ((a["out"], a["in"] // a.get("groups", 1), *a["k"]) if n.op == "conv2d"
                         else (a["out"], a["in"]))
                params[key] = torch.randn(shape, generator=gen) * 0.3
            else:
                params[key] = torch.randn(n.attrs["out"], generator=gen) * 0.1
    return g.with_params(params)


@pytest.mark.parametrize("case", CASES)
def test_fold_bn_golden(case):
    before = parse((GOLDEN / f"{case}.before.snnc").read_text(), source=case)
    out = verify(fold_bn(verify(before)))
    after = GOLDEN / f"{case}.after.snnc"
    if UPDATE:
        after.write_text(print_ir(out))
    assert print_ir(out) == after.read_text()
    assert parse(print_ir(out)) == out


@pytest.mark.parametrize("case", CASES)
def test_fold_bn_numbers(case):
    """Folding keeps the function: W' = W*g/sqrt(v+eps), b' = (b-m)*g/sqrt(v+eps)+beta."""
    g = _random_params(verify(parse((GOLDEN / f"{case}.before.snnc").read_text())))
    folded = fold_bn(g)
    x = torch.randn(3, *g.input_nodes()[0].shape[1:], generator=torch.Generator().manual_seed(1))
    ref, got = interpret(g, x), interpret(folded, x)
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = got if isinstance(got, tuple) else (got,)
    for r, y in zip(ref, got):
        assert torch.allclose(y, r, rtol=1e-4, atol=1e-4 * r.abs().max().item())


def test_fold_bn_formula_one_channel():
    """The folded weights equal the formula of the docstring on a hand-checked case."""
    g = parse((GOLDEN / "conv_bn.before.snnc").read_text())
    w = torch.randn(4, 3, 3, 3)
    p = {"conv1.weight": w, "bn1.weight": torch.tensor([2.0, 1.0, 1.0, 0.5]),
         "bn1.bias": torch.tensor([1.0, 0.0, -1.0, 0.0]),
         "bn1.running_mean": torch.tensor([0.5, 0.0, 0.0, 1.0]),
         "bn1.running_var": torch.tensor([3.0, 1.0, 0.0, 0.25])}
    out = fold_bn(g.with_params(p))
    s = p["bn1.weight"] / torch.sqrt(p["bn1.running_var"] + 1e-5)
    assert torch.allclose(out.params["conv1.weight"][0], w[0] * 2.0 / (3.0 + 1e-5) ** 0.5)
    assert torch.allclose(out.params["conv1.bias"], (0 - p["bn1.running_mean"]) * s
                          + p["bn1.bias"])
    assert "bn1.weight" not in out.params and not out.by_op("batchnorm")


def test_fold_bn_registered_and_idempotent():
    g = verify(parse((GOLDEN / "preact_concat.before.snnc").read_text()))
    spec = parse_pass_spec("fold-bn")
    once = run_pipeline(g, [spec])
    assert run_pipeline(once, [spec]) == once
    assert [n.name for n in once.by_op("batchnorm")] == ["norm1"]
