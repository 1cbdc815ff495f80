"""`--bn {bntt,shared,fold}` (docs/passes.md "Batch-norm modes"): the pipeline, the pass, the
Python API, the CLI and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snnc.compiler import compile, load
from snnc.compiler.cli import main
from snnc.compiler.errors import SnncError
from snnc.compiler.options import Options
from snnc.models.sresnet import resnet20
from snnc.passes.pipeline import conversion_pipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "examples" / "resnet20.onnx"


def _bn_specs(**kw):
    return [(s.name, dict(s.options)) for s in conversion_pipeline(**kw)
            if s.name in ("bn-to-bntt", "fold-bn")]


def test_pipeline_per_mode():
    assert _bn_specs() == [("bn-to-bntt", {"missing": "identity"})]
    assert _bn_specs(bn="shared") == [("bn-to-bntt", {"missing": "identity", "mode": "shared"})]
    assert _bn_specs(bn="fold") == [("fold-bn", {})]
    assert _bn_specs(bntt=False) == _bn_specs(bn="fold")  # the older flag
    with pytest.raises(SnncError, match="bn='time'"):
        conversion_pipeline(bn="time")


def _net():
    torch.manual_seed(0)
    net = resnet20(base=4, in_channels=3, num_classes=10)
    for m in net.modules():  # non-trivial BN statistics and affine, distinct per layer
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _ops(g):
    return {n.op for n in g.nodes}


def test_shared_keeps_one_bn_per_layer_with_the_anns_tensors():
    net = _net()
    shared = compile(net, timesteps=3, bn="shared").graph
    bntt = compile(net, timesteps=3, bn="bntt").graph
    fold = compile(net, timesteps=3, bn="fold").graph
    assert "bntt" not in _ops(shared) and "batchnorm" in _ops(shared)
    assert "batchnorm" not in _ops(bntt) and "bntt" in _ops(bntt)
    assert not {"batchnorm", "bntt"} & _ops(fold)
    bns = shared.by_op("batchnorm")
    assert len(bns) == len(bntt.by_op("bntt"))
    for n in bns:  # [C], equal to row t of the BNTT made from the same BN
        for role in ("weight", "bias", "running_mean", "running_var"):
            p = shared.param(n.param(role))
            assert p.shape == (n.shape[1],)
            torch.testing.assert_close(bntt.param(f"{n.name}.{role}")[2], p, rtol=0, atol=0)


def test_shared_inserts_identity_bn_where_the_exporter_folded_it():
    c = compile(str(EXAMPLE), timesteps=2, bn="shared")  # eval-mode ONNX: BN folded away
    added = [n for n in c.graph.by_op("batchnorm") if n.attrs.get("init") == "identity"]
    assert added and all(n.name.endswith("_bn") for n in added)
    fold = compile(str(EXAMPLE), timesteps=2, bn="fold")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # identity in eval: the same function as without the BNs
        torch.testing.assert_close(c.to_torch().eval()(x), fold.to_torch().eval()(x))


def test_python_api_and_old_flag():
    net = _net()
    assert compile(net, timesteps=2, bntt=False).options.bn == "fold"
    assert compile(net, Options(bntt=False), timesteps=2).options.bn == "fold"
    assert Options(bntt=False) == Options(bn="fold") and Options(bntt=False).bntt is None
    with pytest.raises(SnncError, match="disagree"):
        Options(bn="shared", bntt=False)
    assert compile(net, timesteps=2).options.bn == "bntt"
    with pytest.raises(SnncError, match="bn='x'"):
        compile(net, timesteps=2, bn="x")


def test_cli_bn_option_and_manifest(tmp_path, capsys):
    out = tmp_path / "s.snnc"
    assert main(["compile", str(EXAMPLE), "--bn", "shared", "-T", "2", "--no-cost",
                 "-o", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["options"]["bn"] == "shared"
    assert "batchnorm(" in (out / "graph.snnc").read_text()
    assert main(["compile", str(EXAMPLE), "--no-bntt", "-T", "2", "--no-cost",
                 "-o", str(tmp_path / "f.snnc")]) == 0
    assert load(tmp_path / "f.snnc").options.bn == "fold"
    capsys.readouterr()
    code = main(["compile", str(EXAMPLE), "--bn", "shared", "--no-bntt", "-o",
                 str(tmp_path / "x.snnc")])
    assert code == 2 and "disagree" in capsys.readouterr().err
    assert not (tmp_path / "x.snnc").exists()


def test_manifest_written_before_bn_existed_still_loads(tmp_path):
    c = compile(str(EXAMPLE), timesteps=2, bn="fold")
    c.save(tmp_path / "old", cost=False)
    m = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del m["options"]["bn"]
    m["options"]["bntt"] = False
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(m))
    assert load(tmp_path / "old").options.bn == "fold"
