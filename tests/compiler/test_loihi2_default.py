"""`--target loihi2` with default options compiles a deployable net: batch norm is folded into
weights and biases (not BNTT, which a Loihi neuron cannot hold) and the compile output says so
(docs/lava.md "Deployable default"); other targets keep BNTT by default."""

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
    assert resolve_bn(Options(target="loihi2")) == "fold"
    assert resolve_bn(Options(target="loihi2", semantics="paper")) == "bntt"
    assert resolve_bn(Options()) == "bntt"
    assert resolve_bn(Options(target="loihi2", bn="bntt")) == "bntt"
    assert resolve_bn(Options(target="loihi2", bntt=True)) == "bntt"
    assert resolve_bn(Options(bntt=False)) == "fold"


def test_loihi2_default_folds_bn():
    x = torch.zeros(1, 1, 8, 8)
    c = snnc_compile(_BNNet().eval(), target="loihi2", example_input=x)
    assert c.options.bn == "fold" and not c.graph.by_op("bntt")
    assert not c.graph.by_op("batchnorm")
    g = snnc_compile(_BNNet().eval(), target="generic", example_input=x)
    assert g.options.bn == "bntt" and g.graph.by_op("bntt")


def test_cli_says_bn_is_folded(tmp_path, capsys):
    rc = main(["compile", "zoo:resnet20", "-o", str(tmp_path / "out"), "--target", "loihi2",
               "--no-cost"])  # the zoo's resnet20 keeps its batch norms
    err = capsys.readouterr().err
    assert rc == 0 and "batch norm folded into weights and biases" in err
    rc = main(["compile", "zoo:resnet20", "-o", str(tmp_path / "out2"), "--target", "loihi2",
               "--bn", "bntt", "--no-cost"])
    assert rc == 0 and "batch norm folded" not in capsys.readouterr().err
