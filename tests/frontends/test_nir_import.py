"""NIR import (`snnc compile model.nir`, docs/frontends.md "NIR"): a graph exported by Sinabs
imports into snnc's SNN-form IR and its module equals the exporter's forward within 1e-6;
snnc's own export round-trips; cost, train and --emit work on the imported directory."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

pytest.importorskip("nir")

from snnc.backends import nir as snir  # noqa: E402
from snnc.backends.pytorch import build_module  # noqa: E402
from snnc.compiler.api import compile as snnc_compile  # noqa: E402
from snnc.compiler.cli import main  # noqa: E402
from snnc.compiler.core.errors import ImportFailed  # noqa: E402
from snnc.compiler.frontends.nir import read_nir  # noqa: E402

T = 8


def test_sinabs_export_imports_exactly():
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, SingleSpike
    from sinabs.nir import to_nir

    torch.manual_seed(0)

    def iaf():  # NIR's IF: reset to zero, one spike per step
        return sl.IAFSqueeze(batch_size=1, spike_fn=SingleSpike, reset_fn=MembraneReset())

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), iaf(),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1), iaf(),
                        nn.Flatten(), nn.Linear(64, 10)).eval()
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    graph = to_nir(net, torch.zeros(1, 1, 8, 8))  # (Sinabs' file writer fails on None fields)
    g = read_nir(graph, timesteps=T, name="sinabs_net")
    assert [n.op for n in g.nodes].count("lif") == 2 and g.attrs["target"] == "nir"
    mod = build_module(g).eval()
    for seed in range(3):
        x = torch.rand(T, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
        sinabs.reset_states(net)
        with torch.no_grad():
            ref = net(x).mean(0)  # Sinabs: (T, 10) per-step output; snnc: its time mean
            y = mod(x[:, None])[0]
        assert torch.max(torch.abs(y - ref)) <= 1e-6
        assert float(ref.abs().sum()) > 0


class _Pool(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, (3, 5), padding=(1, 2))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.pool(torch.relu(self.c1(x)))).flatten(1))


def test_snnc_nir_round_trip_and_cli(tmp_path, capsys):
    torch.manual_seed(0)
    c = snnc_compile(_Pool().eval(), target="nir", timesteps=T, encoder="events",
                     example_input=torch.zeros(1, 2, 8, 8))
    path = snir.export(c.graph, tmp_path / "pool.nir")
    g = read_nir(path, timesteps=T)
    x = (torch.rand(T, 3, 2, 8, 8) < 0.3).float()
    with torch.no_grad():
        a, b = build_module(c.graph).eval()(x), build_module(g).eval()(x)
    assert torch.max(torch.abs(a - b)) <= 1e-6
    d = tmp_path / "pool.snnc"
    assert main(["compile", str(path), "-T", str(T), "-o", str(d), "--emit", "torch,nir"]) == 0
    assert (d / "model.nir").exists()
    assert main(["cost", str(d)]) == 0
    assert main(["train", str(d), "--data", "digits-events", "--epochs", "1", "--limit", "64",
                 "--test-limit", "32", "--threads", "1"]) == 0
    capsys.readouterr()


def test_unsupported_nir_node_is_named(tmp_path):
    import nir
    import numpy as np

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])),
                            "cuba": nir.CubaLIF(tau_syn=np.ones(4), tau_mem=np.ones(4),
                                                r=np.ones(4), v_leak=np.zeros(4),
                                                v_threshold=np.ones(4)),
                            "output": nir.Output(output_type=np.array([4]))},
                     edges=[("input", "cuba"), ("cuba", "output")])
    with pytest.raises(ImportFailed, match=r"node 'cuba' \(CubaLIF\)"):
        read_nir(g)
