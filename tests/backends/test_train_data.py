"""`snnc train` with a validation split, keep-best weights, the per-epoch log, curves.png, the
checked BN recalibration, torch data from Python and the data/device options from the CLI
(docs/pytorch-backend.md "Training", "Data", "Devices")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader, TensorDataset

from snnc.backends.pytorch import build_module, save_module, train
from snnc.compiler.cli import cli
from snnc.compiler.text import parse
from snnc.compiler.verify import verify
from snnc.data import load_dataset

from tests.backends.test_pytorch_train import CNN


def _dir(tmp_path):
    torch.manual_seed(0)
    d = tmp_path / "net"
    save_module(build_module(verify(parse(CNN))), None, d)
    return d


def test_val_split_keep_best_log_and_curves(tmp_path, capsys):
    d = _dir(tmp_path)
    res = train(d, data="digits", epochs=3, batch_size=32, lr=5e-3, limit=400, val=100,
                test_limit=100, device="cpu", recalibrate=4)
    out = capsys.readouterr().out
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    for h in res.history:  # per epoch: training and validation loss/accuracy, no test
        assert {"loss", "train_acc", "val_loss", "val_acc"} <= set(h) and "test_acc" not in h
        assert 0 <= h["val_acc"] <= 1 and h["val_loss"] > 0
    best = max(res.history, key=lambda h: h["val_acc"])
    assert res.weights.startswith(f"epoch {best['epoch']} ")
    assert f"kept the weights of epoch {best['epoch']}" in out
    assert "validation accuracy" in out and "BN recalibration over 4 batches" in out
    bn = res.bn
    assert bn["measured_on"] == "validation" and bn["kept"] == (bn["after"] >= bn["before"])
    assert res.val_accuracy == (bn["after"] if bn["kept"] else best["val_acc"])
    report = json.loads((d / "train_report.json").read_text())
    assert report["weights"] == res.weights and report["config"]["val"] == 100
    assert (d / "curves.png").stat().st_size > 1000 and (d / "rates.png").is_file()
    assert (d / "checkpoints" / "best.safetensors").is_file()
    assert res.device == "cpu"


def test_kept_weights_are_the_best_epoch(tmp_path):
    """The weights in the directory score the best epoch's validation accuracy (BN
    recalibration off so nothing changes them afterwards)."""
    from snnc.backends.pytorch import load_module
    from snnc.backends.pytorch.training import _dataset_for, evaluate, split_val

    d = _dir(tmp_path)
    res = train(d, data="digits", epochs=3, batch_size=32, lr=2e-2, limit=300, val=100,
                test_limit=50, recalibrate=0, progress=False)
    m = load_module(d)
    _, val = split_val(_dataset_for(m, "digits", "train", 300), 100, 0)
    best = max(h["val_acc"] for h in res.history)
    assert evaluate(m, val) == pytest.approx(best)


def test_bn_recalibration_that_lowers_accuracy_is_undone(tmp_path):
    from snnc.backends.pytorch.fit import recalibrate_checked
    from snnc.backends.pytorch.training import _dataset_for, split_val

    torch.manual_seed(0)
    m = build_module(verify(parse(CNN)))
    ds = _dataset_for(m, "digits", "train", 200)
    train_ds, val_ds = split_val(ds, 50, 0)
    # statistics from images of another scale: recalibration on them must be judged
    noisy = type(ds)(ds.name, ds.x * 50, ds.y, ds.classes)
    before = {k: v.clone() for k, v in m.layers.state_dict().items()}
    bn = recalibrate_checked(m, noisy, val_ds, 32, 3, 0, progress=False)
    after = m.layers.state_dict()
    if bn["kept"]:
        assert bn["after"] >= bn["before"]
    else:
        assert bn["after"] < bn["before"]
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_python_dataset_and_dataloader(tmp_path):
    full = load_dataset("digits", "train", limit=300)
    test = load_dataset("digits", "test", limit=60)
    x8 = (full.x * 255).round().to(torch.uint8)  # uint8: scaled /255 like an npz
    torch.manual_seed(0)
    m = build_module(verify(parse(CNN)))
    res = train(m, data=DataLoader(TensorDataset(x8, full.y), batch_size=50), epochs=1,
                test_data=TensorDataset(test.x, test.y), batch_size=32, progress=False,
                recalibrate=0)
    assert 0 <= res.accuracy <= 1 and res.history[0]["train_acc"] > 0
    from snnc.backends.pytorch.training import evaluate

    acc = evaluate(m, TensorDataset(test.x, test.y))
    assert acc == pytest.approx(res.accuracy)


def test_cli_data_and_device_options(tmp_path):
    d = _dir(tmp_path)
    rng = np.random.default_rng(0)
    npz = tmp_path / "mine.npz"
    np.savez(npz, imgs=rng.random((40, 8, 8, 1)).astype(np.float32), labs=np.arange(40) % 10)
    r = CliRunner().invoke(cli, ["train", str(d), "--data", str(npz), "--keys", "imgs,lbl"])
    assert r.exit_code == 2 and "no array named lbl" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["train", str(d), "--data", "digits", "--device", "gpu"])
    assert r.exit_code == 2 and "--device gpu" in r.output
    if not torch.cuda.is_available():
        r = CliRunner().invoke(cli, ["train", str(d), "--data", "digits", "--device", "cuda"])
        assert r.exit_code == 2 and "torch sees no CUDA GPU" in r.output
    r = CliRunner().invoke(cli, ["train", str(d), "--data", "digits", "--limit", "50",
                                 "--val", "50"])
    assert r.exit_code == 2 and "--val 50" in r.output
    r = CliRunner().invoke(cli, ["train", str(d), "--data", str(npz), "--keys", "imgs,labs",
                                 "--layout", "NHWC", "--mean", "0.5", "--std", "0.25",
                                 "--epochs", "1", "--val", "10", "--device", "auto",
                                 "--batch-size", "16"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "validation accuracy" in r.output
    assert f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}" in r.output
    report = json.loads((d / "train_report.json").read_text())
    assert report["config"]["data"]["keys"] == ["imgs", "labs"]
    assert report["config"]["data"]["mean"] == [0.5]


def test_cost_calibrate_reads_the_data_options(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(64, 10)).eval()
    onnx = tmp_path / "small.onnx"
    torch.onnx.export(net, (torch.randn(1, 1, 8, 8),), str(onnx), dynamo=False)
    npz = tmp_path / "cal.npz"
    np.savez(npz, imgs=np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32),
             labs=np.arange(8))
    r = CliRunner().invoke(cli, ["cost", str(onnx), "--calibrate", str(npz), "--keys",
                                 "imgs,labs", "--samples", "4", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["activity"]["source"] == "calibration"
    r = CliRunner().invoke(cli, ["cost", str(onnx), "--calibrate", str(npz), "--keys", "x,y"])
    assert r.exit_code == 2 and "no array named x, y" in r.output


def test_search_defaults_fit_digits(tmp_path):
    """`snnc search MODEL --data digits` without --train/--val: 958 + 479 of digits' 1,437."""
    from snnc.search.journal import read_journal

    out = tmp_path / "s"
    r = CliRunner().invoke(cli, ["search", "single-block", "--data", "digits", "--budget", "1",
                                 "--batch", "1", "--init", "1", "-T", "2", "--parent-epochs",
                                 "0", "--finetune-epochs", "0", "--device", "cpu", "-o",
                                 str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    head = next(x for x in read_journal(out / "journal.jsonl") if x["type"] == "header")
    assert (head["settings"]["train"], head["settings"]["val"]) == (958, 479)
    ev = next(x for x in read_journal(out / "journal.jsonl") if x["type"] == "eval")
    assert ev["device"] == "cpu"
    r = CliRunner().invoke(cli, ["search", "single-block", "--data", "digits", "--train",
                                 "2000", "--val", "1000", "-o", str(tmp_path / "t")])
    assert r.exit_code == 2 and "1437 training samples" in r.output


def test_resumed_run_keeps_the_best_epoch_of_before(tmp_path):
    """Killed after its last checkpoint (before the commit), then resumed with more epochs:
    the best epoch over the whole run is kept, its weights read from
    checkpoints/best.safetensors when it came before the kill. To make that case certain the
    checkpoint is edited: epoch 1 gets a validation accuracy no epoch can beat and
    best.safetensors the initial weights; the resumed run must write exactly those."""
    import os
    import subprocess
    import sys

    from safetensors.torch import save_file

    from snnc.backends.pytorch import load_module

    d = _dir(tmp_path)
    initial = {k: v.contiguous() for k, v in load_module(d).layers.state_dict().items()}
    args = [sys.executable, "-m", "snnc.compiler", "train", str(d), "--data", "digits",
            "--limit", "240", "--val", "80", "--test-limit", "40", "--batch-size", "16",
            "--lr", "0.02", "--recalibrate-bn", "0", "--threads", "1"]
    env = dict(os.environ, SNNC_TEST_KILL_AT="train:commit")
    r = subprocess.run([*args, "--epochs", "2"], env=env, capture_output=True, timeout=600)
    ck = d / "checkpoints"
    assert r.returncode == -9 and (ck / "best.safetensors").is_file()
    state = json.loads((ck / "train_state.json").read_text())
    state["history"][0]["val_acc"] = 2.0
    (ck / "train_state.json").write_text(json.dumps(state))
    save_file(initial, str(ck / "best.safetensors"))
    r = subprocess.run([*args, "--epochs", "3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((d / "train_report.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert report["weights"].startswith("epoch 1 ") and "kept the weights of epoch 1" in r.stdout
    kept = load_module(d).layers.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in initial.items())
