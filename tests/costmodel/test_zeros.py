"""The zero-weight test on a helper thread (costmodel/zeros.py) and the weight arenas it reads
through (compiler/core/arenas.py): the same answers as counting._no_zero, the same reports."""

from __future__ import annotations

import gc
import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.compiler.core import arenas
from snnc.costmodel import zeros
from snnc.costmodel.counting import _no_zero
from snnc.costmodel.zeros import ZeroScan

# values a weight may hold: zeros of both signs, a NaN and an infinity (neither is zero)
VALUES = [0.0, -0.0, 1.5, -2.0, 3e-39, float("nan"), float("inf")]


def _arena(nbytes: int) -> np.ndarray:
    """A buffer as the ONNX readers make one (64-byte aligned), held as an arena; its bytes
    are zero, so a tensor's test that read past its end would find a zero."""
    buf = np.zeros(nbytes + 64, dtype=np.uint8)
    block = buf[-buf.ctypes.data % 64:][:nbytes]
    arenas.hold(block)
    return block


@st.composite
def layouts(draw):
    """(sizes, gaps before each tensor in values, values of each tensor)."""
    n = draw(st.integers(1, 8))
    sizes = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    values = [draw(st.lists(st.sampled_from(VALUES), min_size=s, max_size=s)) for s in sizes]
    return sizes, gaps, values


@settings(max_examples=150, deadline=None)
@given(layouts(), st.integers(1, 64))
def test_the_thread_answers_as_no_zero(layout, chunk):
    """Tensors laid out in an arena with gaps of zeros between them, chunked at any size:
    each answer equals `_no_zero`'s on the tensor, and every one came from the thread."""
    sizes, gaps, values = layout
    block = _arena(4 * (sum(sizes) + sum(gaps)))
    flat = block.view(np.float32)
    weights, at = {}, 0
    for i, (size, gap, vals) in enumerate(zip(sizes, gaps, values)):
        at += gap
        flat[at:at + size] = vals
        weights[f"layer{i}"] = flat[at:at + size]
        at += size
    old = zeros._CHUNK
    zeros._CHUNK = chunk
    try:
        with ZeroScan(weights) as scan:
            got = {name: scan.no_zero(name, w) for name, w in weights.items()}
            answered = dict(scan._answer)
    finally:
        zeros._CHUNK = old
    assert got == {name: _no_zero(w) for name, w in weights.items()}
    assert answered == got


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 20)), min_size=1, max_size=12),
       st.integers(1, 30))
def test_chunks_hold_whole_tensors_within_the_limit(spans, chunk):
    """`_runs` covers the tensors in order, each run at most `_CHUNK` values (the mask's size)
    unless one tensor alone is longer."""
    bounds, at = [], 0
    for gap, size in spans:
        bounds += [at + gap, at + gap + size]
        at += gap + size
    old = zeros._CHUNK
    zeros._CHUNK = chunk
    try:
        runs = list(zeros._runs(np.array(bounds), len(spans)))
    finally:
        zeros._CHUNK = old
    assert [r[2] for r in runs] == [0, *(r[3] for r in runs[:-1])] and runs[-1][3] == len(spans)
    for lo, hi, first, last in runs:
        assert (lo, hi) == (bounds[2 * first], bounds[2 * last - 1])
        assert hi - lo <= chunk or last == first + 1


def test_weights_outside_an_arena_or_not_plain_are_tested_on_the_callers_thread():
    """A tensor outside every arena, a float64 or non-contiguous one, one overlapping an
    earlier tensor (tied weights) and one whose memory moved since the scan started: tested
    by `_no_zero` where asked, with its answer."""
    block = _arena(4 * 64)
    flat = block.view(np.float32)
    flat[:] = 1.0
    flat[40] = 0.0
    loose = np.ones(8, np.float32)
    weights = {"in": flat[:32], "tied": flat[16:48], "loose": loose,
               "f64": np.ones(8), "strided": flat[32:64:2]}
    with ZeroScan(weights) as scan:
        assert set(scan._where) == {"in"}
        assert scan.no_zero("in", flat[:32]) is True
        assert scan.no_zero("tied", flat[16:48]) is False  # holds flat[40]
        assert scan.no_zero("loose", loose) is True
        assert scan.no_zero("strided", flat[32:64:2]) is False  # flat[40] again
        assert scan.no_zero("in", flat[40:56]) is False  # not the memory scanned as "in"


