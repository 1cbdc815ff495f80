"""Data-based normalisation (docs/passes.md "Conversion"): the unit algebra is exact, and a
trained net converts to an IF network that keeps the ANN's accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnc.compiler import compile
from snnc.compiler.core.interpret import INTERPRETERS, _role, edge_value, interpret
from snnc.compiler.core.ir import EdgeKind
from snnc.data import FASHION_DIR

TRAINED = Path(__file__).resolve().parents[1] / "trained"


class Res(nn.Module):
    """Stem, an identity block and a stride-2 projection block (post-activation)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.b1 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.b2 = nn.Conv2d(6, 6, 3, padding=1)
        self.proj = nn.Conv2d(4, 6, 1, stride=2)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.a2(F.relu(self.a1(x))) + x)
        x = F.relu(self.b2(F.relu(self.b1(x))) + self.proj(x))
        return self.fc(torch.flatten(F.avg_pool2d(x, 2), 1))


class Dense(nn.Module):
    """Concatenations of layers with different scales, then a BN-ReLU-conv (pre-activation)."""

    def __init__(self):
        super().__init__()
        self.c0, self.c1 = nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 2, 3, padding=1)
        self.c2 = nn.Conv2d(5, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(7)
        self.c3 = nn.Conv2d(7, 4, 1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = F.relu(self.c0(x))
        x = torch.cat([x, F.relu(self.c1(x))], 1)
        x = torch.cat([x, F.relu(self.c2(x))], 1)
        x = F.relu(self.c3(F.relu(self.bn(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def rate_model(g, x):
    """The SNN graph with every lif replaced by its rate, clamp(input / vth, 0, 1): the limit of
    an IF neuron with reset by subtraction for constant input (docs/passes.md "Conversion")."""
    env = {}
    for n in g.nodes:
        ins = g.inputs_of(n.name)
        vals = [edge_value(g, e, env) for e in ins]
        if n.op == "input":
            env[n.name] = x
        elif n.op in ("encoder", "readout"):
            env[n.name] = vals[0]
        elif n.op == "lif":
            cur = vals[0]
            for e, v in zip(ins[1:], vals[1:]):
                cur = cur + (float(e.attrs.get("scale", 1.0)) * v if e.kind is EdgeKind.S2M
                             else v)
            env[n.name] = (cur / float(n.attrs["vth"])).clamp(0, 1)
        elif n.op == "bntt":
            p = {_role(n, k): g.params[k][0] for k in n.params}
            env[n.name] = F.batch_norm(vals[0], p["running_mean"], p["running_var"],
                                       p["weight"], p["bias"], False, 0.0, n.attrs["eps"])
        else:
            p = {_role(n, k): g.params[k] for k in n.params}
            env[n.name] = INTERPRETERS[n.op](n, vals, p)
    return env[g.outputs[0]]


@pytest.mark.parametrize("net", [Res, Dense], ids=lambda c: c.__name__)
def test_normalised_rates_reproduce_the_ann_exactly(net):
    """With the maximum (percentile 100) no rate saturates on the calibration images, so the
    rate model of the normalised SNN equals the ANN: units, concat, S2M and projections."""
    torch.manual_seed(0)
    model = net().eval()
    if isinstance(model, Dense):
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        with torch.no_grad():
            model.c1.weight.mul_(3.0)  # the concatenated layers differ in scale
    x = torch.rand(64, 1, 8, 8)
    c = compile(model, example_input=x[:1], residual="s2m", leak=1.0, bntt=True,
                normalize=x, percentile=100.0, timesteps=4)
    lams = [n.attrs["lambda"] for n in c.graph.by_op("lif")]
    assert len(lams) == len(c.graph.by_op("lif")) and max(lams) / min(lams) > 1.5
    want = interpret(c.ann, x)
    got = rate_model(c.graph, x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_s2m_scales_carry_the_ratio_of_scales():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    c = compile(Res().eval(), example_input=x[:1], residual="s2m", leak=1.0, normalize=x,
                percentile=100.0)
    g = c.graph
    for e in g.edges:
        if e.kind is EdgeKind.S2M and e.projection is None:
            lam_src, lam_dst = g.node(e.src).attrs["lambda"], g.node(e.dst).attrs["lambda"]
            assert e.attrs["scale"] == pytest.approx(g.node(e.dst).attrs["vth"] * lam_src
                                                     / lam_dst, rel=1e-5)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_trained_vgg_converts_within_two_points_at_t64():
    c = compile(str(TRAINED / "vgg.onnx"), residual="s2m", leak=1.0, bntt=False,
                normalize="fashion-mnist", calibration_samples=300, timesteps=64)
    res = c.evaluate("fashion-mnist", limit=300, rates=False)
    assert res["ann_accuracy"] > 0.88
    assert res["snn_accuracy"] >= res["ann_accuracy"] - 0.02


EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "examples" / "resnet20.onnx"


def _lambdas(out) -> dict[str, float]:
    from snnc.compiler import load

    return {n.name: n.attrs["lambda"] for n in load(out).graph.by_op("lif")}


def test_normalize_reads_data_as_data_does(tmp_path, capsys):
    """--normalize takes --keys/--layout/--mean/--std as --data does (one DataSpec): float NHWC
    images under custom keys calibrate exactly as their NCHW twin under x/y, from the CLI and
    from Python; --mean/--std reach the calibration; a missing key exits 2 naming it."""
    from snnc.compiler.cli import main
    from snnc.data import DataSpec

    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 32, 32), dtype=np.float32)  # float images in [0, 1]: kept as they are
    y = np.arange(6) % 10
    np.savez(tmp_path / "nchw.npz", x=x, y=y)
    np.savez(tmp_path / "nhwc.npz", images=x.transpose(0, 2, 3, 1), labels=y)
    common = [str(EXAMPLE), "--residual", "s2m", "--leak", "1", "--no-bntt", "-T", "4",
              "--calibration-samples", "6", "--no-cost"]
    runs = {"nchw": ["--normalize", str(tmp_path / "nchw.npz")],
            "nhwc": ["--normalize", str(tmp_path / "nhwc.npz"), "--keys", "images,labels",
                     "--layout", "NHWC"],
            "std": ["--normalize", str(tmp_path / "nchw.npz"), "--mean", "0", "--std", "0.5"]}
    lams = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.snnc"
        assert main(["compile", *common, "-o", str(out), *args]) == 0, capsys.readouterr().err
        lams[name] = _lambdas(out)
    assert lams["nchw"] and lams["nhwc"] == lams["nchw"]
    # x / 0.5 doubles every activation of the ReLU net (biases aside): the scales differ
    assert lams["std"] != lams["nchw"]
    c = compile(str(EXAMPLE), residual="s2m", leak=1.0, bntt=False, timesteps=4,
                calibration_samples=6, normalize=DataSpec(str(tmp_path / "nhwc.npz"),
                                                          ("images", "labels"), "NHWC"))
    assert {n.name: n.attrs["lambda"] for n in c.graph.by_op("lif")} == lams["nchw"]
    assert c.options.normalize.keys == ("images", "labels")
    from snnc.compiler import load

    assert load(tmp_path / "nhwc.snnc").options == c.options.replace(encoder="direct")
    capsys.readouterr()
    code = main(["compile", *common, "-o", str(tmp_path / "bad.snnc"), "--normalize",
                 str(tmp_path / "nhwc.npz"), "--keys", "images,targets"])
    err = capsys.readouterr().err
    assert code == 2 and "targets" in err and "images, labels" in err and "Traceback" not in err
    assert not (tmp_path / "bad.snnc").exists()


def test_finetuning_a_converted_net_with_folded_bn_prints_a_note(capsys):
    """`snnc train` on a converted net (--normalize) says when BN is folded (docs/passes.md
    "Fine-tuning a converted net"); not with identity BNTT, not on an unconverted net."""
    from torch.utils.data import TensorDataset

    from snnc.backends.pytorch.training import finetune_note, train

    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    kw = dict(example_input=x[:1], residual="s2s", timesteps=4)
    fold = compile(Res().eval(), normalize=x, bn="fold", **kw).to_torch()
    assert "--bn bntt" in finetune_note(fold)
    assert finetune_note(compile(Res().eval(), normalize=x, bn="bntt", **kw).to_torch()) is None
    assert finetune_note(compile(Res().eval(), bn="fold", **kw).to_torch()) is None
    train(fold, TensorDataset(x, torch.arange(32) % 5), max_steps=1, recalibrate=0)
    assert "snnc: note: fine-tuning a converted net" in capsys.readouterr().out
