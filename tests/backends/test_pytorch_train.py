"""Training: BPTT learns sklearn digits; `snnc train` resumes after a kill -9 without losing a
finished epoch; the report, checkpoints and plot are written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from snnc.backends.pytorch import build_module, save_module, train
from snnc.backends.pytorch.checkpoints import read_state
from snnc.compiler.text import parse
from snnc.compiler.verify import verify

CNN = """graph cnn(%x: f32[1,1,8,8]) snn {timesteps=4, semantics=paper} {
  %enc = encoder(%x) {kind=direct} : f32[1,1,8,8]
  %c0 = conv2d(%enc) {in=1, out=8, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [c0.weight] : f32[1,8,8,8]
  %b0 = bntt(%c0) {timesteps=4} [b0.weight, b0.bias, b0.running_mean, b0.running_var] : f32[1,8,8,8]
  %l0 = lif(%b0) {leak=0.874, vth=1.0} : f32[1,8,8,8]
  %c1 = conv2d(%l0) {in=8, out=8, k=(3,3), stride=(1,1), pad=(1,1,1,1)} [c1.weight] : f32[1,8,8,8]
  %b1 = bntt(%c1) {timesteps=4} [b1.weight, b1.bias, b1.running_mean, b1.running_var] : f32[1,8,8,8]
  %l1 = lif(%b1) {leak=0.874, vth=1.0} : f32[1,8,8,8]
  %add = add(%l1, %l0 ~S2S n=1) : f32[1,8,8,8]
  %pool = avgpool(%add) {k=(2,2), stride=(2,2)} : f32[1,8,4,4]
  %fl = flatten(%pool) {start=1} : f32[1,128]
  %fc = linear(%fl) {in=128, out=10} [fc.weight, fc.bias] : f32[1,10]
  %ro = readout(%fc) : f32[1,10]
  return %ro
}
"""


def compiled_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    save_module(build_module(verify(parse(CNN))), None, tmp_path)
    return tmp_path


def test_train_digits_beats_chance(tmp_path):
    d = compiled_dir(tmp_path)
    res = train(d, data="digits", epochs=2, batch_size=32, lr=5e-3, progress=False, limit=800,
                test_limit=200)
    assert res.accuracy > 0.6  # chance is 0.1
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert set(res.rates) == {"l0", "l1"} and len(res.rates["l0"]) == 4
    report = json.loads((d / "train_report.json").read_text())
    assert report["accuracy"] == res.accuracy
    assert (d / "rates.png").stat().st_size > 1000
    state = json.loads((d / "checkpoints" / "train_state.json").read_text())
    assert state["epoch"] == 2 and (d / "checkpoints" / state["checkpoint"]).is_file()


def test_resume_after_kill(tmp_path):
    """kill -9 once the first epoch is committed (normally during epoch 2): the state file is
    whole, and the rerun continues after the last committed epoch k, keeping the records of
    epochs 1..k. Where the kill lands depends on the machine's load (an epoch here takes a
    fraction of a second), so k is read, not assumed: a rerun asks for max(3, k + 1) epochs
    (a run that had finished all 3 is continued with one more, docs/pytorch-backend.md)."""
    d = compiled_dir(tmp_path)
    state = d / "checkpoints" / "train_state.json"
    args = ["train", str(d), "--data", "digits", "--batch-size", "16", "--threads", "1",
            "--limit", "240", "--test-limit", "60"]
    cmd = [sys.executable, "-m", "snnc.compiler.cli", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([*cmd, "--epochs", "3"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while not state.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads(state.read_text())  # committed atomically: whole, whenever killed
    k = first["epoch"]
    # the commit point names epoch k's weights, written before it: the file is there, whole
    # (read_state checks its sha256 and raises otherwise)
    assert first["checkpoint"] == f"epoch-{k}.safetensors"
    assert read_state(state.parent) == first
    epochs = max(3, k + 1)
    out = subprocess.run([*cmd, "--epochs", str(epochs)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
    final = json.loads(state.read_text())
    assert [h["epoch"] for h in final["history"]] == list(range(1, epochs + 1))
    assert final["history"][:k] == first["history"]


def test_unknown_dataset_is_a_user_error(tmp_path):
    d = compiled_dir(tmp_path)
    out = subprocess.run([sys.executable, "-m", "snnc.compiler.cli", "train", str(d), "--data",
                          "cifar-1000"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown dataset 'cifar-1000'" in out.stderr


def test_recalibrate_bn_is_the_plain_average(tmp_path):
    """After recalibration each running mean is the mean of the per-batch means."""
    from snnc.backends.pytorch.training import _batches, _dataset_for, recalibrate_bn

    torch.manual_seed(0)
    m = build_module(verify(parse(CNN)))
    ds = _dataset_for(m, "digits", "train", 96)
    assert recalibrate_bn(m, ds, 32, 3, seed=7) == 3
    means = []
    for x, _ in _batches(m, ds, 32, 7):
        c0 = m.layers["c0"]([x.unsqueeze(0)])
        means.append(c0[0].mean((0, 2, 3)))
    want = torch.stack(means).mean(0)
    for t in range(4):  # the static stem: every step sees the same batch statistics
        torch.testing.assert_close(m.layers["b0"].running_mean[t], want, rtol=1e-5, atol=1e-6)


def test_cosine_schedule_is_set_at_every_step():
    """`--schedule cosine` anneals within an epoch (a one-epoch fine-tuning ends near lr 0, not
    at its start lr) and equals torch's CosineAnnealingLR(T_max=epochs) at epoch boundaries,
    where a resumed run restarts."""
    import math

    from snnc.backends.pytorch.training import _scheduler, cosine_step

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    cosine_step(opt, 0.0, 1)
    assert opt.param_groups[0]["lr"] == 1e-3
    cosine_step(opt, 0.5, 1)
    assert math.isclose(opt.param_groups[0]["lr"], 0.5e-3)
    cosine_step(opt, 936 / 937, 1)  # the last batch of a 937-batch epoch
    assert opt.param_groups[0]["lr"] < 1e-8
    ref_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    ref = _scheduler(ref_opt, "cosine", 3)
    for epoch in range(3):
        cosine_step(opt, float(epoch), 3)
        assert math.isclose(opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
