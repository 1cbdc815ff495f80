"""Delay depth (docs/passes.md "Delay depth"): on a target with one step of synaptic delay per
layer, a T at or below the shortest input-to-readout depth gives an output that does not depend
on the input; compile warns, `--timesteps auto` avoids it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from snnc.compiler import compile
from snnc.compiler.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "models" / "examples" / "resnet20.onnx"


@pytest.fixture(scope="module")
def resnet20_t8():
    return compile(str(EXAMPLE), residual="s2m", target="loihi2", timesteps=8)


def test_resnet20_s2m_loihi2_depths(resnet20_t8):
    d = resnet20_t8.delay_depth()
    # stem lif + one lif per block (the S2M edges skip each block's first lif): 1 + 9 = 10;
    # the longest path goes through all 19 lifs.
    assert (d.shortest, d.longest, d.delay) == (10, 19, 1)
    assert d.min_timesteps == 11


def test_t8_warns_and_t16_does_not(caplog):
    with caplog.at_level(logging.WARNING, logger="snnc.compiler"):
        compile(str(EXAMPLE), residual="s2m", target="loihi2", timesteps=8)
    assert "shortest input-to-readout path is 10 steps" in caplog.text
    assert "longest 19" in caplog.text and "-T 11" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="snnc.compiler"):
        compile(str(EXAMPLE), residual="s2m", target="loihi2", timesteps=16)
    assert "input-to-readout" not in caplog.text


def test_the_warning_is_true_the_output_ignores_the_input(resnet20_t8):
    m = resnet20_t8.to_torch().eval()
    with torch.no_grad():
        a, b = m(torch.zeros(2, 3, 32, 32)), m(torch.rand(2, 3, 32, 32) * 4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_no_delay_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="snnc.compiler"):
        c = compile(str(EXAMPLE), residual="s2m", target="generic", timesteps=2)
    assert c.delay_depth().shortest == 0 and "input-to-readout" not in caplog.text


def test_timesteps_auto_is_depth_plus_window(tmp_path, capsys):
    c = compile(str(EXAMPLE), residual="s2m", target="loihi2", timesteps="auto", window=6)
    assert c.options.timesteps == 16 and c.graph.attrs["timesteps"] == 16
    assert c.auto_timesteps
    code = main(["compile", str(EXAMPLE), "-o", str(tmp_path / "o"), "--residual", "s2m",
                 "--target", "loihi2", "-T", "auto", "--window", "4"])
    err = capsys.readouterr().err
    assert code == 0 and "T = 14" in err and "shortest 10, longest 19" in err
    assert main(["compile", str(EXAMPLE), "-T", "soon"]) == 2


def test_cost_report_shows_both_depths(resnet20_t8):
    rep = resnet20_t8.cost().to_json()
    assert rep["delay_depth"]["shortest"] == 10 and rep["delay_depth"]["longest"] == 19
