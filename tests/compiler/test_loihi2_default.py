"""`--target loihi2` with default options compiles a deployable net: one batch norm per layer
shared over time steps, trained folded into the quantised weights and biases (not BNTT, which a
Loihi neuron cannot hold), and the compile output says so (docs/lava.md "Deployable default");
other targets keep BNTT by default."""

from __future__ import annotations

import torch
import torch.nn as nn

from snnc.compiler.api import compile as snnc_compile
from snnc.compiler.cli import main
from snnc.compiler.core.options import Options
from snnc.passes.pipeline import resolve_bn


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.c(x))).flatten(1))


def test_resolve_bn():
    assert resolve_bn(Options(target="loihi2")) == "shared"
    assert resolve_bn(Options(target="nir")) == "fold"
    assert resolve_bn(Options(target="loihi2", semantics="paper")) == "bntt"
    assert resolve_bn(Options()) == "bntt"
    assert resolve_bn(Options(target="loihi2", bn="bntt")) == "bntt"
    assert resolve_bn(Options(target="loihi2", bntt=True)) == "bntt"
    assert resolve_bn(Options(bntt=False)) == "fold"


def test_loihi2_default_trains_bn_folded():
    """The BN stays (one per conv, shared over steps) and the PyTorch module trains it folded
    into the conv (ops.Weighted.fold_bn): the BN module passes its input through, training
    updates its running statistics from the float conv output and its affine gets gradients;
    in eval the conv runs the folded weight on its grid (Lava equality: tests/lava)."""
    from snnc.backends.pytorch import build_module

    x = torch.zeros(1, 1, 8, 8)
    c = snnc_compile(_BNNet().eval(), target="loihi2", example_input=x)
    assert c.options.bn == "shared" and not c.graph.by_op("bntt")
    (bn,) = c.graph.by_op("batchnorm")
    mod = build_module(c.graph)
    layer, conv = mod.layers[bn.name], mod.layers["c"]
    assert layer.folded and conv._bn == (layer,)
    xs = torch.randint(0, 3, (6, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float()
    before = layer.running_mean.clone()
    mod.train()
    mod(xs).sum().backward()
    assert not torch.equal(before, layer.running_mean) and layer.weight.grad.abs().sum() > 0
    mod.eval()
    with torch.no_grad():
        w = conv._folded(torch.zeros(1, 1, 1, 8, 8).flatten(0, 1))  # the folded bias alone
        step = float(c.graph.node("c").attrs["weight_step"])
        s = layer.weight.double() / torch.sqrt(layer.running_var.double() + layer.eps)
        shift = layer.bias.double() - layer.running_mean.double() * s
    assert torch.equal(w[0, :, 0, 0], (torch.round(shift * 64) / 64).float())
    assert step > 0
    f = snnc_compile(_BNNet().eval(), target="loihi2", example_input=x, bn="fold")
    assert not f.graph.by_op("batchnorm")


def test_cli_says_bn_is_folded(tmp_path, capsys):
    rc = main(["compile", "zoo:resnet20", "-o", str(tmp_path / "out"), "--target", "loihi2",
               "--no-cost"])  # the zoo's resnet20 keeps its batch norms
    err = " ".join(capsys.readouterr().err.split())  # rich wraps lines
    assert rc == 0 and "trained folded into the quantised weights and biases" in err
    rc = main(["compile", "zoo:resnet20", "-o", str(tmp_path / "out2"), "--target", "loihi2",
               "--bn", "bntt", "--no-cost"])
    assert rc == 0 and "batch norm" not in capsys.readouterr().err
