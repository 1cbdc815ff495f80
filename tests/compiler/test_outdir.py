"""The output directory (docs/outputs.md): manifest hashes, what `-o` refuses, kill -9 at every
stage of the atomic write, concurrent writers, the umask, byte-identical repeated compiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snnc.compiler.core.atomic import STAGES
from snnc.compiler.errors import ImportFailed
from tests.lava import nets

# A small net that both Lava (paper semantics on the Loihi grid) and NIR (zero reset) take.
FLAGS = ["--target", "loihi2", "--semantics", "paper", "--leak", "0.875", "--reset", "zero",
         "--encoder", "events", "--no-bntt"]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return nets.digits_onnx(tmp_path_factory.mktemp("model") / "net.onnx")


def snnc(*argv, env=None, cwd=None, timeout=300):
    """`snnc ARGV` in a fresh process (exit code, stdout, stderr)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    p = subprocess.run([sys.executable, "-m", "snnc.compiler.cli", *map(str, argv)],
                       capture_output=True, text=True, env=e, cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def compile_to(model, out, *extra, **kw):
    return snnc("compile", model, "-o", out, *FLAGS, "--no-cost", *extra, **kw)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


def test_a_hand_edited_file_is_refused(onnx_model, tmp_path):
    from snnc.compiler import compile, load

    d = tmp_path / "out"
    compile(str(onnx_model), timesteps=3).save(d)
    assert load(d).graph is not None
    manifest = json.loads((d / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"graph.json", "graph.safetensors", "ann.json",
                                      "ann.safetensors", "graph.snnc", "cost.json", "cost.md"}
    text = (d / "graph.json").read_text()
    (d / "graph.json").write_text(text.replace('"leak": 0.874', '"leak": 0.5', 1))
    with pytest.raises(ImportFailed, match="graph.json do.*sha256"):
        load(d)
    for cmd in (["inspect", d], ["cost", d], ["export", d, "--emit", "nir"], ["compile", d]):
        code, _, err = snnc(*cmd)
        assert code == 2 and "graph.json" in err and "Traceback" not in err, (cmd, err)
    (d / "graph.json").write_text(text)  # restored: loads again
    assert load(d).options.timesteps == 3


def test_o_never_swallows_what_snnc_did_not_write(onnx_model, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    model = proj / onnx_model.name
    for f in onnx_model.parent.glob(onnx_model.name + "*"):  # with its external data
        (proj / f.name).write_bytes(f.read_bytes())
    (proj / "notes.txt").write_text("keep")
    before = {p.name: p.read_bytes() for p in proj.iterdir()}
    cases = [(["-o", proj], tmp_path),            # the model's own folder
             (["-o", "."], proj),                  # the current directory
             (["-o", tmp_path], tmp_path / "proj"),  # an ancestor of the model
             (["-o", tmp_path / "proj2"], tmp_path)]  # a non-empty folder snnc did not write
    (tmp_path / "proj2").mkdir()
    (tmp_path / "proj2" / "data.csv").write_text("1,2")
    for argv, cwd in cases:
        code, _, err = snnc("compile", model, *argv, "--no-cost", cwd=cwd)
        assert code == 2 and "Traceback" not in err and "-o" in err, (argv, err)
    assert {p.name: p.read_bytes() for p in proj.iterdir()} == before
    assert (tmp_path / "proj2" / "data.csv").read_text() == "1,2"
    # an snnc directory holding a file snnc did not write is not replaced either
    d = tmp_path / "out"
    assert compile_to(model, d)[0] == 0
    (d / "mine.txt").write_text("x")
    code, _, err = compile_to(model, d)
    assert code == 2 and "mine.txt" in err
    (d / "mine.txt").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert compile_to(model, d)[0] == 0 and compile_to(model, empty)[0] == 0
    assert leftovers(d) == [] and leftovers(empty) == []


def _compiled(model, t):
    from snnc.compiler import compile

    return compile(str(model), target="loihi2", semantics="paper", leak=0.875, reset="zero",
                   encoder="events", bn="fold", timesteps=t)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_kill_9_at_every_stage_leaves_old_or_new(onnx_model, tmp_path, exchange, capsys,
                                                 monkeypatch):
    """SIGKILL at each stage of the write: the path then holds the old or the new directory
    (after the next run's recovery at the latest), and the next run cleans up and reports."""
    from snnc.compiler import load

    env = {} if exchange else {"SNNC_TEST_NO_EXCHANGE": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    old, new = _compiled(onnx_model, 4), _compiled(onnx_model, 6)
    stages = [s for s in STAGES if exchange is False or s != "old-moved"]
    for st in stages:
        d = tmp_path / st.replace(":", "-")
        old.save(d, cost=False)
        code, _, _ = compile_to(onnx_model, d, "-T", "5", env={**env, "SNNC_TEST_KILL_AT": st})
        assert code == -9, st
        left = leftovers(d)
        if d.exists():  # a reader sees a complete directory, old or new
            assert load(d).options.timesteps in (4, 5), st
        else:
            assert st == "old-moved" and any(".snnc-old-" in n for n in left), (st, left)
        capsys.readouterr()
        new.save(d, cost=False)  # the next run
        err = capsys.readouterr().err
        assert load(d).options.timesteps == 6
        assert leftovers(d) == [], (st, leftovers(d))
        # each leftover directory was recognised by its PID and its fate reported (a lock file
        # left by a killed writer is simply taken over: the kernel released its flock)
        for n in left:
            assert n.endswith(".snnc-lock") or n.split("-")[-1] in err, (n, err)
        if any(".snnc-new-" in n or ".snnc-old-" in n for n in left):
            assert "removed" in err or "restored" in err, err


def test_a_kill_between_the_two_renames_is_restored(onnx_model, tmp_path):
    from snnc.compiler import load
    from snnc.compiler.core.atomic import locked, recover

    d = tmp_path / "out"
    _compiled(onnx_model, 4).save(d, cost=False)
    code, _, _ = compile_to(onnx_model, d, "-T", "5", env={"SNNC_TEST_NO_EXCHANGE": "1",
                                                           "SNNC_TEST_KILL_AT": "old-moved"})
    assert code == -9 and not d.exists()
    with locked(d):
        notes = recover(d)
    assert len(notes) == 2 and "restored" in notes[0] and "removed" in notes[1]
    assert load(d).options.timesteps == 4 and leftovers(d) == []
    # leftovers of the protocol before this one (no lock, no marker) are reported, not deleted
    for name in (f".{d.name}.k2j_x9ab.tmp", f".{d.name}.old-12345"):
        (d.parent / name).mkdir()
    with locked(d):
        notes = recover(d)
    assert len(notes) == 2 and all("older snnc" in n for n in notes)
    assert len(leftovers(d)) == 2


def test_concurrent_writers_are_serialised(onnx_model, tmp_path):
    """A writer holding the lock (paused in the middle of its write) makes an impatient second
    writer exit 2 naming its PID, and a patient one wait, then write; nothing is orphaned."""
    from snnc.compiler import load

    d, release = tmp_path / "out", tmp_path / "release"
    e = dict(os.environ, OMP_NUM_THREADS="1")

    def start(t, **env):
        return subprocess.Popen([sys.executable, "-m", "snnc.compiler.cli", "compile",
                                 onnx_model, "-o", d, *FLAGS, "--no-cost", "-T", str(t)],
                                env={**e, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = start(4, SNNC_TEST_PAUSE_AT="staged", SNNC_TEST_RESUME=str(release))
    staging = d.with_name(f".{d.name}.snnc-new-{first.pid}")
    deadline = time.time() + 120
    while not (staging / ".snnc-writer").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None
    code, _, err = compile_to(onnx_model, d, "-T", "5", env={"SNNC_LOCK_TIMEOUT": "0.5"})
    assert code == 2 and f"PID {first.pid}" in err and "Traceback" not in err, err
    patient = start(6)
    for line in patient.stderr:  # wait until it is blocked on the lock
        if "waiting for PID" in line:
            assert str(first.pid) in line
            break
    else:
        pytest.fail(f"the second writer ended without waiting: {patient.wait()}")
    release.touch()
    assert first.wait(timeout=120) == 0
    assert patient.wait(timeout=120) == 0
    assert load(d).options.timesteps == 6
    assert leftovers(d) == []


def test_umask_and_byte_identical_outputs(onnx_model, tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("nir")
    outs = []
    for i, (umask, seed) in enumerate([(0o027, "1"), (0o022, "2")]):
        d = tmp_path / f"run{i}"
        code, _, err = snnc("compile", onnx_model, "-o", d, *FLAGS, "--emit", "torch,lava,nir",
                            env={"PYTHONHASHSEED": seed}, cwd=tmp_path,
                            timeout=300) if umask == 0o022 else _with_umask(
            umask, onnx_model, d, seed)
        assert code == 0, err
        outs.append(d)
    d0 = outs[0]
    assert (d0.stat().st_mode & 0o777) == 0o750
    for p in d0.rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o750 if p.is_dir() else 0o640), p
    assert (outs[1].stat().st_mode & 0o777) == 0o755
    files0 = sorted(p.relative_to(d0) for p in d0.rglob("*") if p.is_file())
    files1 = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert files0 == files1 and Path("model.nir") in files0
    assert any(f.parts[0] == "lava" for f in files0)
    for f in files0:
        assert (d0 / f).read_bytes() == (outs[1] / f).read_bytes(), f


def _with_umask(umask, model, d, seed):
    code = ("import os, sys; os.umask(%d); from snnc.compiler.cli import main; "
            "sys.exit(main(sys.argv[1:]))" % umask)
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED=seed)
    p = subprocess.run([sys.executable, "-c", code, "compile", str(model), "-o", str(d),
                        *FLAGS, "--emit", "torch,lava,nir"], capture_output=True, text=True,
                       env=e, timeout=300)
    return p.returncode, p.stdout, p.stderr
