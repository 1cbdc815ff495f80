"""`snnc eval DIR --data D` and `Compiled.evaluate` (docs/pytorch-backend.md "Evaluation"):
accuracy of the ANN and the SNN, against T, per-layer rates; nothing in DIR changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from snnc.compiler import compile, load
from snnc.compiler.cli import main
from snnc.data import load_dataset


class Digits(nn.Module):
    """A small CNN for sklearn's 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = nn.functional.avg_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory):
    """A digits CNN trained for a few seconds, converted (IF, normalised) and saved."""
    torch.manual_seed(0)
    tr = load_dataset("digits", "train")
    net = Digits()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(15):
        for i in range(0, len(tr), 64):
            loss = nn.functional.cross_entropy(net(tr.x[i:i + 64]), tr.y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    c = compile(net.eval(), example_input=tr.x[:1], residual="s2m", leak=1.0, bntt=False,
                normalize="digits", calibration_samples=300, timesteps=32)
    d = tmp_path_factory.mktemp("eval") / "digits.snnc"
    c.save(d)
    return d


def _digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def test_eval_json_and_directory_unchanged(compiled_dir, capsys):
    before = _digest(compiled_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in compiled_dir.rglob("*")}
    code = main(["eval", str(compiled_dir), "--data", "digits", "-T", "1,4,32", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    res = json.loads(out)
    assert set(res) >= {"ann_accuracy", "snn_accuracy", "timesteps", "by_timesteps", "rates"}
    assert res["timesteps"] == 32 and set(res["by_timesteps"]) == {"1", "4", "32"}
    assert res["snn_accuracy"] == res["by_timesteps"]["32"]
    assert res["ann_accuracy"] > 0.9 and res["snn_accuracy"] >= res["ann_accuracy"] - 0.03
    assert res["by_timesteps"]["1"] < res["by_timesteps"]["32"]
    assert res["samples"] == 360 and all(0 <= r <= 1 for r in res["rates"].values())
    assert _digest(compiled_dir) == before  # every file byte-identical, none added
    assert {p: p.stat().st_mtime_ns for p in compiled_dir.rglob("*")} == mtimes


def test_eval_table_and_plot(compiled_dir, tmp_path, capsys):
    plot = tmp_path / "acc.png"
    code = main(["eval", str(compiled_dir), "--data", "digits", "-T", "2,8", "--plot",
                 str(plot), "--limit", "100"])
    out = capsys.readouterr().out
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    assert "ANN" in out and "SNN" in out and "firing rates" in out


def test_python_evaluate_matches_the_cli_with_a_dataloader(compiled_dir):
    c = load(compiled_dir)
    te = load_dataset("digits", "test")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(te.x, te.y),
                                         batch_size=50)
    a = c.evaluate(loader, timesteps=[4, 32])
    b = c.evaluate("digits", timesteps=[4, 32])
    assert a["by_timesteps"] == b["by_timesteps"] and a["ann_accuracy"] == b["ann_accuracy"]
    one = c.evaluate((te.x, te.y), rates=False)
    assert one["snn_accuracy"] == a["by_timesteps"][32] and one["timesteps"] == 32


def test_eval_errors_exit_2(compiled_dir, tmp_path, capsys):
    assert main(["eval", str(compiled_dir), "--data", "nosuchset"]) == 2
    assert main(["eval", str(compiled_dir), "--data", "digits", "-T", "0,2"]) == 2
    assert main(["eval", str(tmp_path), "--data", "digits"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_eval_takes_torch_data_and_a_device(compiled_dir):
    """A torch Dataset, a DataLoader of uint8 NHWC images and the name give one accuracy
    (snnc.data's rules apply to Python data); --device cpu|auto run, cuda without a GPU is
    exit 2 (docs/pytorch-backend.md "Devices")."""
    from torch.utils.data import DataLoader, TensorDataset

    c = load(compiled_dir)
    te = load_dataset("digits", "test", limit=120)
    by_name = c.evaluate("digits", limit=120, device="cpu")
    ds = TensorDataset(te.x, te.y)
    assert c.evaluate(ds, device="auto")["snn_accuracy"] == by_name["snn_accuracy"]
    u8 = (te.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # [N, 8, 8, 1]
    res = c.evaluate(DataLoader(TensorDataset(u8, te.y), batch_size=50))
    assert abs(res["snn_accuracy"] - by_name["snn_accuracy"]) <= 2 / 120  # rounding to uint8
    if not torch.cuda.is_available():
        assert main(["eval", str(compiled_dir), "--data", "digits", "--device", "cuda"]) == 2
    assert main(["eval", str(compiled_dir), "--data", "digits", "--limit", "40", "--device",
                 "cpu", "--json"]) == 0


def test_eval_backend_lava_without_its_environment(compiled_dir, tmp_path, capsys, monkeypatch):
    """--backend lava needs the Python 3.10 Lava environment: where the one named is missing,
    or has no lava, exit 2 with the setup command, no traceback (docs/lava.md)."""
    monkeypatch.setenv("SNNC_LAVA_PYTHON", str(tmp_path / "no-such" / "python"))
    code = main(["eval", str(compiled_dir), "--data", "digits", "--backend", "lava"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no-such/python (SNNC_LAVA_PYTHON): not found" in err
    assert "scripts/setup-lava.sh" in err
    import sys

    if sys.version_info[:2] != (3, 10):  # this interpreter has no working lava
        monkeypatch.setenv("SNNC_LAVA_PYTHON", sys.executable)
        assert main(["eval", str(compiled_dir), "--data", "digits", "--backend", "lava"]) == 2
        assert "cannot import lava and snnc" in capsys.readouterr().err
    # options the simulator does not use are refused by name
    assert main(["eval", str(compiled_dir), "--data", "digits", "--backend", "lava",
                 "-T", "4,8"]) == 2
    assert "--timesteps: not used with --backend lava" in capsys.readouterr().err
