"""A network trained with `snnc train` in target-exact mode keeps its predictions in Lava's
Loihi 2 simulator, sample by sample (the small version of benchmarks/lava_accuracy.py).

Compiled from a real ONNX file by `snnc compile --target loihi2 --encoder events`, trained
for 2 epochs on event frames of the 8x8 digits (`digits-events`, simulated), exported to HDF5
and run on 30 held-back test samples through one Session. What is verified is Lava's
bit-accurate CPU simulator, not silicon."""

from __future__ import annotations

import json

import numpy as np
import torch

from snnc.backends import lava
from snnc.backends.pytorch.io import load_graph, load_module
from snnc.data import load_dataset
from tests.lava import nets

T, EPOCHS, HELD_BACK = 8, 2, 30


def test_trained_network_keeps_its_predictions_in_lava(tmp_path):
    from snnc.backends.lava.sim import Session, readouts

    d = nets.compile_and_train(tmp_path, T, EPOCHS)  # the full training split (1437)
    report = json.loads((d / "train_report.json").read_text())
    assert len(report["history"]) == EPOCHS
    g, _ = load_graph(d)
    ds = load_dataset("digits-events", "test", limit=HELD_BACK, timesteps=T)
    with torch.no_grad():
        y_torch = load_module(d).eval()(ds.x.transpose(0, 1).contiguous()).numpy()
    with Session(lava.export(g, d / "lava"), (2, 8, 8)) as sim:
        y_lava = readouts(sim, ds.x.numpy())
    labels = ds.y.numpy()
    p_torch, p_lava = y_torch.argmax(1), y_lava.argmax(1)
    assert (p_torch == labels).mean() > 0.5, "training did not learn: the check would be weak"
    np.testing.assert_array_equal(p_lava, p_torch)  # every prediction, sample by sample
    np.testing.assert_array_equal(y_lava, y_torch.astype(np.float64))  # the logits themselves
