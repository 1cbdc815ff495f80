"""Session details: the step-0 bias protocol (docs/lava.md "Timing"), event counts as input,
and Lava's runtime after tqdm fixed multiprocessing's start method (as `snnc train` does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snnc.backends import lava
from snnc.compiler.errors import SnncError
from tests.lava import nets

ROOT = Path(__file__).resolve().parents[2]


def test_cold_start_bias_differs_from_the_trained_protocol(tmp_path):
    """bias_start=0 lets every bias act during step 0, before any input: for a network with
    biases the readout then differs from the PyTorch backend, which bias_start=1 matches."""
    from snnc.backends.lava.sim import Session

    g = nets.compile_net(nets.SeqConv(bias=True))
    path = lava.export(g, tmp_path)
    x = nets.events(1, seed=2)[0]
    _, y = nets.torch_reference(g, x)
    got = {}
    for b in (1, 0):
        with Session(path, nets.SHAPE, bias_start=b) as sim:
            (got[b],) = sim.run(x)["voltage"].values()
    np.testing.assert_array_equal(got[1], y * nets.T)
    assert not np.array_equal(got[0], y * nets.T)


def test_event_counts_and_fractional_input(tmp_path):
    """Event frames count events per pixel (> 1 happens): the input synapses carry them as
    graded messages, exactly as the PyTorch backend multiplies them; fractions are refused."""
    from snnc.backends.lava.sim import Session

    g = nets.compile_net(nets.SeqConv(bias=False))
    path = lava.export(g, tmp_path)
    x = np.random.default_rng(0).integers(0, 4, size=(nets.T, *nets.SHAPE)).astype(np.float32)
    _, y = nets.torch_reference(g, x)
    with Session(path, nets.SHAPE) as sim:
        (v,) = sim.run(x)["voltage"].values()
        with pytest.raises(SnncError, match="integer-valued"):
            sim.run(x * 0.5)
    assert (x > 1).any() and np.abs(y).sum() > 0
    np.testing.assert_array_equal(v, y * nets.T)


def test_runtime_imports_after_tqdm_fixed_the_start_method(tmp_path):
    """tqdm's lock fixes multiprocessing's context; Lava then used to fail to import with
    "context has already been set" (training then simulating in one process)."""
    code = (
        "import multiprocessing as mp, numpy as np, tqdm\n"
        "list(tqdm.tqdm(range(2), disable=False))\n"
        "assert mp.get_start_method(allow_none=True) == 'fork'\n"
        "from snnc.backends import lava\n"
        "from snnc.backends.lava.sim import Session\n"
        "from tests.lava import nets\n"
        f"p = lava.export(nets.compile_net(nets.SeqConv(bias=False)), {str(tmp_path)!r})\n"
        "with Session(p, nets.SHAPE) as s:\n"
        "    print('ran', s.run(nets.events(1)[0])['voltage'] != {})\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ran True" in r.stdout
