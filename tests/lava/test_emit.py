"""`snnc compile --emit lava` through snnc's CLI: the HDF5 file lands in DIR/lava and runs in
Lava's simulator exactly as the module in the same directory; a graph Lava cannot express
exits with code 2, names the node and op, and leaves no output directory behind."""

from __future__ import annotations

import json

import numpy as np
import torch

from snnc.backends import lava
from snnc.compiler.cli import main
from tests.lava import nets

T = 8


def test_emit_lava_runs_like_the_module(tmp_path):
    from snnc.backends.lava.sim import Session
    from snnc.backends.pytorch import load_module

    onnx_path = nets.digits_onnx(tmp_path / "net.onnx")
    d = tmp_path / "out"
    assert main(["compile", str(onnx_path), "-o", str(d), "--target", "loihi2", "--encoder",
                 "events", "-T", str(T), "--no-bntt", "--no-cost", "--emit", "torch,lava"]) == 0
    (path,) = (d / "lava").glob("*.net")
    assert f"lava/{path.name}" in json.loads((d / "manifest.json").read_text())["files"]
    plan = lava.read(path)
    assert plan.timesteps == T and plan.sequential
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(T, 2, 8, 8)).astype(np.float32)  # event counts
    with torch.no_grad():
        y = load_module(d).eval()(torch.from_numpy(x[:, None]))[0].numpy()
    with Session(path, (2, 8, 8)) as sim:
        (v,) = sim.run(x)["voltage"].values()
    assert np.abs(y).sum() > 0
    np.testing.assert_array_equal(v, y * T)


def test_emit_lava_refusal_is_clean(tmp_path, capsys):
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AvgPool2d(2), torch.nn.Conv2d(4, 4, 3, padding=1),
                            torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 4 * 4, 10)).eval()
    # the pool feeds a conv synapse, not a neuron (a pool feeding the readout's linear is
    # lowered as a sum: tests/lava/test_deploy.py)
    onnx_path = tmp_path / "pool.onnx"
    torch.onnx.export(m, torch.zeros(1, 1, 8, 8), str(onnx_path))
    d = tmp_path / "out"
    rc = main(["compile", str(onnx_path), "-o", str(d), "--target", "loihi2", "--encoder",
               "events", "-T", str(T), "--no-bntt", "--no-cost", "--emit", "torch,lava"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("snnc: error: ") and "Traceback" not in err
    assert "(op avgpool)" in err and "must feed a neuron" in err and "node 'n" in err
    assert not d.exists() and not list(tmp_path.glob(".out*"))  # nothing half-written
