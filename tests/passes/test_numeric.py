"""Numbers: passes that touch weights, checked on tensors and through the PyTorch backend."""

from __future__ import annotations

import pytest
import torch

from snnc.compiler.errors import ConstraintViolation
from snnc.compiler.passmanager import run_pipeline
from snnc.passes.boost import boost
from snnc.passes.bn_to_bntt import bn_to_bntt
from snnc.passes.encode import encode
from snnc.passes.lower_residual import lower_residual
from snnc.passes.pipeline import conversion_pipeline
from snnc.passes.quantize import quantization_violations, quantize
from snnc.passes.readout import readout
from snnc.passes.relu_to_lif import relu_to_lif
from tests.strategies import NetBuilder


def _resnet(seed=0, folded=False):
    """stem + one projection basic block + head, with real random weights."""
    nb = NetBuilder("r", seed=seed)
    if folded:
        nb.conv("c0", 4, bias=True)
        nb.relu("r0")
        nb.conv("c1", 4, bias=True)
        nb.relu("r1")
        nb.head(classes=3)
        return nb.build()
    nb.conv("stem_conv", 4)
    nb.bn("stem_bn")
    nb.relu("stem_relu")
    nb.basic("b0", 6, stride=2)
    nb.head(classes=3)
    from snnc.compiler.blocks import annotate_skips

    return annotate_skips(nb.build())


def _bntt(x, g, name, t):
    p = {r: g.params[f"{name}.{r}"][t] for r in ("weight", "bias", "running_mean",
                                                  "running_var")}
    eps = g.node(name).attrs["eps"]
    shape = (1, -1, 1, 1)
    return ((x - p["running_mean"].view(shape)) / torch.sqrt(p["running_var"].view(shape) + eps)
            * p["weight"].view(shape) + p["bias"].view(shape))


def test_bntt_rows_equal_the_bn():
    g = relu_to_lif(_resnet())
    out = bn_to_bntt(g, timesteps=5)
    for n in g.by_op("batchnorm"):
        for role in ("weight", "bias", "running_mean", "running_var"):
            key = f"{n.name}.{role}"
            assert out.params[key].shape == (5, n.shape[1])
            for t in range(5):
                assert torch.equal(out.params[key][t], g.params[key])
    x = torch.randn(1, 4, 8, 8)
    bn = torch.nn.functional.batch_norm(x, g.params["stem_bn.running_mean"],
                                        g.params["stem_bn.running_var"],
                                        g.params["stem_bn.weight"], g.params["stem_bn.bias"],
                                        eps=g.node("stem_bn").attrs.get("eps", 1e-5))
    torch.testing.assert_close(_bntt(x, out, "stem_bn", 3), bn)


def test_identity_bntt_is_exactly_the_identity():
    g = relu_to_lif(_resnet(folded=True))
    out = bn_to_bntt(g, timesteps=2, missing="identity")
    inserted = [n.name for n in out.by_op("bntt")]
    assert inserted == ["c0_bntt", "c1_bntt"]  # not after the classifier
    x = torch.randn(1, 4, 8, 8) * 7
    for t in range(2):
        assert torch.equal(_bntt(x, out, "c0_bntt", t), x)


@pytest.mark.parametrize("init", ["replicate", "perturb"])
def test_boost_preserves_the_classifier(init):
    g = readout(relu_to_lif(_resnet()))
    out = boost(g, k=4, init=init, seed=1)
    w, b = g.params["fc.weight"], g.params["fc.bias"]
    w4, b4 = out.params["fc.weight"], out.params["fc.bias"]
    assert w4.shape == (12, w.shape[1]) and b4.shape == (12,)
    x = torch.randn(5, w.shape[1])
    voted = torch.nn.functional.linear(x, w4, b4).view(5, 3, 4).mean(-1)  # vote{k}: group mean
    torch.testing.assert_close(voted, torch.nn.functional.linear(x, w, b), rtol=1e-5,
                               atol=1e-6)
    rows_differ = not torch.equal(w4[0], w4[1])
    assert rows_differ == (init == "perturb")


def test_boost_through_the_pytorch_backend():
    """Paper 2 sec. 3.2.3: the SNN's output with the vote layer equals the one without."""
    from snnc.backends.pytorch.module import build_module

    specs = conversion_pipeline(residual="s2s", timesteps=4)
    plain = run_pipeline(_resnet(seed=3), specs)
    boosted = run_pipeline(plain, [s for s in conversion_pipeline(boost=True, timesteps=4)
                                   if s.name in ("boost", "annotate-payloads")])
    assert boosted.node(boosted.outputs[0]).op == "vote"
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        a = build_module(plain, compact=False).eval()(x)
        b = build_module(boosted, compact=False).eval()(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_lowering_keeps_weights():
    g = relu_to_lif(_resnet())
    assert any(e.kind.value == "ASC" for e in g.edges)
    for mode in ("s2s", "s2m", "v2v"):
        assert lower_residual(g, mode=mode).same_params(g)


def test_quantize_rounds_to_the_loihi2_grid():
    # exp=1 fixes every layer's exponent: lava-dl's quantize_8bit grid (docs/passes.md)
    g = readout(encode(lower_residual(relu_to_lif(_resnet(), leak=0.9, vth=1.0)), kind="direct"))
    out = quantize(g, exp=1)
    for n in out.by_op("conv2d", "linear"):
        w = out.params[n.param("weight")]
        ints = w * 64
        assert torch.equal(ints, ints.round()) and bool((ints.round() % 2 == 0).all())
        assert float(ints.min()) >= -256 and float(ints.max()) <= 254
        assert (w - g.params[n.param("weight")]).abs().max() <= 1 / 64 + 1e-7  # nearest step
    lif = out.by_op("lif")[0]
    assert lif.attrs["decay_k"] == round(0.1 * 4096) and lif.attrs["leak"] == 1 - 410 / 4096
    assert quantize(out, exp=1) == out and quantize(out, exp=1).same_params(out)


def test_quantize_names_every_clipped_layer():
    g = readout(lower_residual(relu_to_lif(_resnet())))
    params = dict(g.params)
    params["b0_conv2.weight"] = params["b0_conv2.weight"].clone()
    params["b0_conv2.weight"][0, 0, 0, 0] = 5.0  # beyond 3.96875
    params["fc.bias"] = params["fc.bias"].clone().fill_(100.0)  # beyond 63.98
    g = g.with_params(params)
    problems = quantization_violations(g, exp=1)  # the fixed grid of lava-dl's quantize_8bit
    assert len(problems) == 2
    with pytest.raises(ConstraintViolation, match=r"node 'b0_conv2' \(op conv2d\): 1 weight"
                                                  r"(.|\n)*node 'fc' \(op linear\): 3 bias"):
        quantize(g, exp=1)
    out = quantize(g, exp=1, on_clip="report")
    assert out.node("b0_conv2").attrs["clipped"] == 1
    assert float(out.params["b0_conv2.weight"].max()) == 3.96875
