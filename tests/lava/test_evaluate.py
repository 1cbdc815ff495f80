"""The Lava evaluation on data (docs/lava.md "Evaluating in the simulator"): estimated time
and a progress bar first, then agreement with the PyTorch model, from Python and the CLI."""

from __future__ import annotations

import io
import json

from snnc.backends.lava.evaluate import evaluate, main
from snnc.compiler.cli import main as snnc
from tests.lava import nets


def test_evaluate_agrees_and_estimates(tmp_path, capfd, monkeypatch):
    onnx_path = nets.digits_onnx(tmp_path / "net.onnx")
    d = tmp_path / "net.snnc"
    assert snnc(["compile", str(onnx_path), "-o", str(d), "--target", "loihi2", "--encoder",
                 "events", "-T", "8", "--no-cost"]) == 0
    before = sorted(p.name for p in d.iterdir())
    err = io.StringIO()
    r = evaluate(d, data="digits-events", limit=4, out=err)
    assert "estimated" in err.getvalue() and "min more" in err.getvalue()
    assert r["samples"] == 4 and r["agree"] == 1.0 and r["max_readout_diff"] == 0.0
    assert 0.0 <= r["acc_lava"] <= 1.0 and r["slowdown"] > 1
    assert sorted(p.name for p in d.iterdir()) == before  # the directory is unchanged
    capfd.readouterr()
    assert main([str(d), "--limit", "2", "--json"]) == 0
    out = json.loads(capfd.readouterr().out)  # only the result: lava's notices go to stderr
    assert out["samples"] == 2 and out["agree"] == 1.0
    # `snnc eval --backend lava` runs the same module in the Lava environment (a subprocess:
    # here this interpreter, which has lava), output streamed through
    monkeypatch.delenv("SNNC_LAVA_PYTHON", raising=False)
    capfd.readouterr()
    assert snnc(["eval", str(d), "--data", "digits-events", "--backend", "lava", "--limit", "3",
                 "--json"]) == 0
    cap = capfd.readouterr()
    out = json.loads(cap.out)
    assert out["samples"] == 3 and out["agree"] == 1.0 and "estimated" in cap.err
    assert sorted(p.name for p in d.iterdir()) == before