def test_without_a_thread_every_weight_is_tested_where_asked(monkeypatch):
    """Where no thread can be started, the scan leaves every weight to `_no_zero`."""
    import threading

    block = _arena(4 * 16)
    flat = block.view(np.float32)
    flat[:] = 2.0
    flat[9] = -0.0

    def refuse(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    weights = {"a": flat[:8], "b": flat[8:]}
    with ZeroScan(weights) as scan:
        assert scan.no_zero("a", flat[:8]) is True
        assert scan.no_zero("b", flat[8:]) is False
        assert not scan._answer


def test_arena_of_finds_live_buffers_only():
    block = _arena(256)
    base = block.__array_interface__["data"][0]
    own, offset = arenas.arena_of(base + 8, 16)
    assert own is arenas.owner(block) and offset == base + 8 - own.__array_interface__["data"][0]
    end = own.__array_interface__["data"][0] + own.nbytes
    assert arenas.arena_of(end - 16, 16)[0] is own  # the buffer's last bytes
    assert arenas.arena_of(end - 8, 16) is None  # runs past the buffer's end
    assert arenas.arena_of(base, 4) is not None
    del own, block
    gc.collect()
    assert arenas.arena_of(base, 4) is None  # freed: no longer an arena


class _Pruned(torch.nn.Module):
    """A small CNN with zero weights (pruned), a -0.0 among them, and one dense layer."""

    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 8 * 8, 10)
        with torch.no_grad():
            self.c2.weight[torch.rand_like(self.c2.weight) < 0.4] = 0.0
            self.fc.weight[torch.rand_like(self.fc.weight) < 0.4] = 0.0
            self.fc.weight.view(-1)[3] = -0.0
            for bn in (self.b1, self.b2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_reports_of_imported_weights_equal_the_per_tensor_test(tmp_path, monkeypatch, dynamo):
    """compile -> cost on a pruned network exported by each of torch's exporters: the import
    holds its weights in an arena, the thread answers every layer, and the JSON report is
    the one `_no_zero` on each tensor gives (arenas hidden)."""
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import cost_report

    m = _Pruned().eval()
    path = tmp_path / "pruned.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 3, 8, 8),), str(path), dynamo=dynamo)
    assert path.with_name("pruned.onnx.data").is_file() == dynamo  # external data (dynamo)
    g = snnc_compile(str(path)).graph
    answered = {}
    real_run = ZeroScan._run

    def run(self, jobs):
        real_run(self, jobs)
        answered.update(self._answer)
    monkeypatch.setattr(ZeroScan, "_run", run)
    fast = cost_report(g).to_json()
    layers = {r["name"] for r in fast["layers"] if r["nonzero_synapses"] is not None}
    assert answered.keys() == layers and len(layers) == 3
    assert sorted(answered.values()) == [False, False, True]  # c2 and fc hold zeros
    monkeypatch.setattr(arenas, "arena_of", lambda ptr, nbytes: None)
    answered.clear()
    plain = cost_report(g).to_json()
    assert not answered  # no thread: every layer tested on this thread
    assert json.dumps(fast, sort_keys=True) == json.dumps(plain, sort_keys=True)
    nz = {r["name"]: r["nonzero_synapses"] for r in fast["layers"]}
    assert nz == {r["name"]: r["nonzero_synapses"] for r in plain["layers"]}
    assert any(r["nonzero_synapses"] < r["synapses"] for r in fast["layers"]
               if r["nonzero_synapses"] is not None)
