"""`snnc search` end to end on a real ONNX file: artifacts, journal, --resume, user errors."""

import json

import pytest
import torch
from click.testing import CliRunner

from snnc.compiler.cli import cli
from snnc.search.journal import read_journal
from snnc.search.nets import SingleBlockNet

ARGS = ["--data", "digits", "--batch", "2", "--init", "2", "-T", "2", "--train", "128",
        "--val", "64", "--parent-epochs", "1", "--objective", "drop+energy",
        "--energy-weight", "0.01"]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    net = SingleBlockNet(channels=4, input_size=8).eval()
    path = tmp_path_factory.mktemp("m") / "single_block.onnx"
    torch.onnx.export(net, (torch.randn(1, 1, 8, 8),), str(path), dynamo=False)
    return path


def _evals(d):
    return {r["eval_id"]: r for r in read_journal(d / "journal.jsonl") if r["type"] == "eval"}


def test_search_cli_writes_artifacts_and_resumes(onnx_model, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["search", str(onnx_model), *ARGS, "--budget", "4", "-o",
                                 str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "best: eval" in r.output
    for f in ("journal.jsonl", "summary.json", "best_so_far.png", "best/graph.snnc",
              "best/graph.json", "best/graph.safetensors", "best/manifest.json",
              "best/cost.json"):
        assert (out / f).is_file(), f
    first = _evals(out)
    assert sorted(first) == [0, 1, 2, 3]
    for e in first.values():
        assert e["objective"] == pytest.approx(e["drop"] + 0.01 * e["energy_uj"])
        assert e["rates"] and e["cost"]["totals"]["sops"] > 0
    summary = json.loads((out / "summary.json").read_text())
    best = min(first.values(), key=lambda e: e["objective"])
    assert summary["best"]["eval_id"] == best["eval_id"]
    # the best candidate rebuilt with its seed reproduces the journalled drop
    assert summary["best_rerun_drop"] == pytest.approx(best["drop"])
    from snnc.compiler.text import parse

    g = parse((out / "best" / "graph.snnc").read_text())
    assert g.form.value == "snn"
    # best/ is an ordinary output directory (docs/outputs.md): loadable, inspect accepts it
    from snnc.compiler import load

    back = load(out / "best")
    assert back.graph == g and back.trained["config"]["search_eval"] == best["eval_id"]
    r = CliRunner().invoke(cli, ["inspect", str(out / "best")])
    assert r.exit_code == 0 and "lif(" in r.output, r.output
    # without --resume an existing journal is refused (exit 2, no traceback)
    r = CliRunner().invoke(cli, ["search", str(onnx_model), *ARGS, "--budget", "6", "-o",
                                 str(out)])
    assert r.exit_code == 2 and "pass --resume" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["search", str(onnx_model), *ARGS, "--budget", "6", "-o",
                                 str(out), "--resume"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    after = _evals(out)
    assert sorted(after) == list(range(6))
    assert all(after[i]["finished_at"] == first[i]["finished_at"] for i in first)


def test_search_cli_user_errors(tmp_path):
    r = CliRunner().invoke(cli, ["search", str(tmp_path / "missing.pt"), "-o",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["search", "single-block", "--objective", "speed"])
    assert r.exit_code == 2


def test_search_cli_parent_train_and_schedule(onnx_model, tmp_path):
    """--parent-train N: the parent learns from the first N samples, each candidate is
    fine-tuned on the first --train and scored on the --val after the parent's (docs/search.md
    "Evaluation with weight sharing"); too many for the dataset is exit 2 naming the option.
    --schedule reaches the evaluation settings the journal records."""
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["search", str(onnx_model), *ARGS, "--budget", "2",
                                 "--parent-train", "512", "--schedule", "none", "-o", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    head = next(r for r in read_journal(out / "journal.jsonl") if r["type"] == "header")
    assert head["prepare"]["parent_train"] == 512 and head["prepare"]["train"] == 128
    assert head["settings"]["parent_train"] == 512 and head["settings"]["schedule"] == "none"
    r = CliRunner().invoke(cli, ["search", str(onnx_model), *ARGS, "--budget", "2",
                                 "--parent-train", "100000", "-o", str(tmp_path / "big")])
    assert r.exit_code == 2 and "--parent-train 100000" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "big" / "journal.jsonl").exists()
