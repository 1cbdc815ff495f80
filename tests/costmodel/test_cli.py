"""`snnc cost MODEL|DIR` end to end: ONNX file, zoo model, compiled directory; every format,
--plot, --rate (one and per layer), --calibrate on real offline data (snnc.data digits)."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from snnc.compiler.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "costmodel.md"


class Tiny(torch.nn.Module):
    """8x8 grey input (the digits' shape): conv-bn-relu, one residual block, pool, fc."""

    def __init__(self):
        super().__init__()
        self.c0, self.b0 = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.c1, self.b1 = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.c2, self.b2 = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, x):
        x = torch.relu(self.b0(self.c0(x)))
        y = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(y)) + x)
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


# MACs by hand: conv0 4*64*1*9 = 2304, conv1 and conv2 4*64*4*9 = 9216 each, fc 4*10 = 40.
TINY_MACS = 2304 + 2 * 9216 + 40


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tiny().eval(), (torch.rand(1, 1, 8, 8),), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def compiled_dir(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "tiny.snnc"
    assert main(["compile", str(tiny_onnx), "-o", str(out), "--target", "loihi1",
                 "--encoder", "poisson", "-T", "4"]) == 0
    return out


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _doc_totals() -> list[str]:
    """The totals field names docs/costmodel.md promises ("JSON report")."""
    text = DOC.read_text().split("## JSON report", 1)[1]
    inner = re.search(r"`totals` \(([^)]*)\)", text, re.S).group(1)
    return re.findall(r"[a-z_]+", inner)


def test_onnx_json_fields_and_rates(tiny_onnx, capsys):
    rep = _json(capsys, ["cost", str(tiny_onnx), "--target", "loihi2", "--format", "json",
                         "--rate", "0.2"])
    assert rep["activity"]["source"] == "prior" and "0.2" in rep["activity"]["description"]
    assert rep["totals"]["macs"] == TINY_MACS
    names = _doc_totals()
    assert {"macs", "sops", "graded_sops", "neurons", "synapses", "memory_bytes", "cores",
            "chips"} <= set(names)
    assert set(names) <= set(rep["totals"])
    for fig in ("energy", "latency"):
        assert {"value", "band", "unit", "status"} <= set(rep[fig])
    assert rep["energy"]["value"] is None  # loihi2: no usable per-op energy
    # per-layer rates: one lif at 0.5, the rest at 0.05
    lif = next(r["neuron"] for r in rep["layers"] if r["neuron"] and r["op"] == "conv2d")
    rep2 = _json(capsys, ["cost", str(tiny_onnx), "--target", "loihi2", "--format", "json",
                          "--rate", "0.05", "--rate", f"{lif}=0.5"])
    row = next(r for r in rep2["layers"] if r["neuron"] == lif)
    assert row["spikes"] == pytest.approx(0.5 * row["neurons"] * rep2["timesteps"])
    others = [r for r in rep2["layers"] if r["neuron"] not in (lif, None) and r["op"] != "linear"]
    assert all(r["spikes"] == pytest.approx(0.05 * r["neurons"] * 8) for r in others)


def test_formats_and_plot(tiny_onnx, tmp_path, capsys):
    assert main(["cost", str(tiny_onnx), "--target", "loihi1", "--encoder", "poisson",
                 "--format", "md", "--plot", str(tmp_path / "c.png")]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Cost report") and "| name | op |" in md
    assert "from a transcription" in md and "## Graded edges" in md
    img = __import__("matplotlib.image", fromlist=["imread"]).imread(tmp_path / "c.png")
    assert img.shape[0] > 300 and img.shape[1] > 800  # two panels side by side
    assert main(["cost", str(tiny_onnx), "--target", "generic", "--format", "table"]) == 0
    assert f"MACs {TINY_MACS:,}" in capsys.readouterr().out


def test_binary_target_refusal_is_a_violation(tiny_onnx, capsys):
    """A lowering the target refuses: exit 2 naming the node and the rule, and no report (the
    cost command compiles with the public API, with no fallback pipeline)."""
    assert main(["cost", str(tiny_onnx), "--target", "loihi1", "--encoder", "direct",
                 "--format", "json"]) == 2
    cap = capsys.readouterr()
    assert "direct encoder" in cap.err and "encoder=poisson" in cap.err and "'c0'" in cap.err
    assert cap.out == ""


def test_estimate_on_unlowered_graph_has_violation_and_no_energy():
    """The cost model runs no pass: a graph with graded messages estimated on a binary-only
    target without its lowering is a violation, and no energy is printed; the API layer
    (cost_report) lowers it, or reports the pass's refusal as a violation."""
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import cost_report
    from snnc.costmodel import estimate

    c = snnc_compile(Tiny().eval(), target="generic", timesteps=4, input_shape=(1, 8, 8))
    rep = estimate(c.graph, target="loihi1", rates=0.1)
    assert any("not legalised for loihi1" in v for v in rep.violations)
    assert rep.energy["value"] is None and rep.energy["status"] == "violations"
    rep = cost_report(c.graph, "loihi1", rates=0.1)  # direct encoder: refused by the pass
    assert any("direct encoder" in v for v in rep.violations)
    assert rep.energy["value"] is None and rep.latency["value"] is None


def test_auto_encoder_is_poisson_on_a_binary_target(tiny_onnx, capsys):
    rep = _json(capsys, ["cost", str(tiny_onnx), "--target", "loihi1", "--format", "json"])
    assert not any("direct encoder" in v for v in rep["violations"])
    assert rep["totals"]["macs"] == TINY_MACS


def test_calibrate_on_digits(tiny_onnx, capsys):
    rep = _json(capsys, ["cost", str(tiny_onnx), "--target", "loihi1", "--encoder", "poisson",
                         "--calibrate", "digits", "--samples", "8", "--format", "json"])
    act = rep["activity"]
    assert act["source"] == "calibration" and "8 samples of digits test split" in \
        act["description"]
    lif_rows = [r for r in rep["layers"] if r["neuron"] and r["op"] == "conv2d"]
    rates = [r["spikes"] / (r["neurons"] * rep["timesteps"]) for r in lif_rows]
    assert all(0.0 <= r <= 1.0 for r in rates) and len(set(rates)) > 1  # measured, not a prior


def test_compiled_dir_in_process_and_subprocess(compiled_dir, capsys):
    written = json.loads((compiled_dir / "cost.json").read_text())  # by Compiled.cost()
    rep = _json(capsys, ["cost", str(compiled_dir), "--target", "loihi1", "--format", "json"])
    assert rep["totals"]["macs"] == written["totals"]["macs"] == TINY_MACS
    assert rep["totals"]["extra_synapses"] == written["totals"]["extra_synapses"] > 0
    assert rep["baseline"]["ann"]["value"] is not None  # the ANN read from ann.json
    exe = Path(sys.executable).with_name("snnc")
    proc = subprocess.run([str(exe), "cost", str(compiled_dir), "--target", "loihi1",
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"] == rep["totals"]


def test_zoo_model(capsys):
    assert main(["cost", "zoo:resnet20", "--target", "generic", "-T", "2", "--format",
                 "md"]) == 0
    out = capsys.readouterr().out
    assert "sresnet" in out and "layer3_2_conv2" in out


@pytest.mark.parametrize("argv,match", [
    (["--rate", "fast"], "--rate 'fast'"),
    (["--rate", "2.0"], "not a firing rate"),
    (["--rate", "0.1", "--calibrate", "digits"], "give one of them"),
])
def test_user_errors(tiny_onnx, capsys, argv, match):
    assert main(["cost", str(tiny_onnx)] + argv) == 2
    assert match in capsys.readouterr().err


def test_missing_model(capsys):
    assert main(["cost", "nope.onnx"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_dir_uses_its_own_target_steps_and_residual(compiled_dir, capsys):
    """`cost DIR` reads the directory's target (loihi1), T (4) and residual (s2s); an option
    that differs recompiles the stored ANN form with it, and a note says so."""
    rep = _json(capsys, ["cost", str(compiled_dir), "--format", "json"])
    assert "Loihi 1" in rep["target"] or "loihi1" in rep["target"].lower()
    assert rep["timesteps"] == 4 and rep["residual"] == "s2s"
    assert not any("recompiled" in n for n in rep["notes"])
    rep2 = _json(capsys, ["cost", str(compiled_dir), "-T", "2", "--residual", "s2m",
                          "--format", "json"])
    assert rep2["timesteps"] == 2 and rep2["residual"] == "s2m"
    assert any("recompiled here" in n and "timesteps=2" in n for n in rep2["notes"])
    assert main(["cost", str(compiled_dir)]) == 0
    out = capsys.readouterr().out
    assert "residual s2s" in out and "T=4" in out


def test_rate_names_validated_and_alone(tiny_onnx, capsys):
    rep = _json(capsys, ["cost", str(tiny_onnx), "--format", "json"])
    lif = next(r["neuron"] for r in rep["layers"] if r["neuron"] and r["op"] == "conv2d")
    rep = _json(capsys, ["cost", str(tiny_onnx), "--format", "json", "--rate", f"{lif}=0.5"])
    row = next(r for r in rep["layers"] if r["neuron"] == lif)
    assert row["spikes"] == pytest.approx(0.5 * row["neurons"] * rep["timesteps"])
    assert main(["cost", str(tiny_onnx), "--rate", "nosuchlayer=0.2"]) == 2
    err = capsys.readouterr().err
    assert "no lif layer 'nosuchlayer'" in err and lif in err


def test_calibrate_is_the_measured_mode(tiny_onnx, capsys):
    rep = _json(capsys, ["cost", str(tiny_onnx), "--calibrate", "digits", "--samples", "4",
                         "--format", "json"])
    assert rep["activity"]["mode"] == "measured"
    rows = [r for r in rep["layers"] if r["op"] in ("conv2d", "linear")]
    assert all(r["measured"] for r in rows)
    first = rows[0]
    assert first["in_kind"] == "direct_input" and first["in_density"] < 1.0  # not dense
    est = _json(capsys, ["cost", str(tiny_onnx), "--format", "json"])
    assert est["activity"]["mode"] == "estimate"
    assert any(n.startswith("estimate mode") for n in est["notes"])


def test_loihi2_report_cites_the_measured_pilotnet_energy(tiny_onnx, capsys):
    """No per-op Loihi 2 energy (no primary source): the notes cite lava-dl's measured
    PilotNet SNN per 16-step inference beside this graph's own counts."""
    rep = _json(capsys, ["cost", str(tiny_onnx), "--target", "loihi2", "--format", "json"])
    assert rep["energy"]["value"] is None
    (note,) = [n for n in rep["notes"] if "pilotnet_snn" in n]
    assert "1.661 mJ" in note and "1.094 mJ" in note and "16 step" in note
    assert f"{rep['totals']['cores']} cores" in note.split("This graph")[1]


def test_dir_measured_mode_uses_the_directory_module(compiled_dir, capsys):
    """`cost DIR --calibrate DATA`: the directory's own module (trained weights when trained)
    records the activity; target, T and residual stay the directory's."""
    rep = _json(capsys, ["cost", str(compiled_dir), "--calibrate", "digits", "--samples", "4",
                         "--format", "json"])
    assert rep["activity"]["mode"] == "measured" and rep["timesteps"] == 4
    assert not any("recompiled" in n for n in rep["notes"])
    assert all(r["measured"] for r in rep["layers"] if r["op"] in ("conv2d", "linear"))


def test_trained_dir_is_measured_on_its_training_data(tiny_onnx, tmp_path, capsys):
    """A trained directory: `snnc cost DIR` records the trained module on its training data
    (measured mode, source "measured"); --rate still gives the estimate mode."""
    out = tmp_path / "t.snnc"
    assert main(["compile", str(tiny_onnx), "-o", str(out), "-T", "2"]) == 0
    assert main(["train", str(out), "--data", "digits", "--epochs", "1", "--limit", "64",
                 "--test-limit", "32", "--batch-size", "32"]) == 0
    capsys.readouterr()
    rep = _json(capsys, ["cost", str(out), "--samples", "4", "--format", "json"])
    assert rep["activity"]["source"] == "measured" and rep["activity"]["mode"] == "measured"
    assert any("training data" in n and "digits" in n for n in rep["notes"])
    est = _json(capsys, ["cost", str(out), "--rate", "0.1", "--format", "json"])
    assert est["activity"]["mode"] == "estimate"
