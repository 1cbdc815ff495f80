"""The CI part of the fuzzing harness (docs/frontends.md, "Validation and limits"): a few
hundred seeded mutations of ONNX files exported by both torch exporters, each run in a worker
process capped at 6 GiB of address space. Every file must be a clean refusal or an accepted
model whose module runs forward; no crash, hang or memory blow-up. benchmarks/fuzz.py runs the
same harness on thousands of files."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import corpus, mutate, nets, runner

N_CI = 300
SEED = 20260


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return corpus.export_bases(tmp_path_factory.mktemp("fuzz-bases"))


def test_seeded_corpus(bases, tmp_path):
    files = corpus.generate(bases, N_CI, SEED, tmp_path)
    results = runner.run_many([p for _, _, p in files], workers=2, cap_bytes=6 << 30,
                              timeout=120)
    s = runner.summary(results)
    print(s)
    assert set(s["counts"]) <= {"refused", "accepted"}, s["signatures"]
    assert s["counts"]["refused"] > N_CI // 2 and s["counts"]["accepted"] > 10
    assert s["ort_rejects_accepted"] == 0 and s["ort_differs"] == 0
    kinds = {k for _, kind, _ in files for k in kind.split("+")}
    assert {"bytes", "named", "attr", "init", "input_shape", "wiring", "meta",
            "opset"} <= kinds
    assert {label for label, _, _ in files} == {label for label, _ in bases}


def test_generation_is_a_function_of_the_seed(bases, tmp_path):
    a = corpus.generate(bases[:2], 12, 7, tmp_path / "a")
    b = corpus.generate(bases[:2], 12, 7, tmp_path / "b")
    assert [(x[1], x[2].read_bytes()) for x in a] == [(x[1], x[2].read_bytes()) for x in b]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-tiny")
    return mutate.load(nets.export("tiny_cnn", "torchscript", folder)), folder


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_any_structural_mutation_is_refused_or_runs(tiny, seed):
    """Property over the structural mutation classes, in process (under snnc's default
    memory limit): compile, cost and forward either run or raise an SnncError."""
    model, folder = tiny
    rng = random.Random(seed)
    _, path = mutate.mutate(model, rng, folder, f"h{seed}")
    out = runner.check_one(str(path))
    assert out["outcome"] in ("refused", "accepted"), out
