"""compile -> train -> load / cost / export: every artifact of the trained directory comes
from the trained weights (docs/outputs.md); `train -o`, `--force`, resume checks, `export`,
recompiling from the stored ANN form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.compiler.cli import main
from tests.lava import nets

h5py = pytest.importorskip("h5py")
nir = pytest.importorskip("nir")

# Lava (paper semantics on the Loihi grid) and NIR (zero reset) both take this net.
FLAGS = ["--target", "loihi2", "--semantics", "paper", "--leak", "0.875", "--reset", "zero",
         "--encoder", "events", "--no-bntt", "-T", "4"]
TRAIN = ["--data", "digits", "--limit", "128", "--test-limit", "64", "--batch-size", "32",
         "--lr", "0.01", "--threads", "1"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("c")
    onnx_path = nets.digits_onnx(d / "net.onnx")
    out = d / "c.snnc"
    assert main(["compile", str(onnx_path), "-o", str(out), *FLAGS,
                 "--emit", "torch,lava,nir"]) == 0
    return out


def snnc(*argv, env=None):
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    p = subprocess.run([sys.executable, "-m", "snnc.compiler.cli", *map(str, argv)],
                       capture_output=True, text=True, env=e, timeout=600)
    return p.returncode, p.stdout, p.stderr


def lava_weights(d: Path) -> dict[str, np.ndarray]:
    """Every `weight` dataset of the directory's Lava HDF5 file, read with h5py."""
    (path,) = (d / "lava").glob("*.net")
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, o: out.__setitem__(name, o[()])
                     if isinstance(o, h5py.Dataset) and name.endswith("weight") else None)
    assert out
    return out


def nir_readout(d: Path) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """The NIR file's weights and its output on fixed event input, run by snnTorch's importer."""
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    g = nir.read(str(d / "model.nir"))
    weights = {k: np.asarray(n.weight) for k, n in g.nodes.items() if hasattr(n, "weight")}
    net = import_from_nir(g)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 3, (4, 1, 2, 8, 8))).float()
    outs, state = [], None
    with torch.no_grad():
        for t in range(4):
            o, state = net(x[t], state)
            outs.append(o)
    return weights, torch.stack(outs).mean(0)


def test_trained_directory_reflects_the_trained_weights(compiled, tmp_path):
    from snnc.backends import lava
    from snnc.compiler import load

    before_manifest = (compiled / "manifest.json").read_bytes()
    c0 = load(compiled)
    t = tmp_path / "t.snnc"
    assert main(["train", str(compiled), "-o", str(t), "--epochs", "1", *TRAIN]) == 0
    assert (compiled / "manifest.json").read_bytes() == before_manifest  # DIR untouched
    load(compiled)  # and still verifies
    c1 = load(t)
    assert c1.trained["epochs"] == 1 and c0.trained is None
    assert c1.graph == c0.graph and not c1.graph.same_params(c0.graph)
    m = json.loads((t / "manifest.json").read_text())
    assert {"lava", "nir"} <= set(m["emit"]) and "train_report.json" in m["files"]
    assert not (t / "model.safetensors").exists()  # the weights are stored once
    # the module rebuilt from the directory is the trained one
    x = torch.rand(4, 1, 2, 8, 8).round()
    with torch.no_grad():
        assert not torch.equal(c1.to_torch().eval()(x), c0.to_torch().eval()(x))
    # lava/: the HDF5 weights changed, and are those of a fresh export of the trained graph
    w0, w1 = lava_weights(compiled), lava_weights(t)
    assert w0.keys() == w1.keys() and any(not np.array_equal(w0[k], w1[k]) for k in w0)
    lava.export(c1.graph, tmp_path / "fresh")
    fresh = {}
    with h5py.File(next((tmp_path / "fresh").glob("*.net")), "r") as f:
        f.visititems(lambda n, o: fresh.__setitem__(n, o[()])
                     if isinstance(o, h5py.Dataset) and n.endswith("weight") else None)
    assert all(np.array_equal(fresh[k], w1[k]) for k in w1)
    # model.nir: its weights are the trained graph's, and it computes something else now
    (nw0, y0), (nw1, y1) = nir_readout(compiled), nir_readout(t)
    for name, w in nw1.items():
        key = next(k for k in c1.graph.node(name).params if k.endswith("weight"))
        np.testing.assert_array_equal(w, c1.graph.params[key].numpy())
        assert not np.array_equal(w, nw0[name])
    assert not torch.equal(y0, y1)
    # cost.json: regenerated under the firing rates measured after training
    cost0 = json.loads((compiled / "cost.json").read_text())
    cost1 = json.loads((t / "cost.json").read_text())
    assert cost0 != cost1
    code, out, err = snnc("cost", t, "--format", "json")
    assert code == 0, err
    # export re-emits in place from the current weights: same bytes, record and checkpoints kept
    nir_bytes = (t / "model.nir").read_bytes()
    (t / "model.nir").unlink()
    code, _, err = snnc("export", t, "--emit", "nir")
    assert code == 2 and "model.nir" in err  # a missing file breaks the manifest
    code, _, err = snnc("export", t, "--emit", "lava")
    assert code == 2
    (t / "model.nir").write_bytes(nir_bytes)
    code, _, err = snnc("export", t, "--emit", "nir")
    assert code == 0, err
    assert (t / "model.nir").read_bytes() == nir_bytes and load(t).trained["epochs"] == 1
    c1.emit(["nir"])  # the Python equivalent, from the directory `c1` was loaded from
    assert (t / "model.nir").read_bytes() == nir_bytes
    assert (t / "checkpoints" / "train_state.json").is_file()


