"""NIR export: files read back with nir.read and run in snnTorch (its NIR importer) with the
same outputs as snnc's PyTorch backend (zero reset, fire on >, no synaptic delay).

Tolerance: |difference| <= 1e-6 on the time-averaged output (float32 summation order; the
spike trains are the same, a single differing spike would move it by >= |w|/T ~ 1e-3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nir")
pytest.importorskip("snntorch")

import nir  # noqa: E402

from snnc.backends import nir as snir  # noqa: E402
from snnc.backends.pytorch import build_module  # noqa: E402
from snnc.compiler.errors import UnsupportedOp  # noqa: E402
from snnc.compiler.frontends.fx import from_torch  # noqa: E402
from snnc.compiler.passmanager import run_pipeline  # noqa: E402
from snnc.passes.pipeline import conversion_pipeline  # noqa: E402
from tests.lava import nets  # noqa: E402  (the same small networks as the Lava tests)


TOL = 1e-6


def _compile(model, residual="s2s", reset="zero", target="generic"):
    torch.manual_seed(0)
    m = model.eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.0)
    g = run_pipeline(from_torch(m, torch.zeros(1, *nets.SHAPE)),
                     conversion_pipeline(residual=residual, target=target, timesteps=nets.T,
                                         encoder="events", bntt=False, semantics="paper",
                                         leak=0.875))
    b = g.edit()
    for n in g.by_op("lif"):  # NIR's LIF resets to a value: the zero-reset, fire-on-> neuron
        b.replace_node(type(n)(n.name, n.op, n.attrs.set(reset=reset, fire="gt"), n.shape,
                               n.params))
    return b.build()


def _snntorch_run(path, x):
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(nir.read(str(path)))
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            o, state = net(x[t], state)
            outs.append(o)
    return torch.stack(outs)


@pytest.mark.parametrize("model,residual", [
    (nets.SeqConv, "s2s"), (nets.Residual, "s2m"), (nets.Residual, "s2s"),
    (nets.Residual, "v2v"), (nets.Dense, "s2s")])
def test_roundtrip_and_snntorch_matches(tmp_path, model, residual):
    g = _compile(model(), residual)
    path = snir.export(g, tmp_path / "model.nir")
    back = nir.read(str(path))
    assert isinstance(back, nir.NIRGraph)
    assert {type(n).__name__ for n in back.nodes.values()} >= {"Input", "Output", "LIF"}
    assert int(back.metadata["snnc.timesteps"]) == nets.T
    x = torch.from_numpy(nets.events(1, seed=1)[0][:, None])
    with torch.no_grad():
        y = build_module(g).eval()(x)
    o = _snntorch_run(path, x)
    assert y.abs().sum() > 0
    # same spikes; the time average differs only by float32 summation order
    np.testing.assert_allclose(o.mean(0).numpy().reshape(-1), y.numpy().reshape(-1),
                               rtol=0, atol=TOL)


def test_dsc_is_split_per_source():
    ng = snir.to_nir(_compile(nets.Dense()))
    assert "c3__dsc1" in ng.nodes and ("c3__dsc1", "relu_2") in ng.edges
    assert ng.nodes["c3"].weight.shape[1] + ng.nodes["c3__dsc1"].weight.shape[1] == 8


def test_subtractive_reset_is_refused():
    with pytest.raises(UnsupportedOp, match="reset by subtraction"):
        snir.to_nir(_compile(nets.SeqConv(), reset="subtract"))


def test_target_exact_delay_is_refused_unless_allowed():
    g = nets.compile_net(nets.SeqConv())
    with pytest.raises(UnsupportedOp, match="no delay node"):
        snir.to_nir(g)
    assert snir.to_nir(g, allow_delay_drop=True).metadata["snnc.synaptic_delay"] == 1


def _onnx(path):
    torch.manual_seed(0)
    torch.onnx.export(nets.SeqConv().eval(), torch.zeros(1, *nets.SHAPE), str(path),
                      input_names=["x"], output_names=["logits"])
    return path


@pytest.mark.parametrize("options,why", [
    (["--target", "loihi2"], "no delay node"),  # target-exact: one synaptic delay per layer
    (["--target", "generic"], "reset by subtraction"),  # the paper's neuron (eq. 3-6)
])
def test_cli_emit_nir_refusal_is_clean(tmp_path, capsys, options, why):
    """`snnc compile --emit nir` on a graph NIR cannot express: exit 2, one `snnc: error:`
    naming the graph (and the node where one is at fault), no output directory left."""
    from snnc.compiler.cli import main

    d = tmp_path / "out"
    rc = main(["compile", str(_onnx(tmp_path / "seq.onnx")), "-o", str(d), "--encoder",
               "events", "--no-bntt", "--no-cost", "--emit", "torch,nir", *options])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("snnc: error: ") and "Traceback" not in err
    assert why in err and "graph '" in err
    if why == "reset by subtraction":
        assert "(op lif)" in err
    assert not d.exists() and not list(tmp_path.glob(".out*"))


def test_cli_emit_nir_for_a_zero_reset_zoo_model(tmp_path, capsys):
    """`snnc compile zoo:resnet20 --reset zero --no-bntt --emit nir` writes a model.nir that
    nir.read reads back and snnTorch's importer runs to the same output as snnc's module
    (global average pooling lowered to AvgPool2d, S2S sums as summed edges)."""
    from snnc.compiler import load
    from snnc.compiler.cli import main

    out = tmp_path / "r20.snnc"
    code = main(["compile", "zoo:resnet20", "--reset", "zero", "--no-bntt", "--emit",
                 "torch,nir", "-T", "4", "--no-cost", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    back = nir.read(str(out / "model.nir"))
    kinds = {type(n).__name__ for n in back.nodes.values()}
    assert {"Input", "Output", "LIF", "Conv2d", "AvgPool2d", "Affine"} <= kinds
    module = load(out).to_torch().eval()
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 32) * 3
    with torch.no_grad():
        y = module(x)
    o = _snntorch_run(out / "model.nir", x[None].expand(4, -1, -1, -1, -1))
    assert y.abs().sum() > 0
    np.testing.assert_allclose(o.mean(0).numpy().reshape(-1), y.numpy().reshape(-1),
                               rtol=0, atol=TOL)
