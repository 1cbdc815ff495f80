"""The `snnc` command line: help, exit codes, bad input, the output directory (docs/design.md
"Interfaces"). Most cases run in-process through `main(argv)`; a few through the real console
script, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snnc.compiler.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "models" / "examples" / "resnet20.onnx"
SNNC = str(Path(sys.executable).with_name("snnc"))


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def snnc(*args, env=None, cwd=None):
    return subprocess.run([SNNC, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "--help"], ["compile", "--help"],
                                  ["passes", "--help"], ["targets", "--help"], ["cost", "--help"],
                                  ["train", "--help"], ["search", "--help"],
                                  ["experiment", "--help"]])
def test_help_everywhere(argv, capsys):
    code, out, _ = run(argv, capsys)
    assert code == 0 and "Usage:" in out


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and "snnc" in out and "0." in out


def test_unknown_option_is_a_user_error(capsys):
    code, _, err = run(["compile", str(EXAMPLE), "--residual", "s3s"], capsys)
    assert code == 2 and "s3s" in err


def test_compile_example_writes_the_output_directory(tmp_path, capsys):
    out = tmp_path / "r20.snnc"
    code, _, err = run(["compile", EXAMPLE, "--residual", "s2s", "--target", "loihi2", "-o", out],
                       capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("graph.snnc", "graph.json", "graph.safetensors", "ann.json", "ann.safetensors"):
        assert (out / name).is_file(), name
        assert name in manifest["files"]
    # each fact once: the PyTorch module's weights are graph.safetensors (docs/outputs.md)
    assert not (out / "model.safetensors").exists() and not (out / "module.json").exists()
    assert manifest["options"]["residual"] == "s2s" and manifest["options"]["target"] == "loihi2"
    assert manifest["versions"]["torch"].startswith("2.13")
    assert [p.name for p in tmp_path.iterdir()] == ["r20.snnc"]  # no temporary left behind
    text = (out / "graph.snnc").read_text()
    assert "~S2S" in text and "lif(" in text and "readout(" in text


def test_load_rebuilds_the_compiled_module(tmp_path):
    import torch

    from snnc.compiler import compile, load

    c = compile(str(EXAMPLE), residual="s2m", timesteps=3)
    c.save(tmp_path / "out")
    back = load(tmp_path / "out")
    assert back.graph == c.graph and back.graph.same_params(c.graph)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(back.to_torch().eval()(x), c.to_torch().eval()(x))


def test_inspect_shows_blocks_matrices_and_skip_edges(capsys):
    code, out, err = run(["inspect", EXAMPLE], capsys)
    assert code == 0, err
    assert out.startswith("graph ")
    assert "# 9 block(s)" in out  # ResNet-20: 3 stages x 3 basic blocks
    assert sum(ln.startswith("  ASC %") for ln in out.splitlines()) == 9
    assert "0 0 0 2" in out  # a basic block: a_{0,3} = 2 (paper 1 eq. 1)


def test_inspect_check_compares_with_onnxruntime(capsys):
    code, out, err = run(["inspect", EXAMPLE, "--check"], capsys)
    assert code == 0, err


def test_passes_and_targets_list_what_is_registered(capsys):
    code, out, _ = run(["passes"], capsys)
    assert code == 0
    for name in ("relu-to-lif", "bn-to-bntt", "lower-residual", "fold-bn", "annotate-skips"):
        assert name in out
    code, out, _ = run(["targets"], capsys)
    assert code == 0
    for name in ("generic", "loihi1", "loihi1-sanafe", "loihi2", "truenorth", "speck", "cmos45"):
        assert name in out


def test_user_pass_runs_from_the_command_line(tmp_path):
    (tmp_path / "mypasses.py").write_text(textwrap.dedent('''
        def tag(g, *, label="x"):
            """Requires: any graph. Guarantees: graph attr `tag` = label."""
            return g.with_attrs(tag=label)
    '''))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "o"
    r = snnc("compile", EXAMPLE, "-o", out, "--pass", "mypasses:tag{label=hello}", "--no-cost",
             env=env)
    assert r.returncode == 0, r.stderr
    assert "tag=hello" in (out / "graph.snnc").read_text().splitlines()[0]


def _bad_files(tmp: Path) -> dict[str, Path]:
    files = {}
    files["empty"] = tmp / "empty.onnx"
    files["empty"].write_bytes(b"")
    files["text"] = tmp / "notes.onnx"
    files["text"].write_text("this is not a model\n")
    files["truncated"] = tmp / "truncated.onnx"
    files["truncated"].write_bytes(EXAMPLE.read_bytes()[:5000])
    return files


@pytest.mark.parametrize("case", ["empty", "text", "truncated"])
def test_bad_file_fails_cleanly_through_the_real_cli(case, tmp_path):
    bad = _bad_files(tmp_path)[case]
    out = tmp_path / "out.snnc"
    r = snnc("compile", bad, "-o", out)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("snnc: error:") and bad.name in r.stderr
    assert not out.exists()
    assert not any(p.name.startswith(".out.snnc") for p in tmp_path.iterdir())


def test_missing_file_is_a_user_error(tmp_path, capsys):
    code, _, err = run(["compile", tmp_path / "nope.onnx"], capsys)
    assert code == 2 and "nope.onnx" in err and "no such file" in err


def test_unsupported_ops_are_listed_at_once(tmp_path, capsys):
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            y = torch.nn.functional.gelu(self.conv(x))
            y = y * torch.sigmoid(y)
            return self.fc(y.mean((2, 3)))

    path = tmp_path / "mixed.onnx"
    torch.onnx.export(Mixed().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False)
    out = tmp_path / "mixed.snnc"
    code, _, err = run(["compile", path, "-o", out], capsys)
    assert code == 2
    assert "mixed.onnx" in err and "Gelu" in err and "Sigmoid" in err
    assert not out.exists()


def test_failure_after_import_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "x.snnc"
    code, _, err = run(["compile", EXAMPLE, "-o", out, "--pass", "no-such-pass"], capsys)
    assert code == 2 and "no-such-pass" in err
    assert not out.exists()


def test_failed_recompile_keeps_the_previous_directory(tmp_path, capsys):
    out = tmp_path / "x.snnc"
    assert run(["compile", EXAMPLE, "-o", out, "--no-cost"], capsys)[0] == 0
    before = (out / "manifest.json").read_text()
    code, _, _ = run(["compile", EXAMPLE, "-o", out, "--pass", "nonexistent_module:fn"], capsys)
    assert code == 2
    assert (out / "manifest.json").read_text() == before


def test_reset_option(tmp_path, capsys):
    out = tmp_path / "z.snnc"
    code, _, err = run(["compile", EXAMPLE, "--reset", "zero", "-o", out, "--no-cost"], capsys)
    assert code == 0, err
    lifs = [ln for ln in (out / "graph.snnc").read_text().splitlines() if "= lif(" in ln]
    assert lifs and all("reset=zero" in ln for ln in lifs)
    code, _, err = run(["compile", EXAMPLE, "--reset", "subtract", "--target", "loihi2",
                        "-o", tmp_path / "s.snnc"], capsys)
    assert code == 2 and "resets to zero" in err and not (tmp_path / "s.snnc").exists()


def test_a_command_runs_with_fewer_collections_and_restores_the_callers(capsys, monkeypatch):
    """`main` raises the collector's first threshold while a command runs (graphs are many
    small objects freed by reference count, docs/costmodel.md "Speed") and gives the caller's
    settings back, also when the command fails; a caller who turned collection off keeps it
    off."""
    import gc

    from snnc.compiler import cli

    seen = []
    real = cli._main
    monkeypatch.setattr(cli, "_main", lambda argv: (seen.append(gc.get_threshold()),
                                                    real(argv))[1])
    old = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert main(["targets"]) == 0
        assert seen[-1] == (cli.GC_THRESHOLD, 10, 10) and gc.get_threshold() == (700, 10, 10)
        assert main(["cost", "no-such-file.onnx"]) == 2
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(0, 10, 10)
        assert main(["targets"]) == 0
        assert seen[-1] == (0, 10, 10) and gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*old)