def test_recompile_train_force_and_resume(compiled, tmp_path):
    from snnc.compiler import load

    d = tmp_path / "d.snnc"
    # recompiling an output directory starts from its stored ANN form, with its options
    code, _, err = snnc("compile", compiled, "-o", d, "--emit", "torch,nir")
    assert code == 0, err
    c0, cd = load(compiled), load(d)
    assert cd.graph == c0.graph and cd.graph.same_params(c0.graph)
    assert cd.options == c0.options
    code, _, err = snnc("train", d, "--epochs", "1", *TRAIN)
    assert code == 0, err
    trained = (d / "graph.safetensors").read_bytes()
    # trained weights are not replaced without --force: neither by training nor compiling
    code, _, err = snnc("train", d, "--epochs", "1", *TRAIN)
    assert code == 2 and "already trained" in err and "--force" in err
    code, _, err = snnc("compile", compiled, "-o", d)
    assert code == 2 and "trained weights" in err and "--force" in err
    assert (d / "graph.safetensors").read_bytes() == trained
    from snnc.compiler import train  # the Python API: train(DIR, ..., out=, force=)

    nir_before = (d / "model.nir").read_bytes()

    res = train(d, data="digits", epochs=1, force=True, limit=128, test_limit=64,
                batch_size=32, lr=0.01, progress=False)
    assert (d / "graph.safetensors").read_bytes() != trained
    assert res.files and load(d).trained["accuracy"] == res.accuracy
    assert (d / "model.nir").read_bytes() != nir_before  # regenerated from the new weights
    # an interrupted run (killed after its last checkpoint, before its commit) resumes
    e = tmp_path / "e.snnc"
    code, _, _ = snnc("train", compiled, "-o", e, "--epochs", "2", *TRAIN,
                      env={"SNNC_TEST_KILL_AT": "train:commit"})
    assert code == -9
    assert load(e).trained is None  # e is the complete copy of the untrained directory
    state = json.loads((e / "checkpoints" / "train_state.json").read_text())
    assert state["epoch"] == 2
    bad = [a if a != "0.01" else "0.02" for a in TRAIN]
    code, _, err = snnc("train", compiled, "-o", e, "--epochs", "2", *bad)
    assert code == 2 and "--lr 0.02 (checkpoint: 0.01)" in err, err
    bad = [a if a != "128" else "96" for a in TRAIN]
    code, _, err = snnc("train", compiled, "-o", e, "--epochs", "2", *bad, "--optimizer", "sgd")
    assert code == 2 and "--limit 96" in err and "--optimizer 'sgd'" in err, err
    code, _, err = snnc("train", compiled, "-o", e, "--epochs", "1", *TRAIN)
    assert code == 2 and "fewer" in err
    code, out, err = snnc("train", compiled, "-o", e, "--epochs", "3", *TRAIN)
    assert code == 0, err
    assert "re-planned over 3 epochs" in out
    report = json.loads((e / "train_report.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert report["history"][:2] == state["history"]
    assert load(e).trained["epochs"] == 3
