"""Regression tests for the fuzzing report's 17 crash signatures and invalid models that used to
be accepted (docs/frontends.md, "Validation and limits"): each is rebuilt from its description
(tests/fuzz/mutate.py) and must be a clean refusal naming the file and the node or tensor,
from Python (an SnncError) and from the CLI (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from snnc.compiler import compile
from snnc.compiler.core import limits
from snnc.compiler.cli import main
from snnc.compiler.core.errors import ImportFailed, ResourceLimit, SnncError, UnsupportedOp
from snnc.compiler.frontends.onnx import from_onnx
from tests.fuzz import mutate, nets

# case -> (error type, what the message must name)
REFUSED = {
    "gemm_bias_length": (ImportFailed, ["'/fc/Gemm'", "bias has 3 values for 10"]),
    "conv_weight_vs_kernel_shape": (ImportFailed, ["'/conv1/Conv'", "kernel_shape=[5, 5]"]),
    "input_width_2_31": (ResourceLimit, ["compiling", "'conv1'"]),
    "conv_pads_two_values": (ImportFailed, ["/conv1/Conv", "pads"]),
    "initializer_dims_vs_data": (ImportFailed, ["'conv1.weight'", "dims [8, 3, 3, 2]"]),
    "bn_scalar_scale": (ImportFailed, ["/bn/BatchNormalization", "rank"]),
    "pool_kernel_larger_than_input": (ImportFailed, ["'/pool/MaxPool'", "window"]),
    "dropout_ratio_vector": (ImportFailed, ["fuzz_Dropout", "scalar"]),
    "clip_empty_min": (ImportFailed, ["'/relu6/Clip'", "min input has shape [0]"]),
    "image_32768": (ResourceLimit, ["compiling", "'conv1'"]),
    "gemm_weight_string": (ImportFailed, ["/fc/Gemm", "string"]),
    "conv_strides_three_values": (ImportFailed, ["/conv1/Conv", "strides"]),
    "external_location_nul": (ImportFailed, ["'conv1.weight'", "NUL byte"]),
    "external_symlink_loop": (ImportFailed, ["'conv1.weight'", "symlink loop"]),
    "external_sparse_8gib": (ResourceLimit, ["'fuzz_big'", "8.0 GiB"]),
    "negative_stride": (ImportFailed, ["/conv1/Conv", "strides must only contain positive"]),
    "conv_bias_short": (ImportFailed, ["'/conv1/Conv'", "bias has shape [7]"]),
    "dilation_zero": (ImportFailed, ["/conv1/Conv", "dilations"]),
    "maxpool_kernel_zero": (ImportFailed, ["/pool/MaxPool", "kernel_shape"]),
    "maxpool_kernel_larger_than_input": (ImportFailed, ["'/pool/MaxPool'", "9 taps"]),
    "bn_negative_epsilon": (ImportFailed, ["'/bn/BatchNormalization'", "epsilon=-1.0"]),
    "nan_weight": (ImportFailed, ["'conv1.weight'", "1 NaN"]),
    "inf_weight": (ImportFailed, ["'fc.weight'", "1 infinite"]),
    # found by benchmarks/fuzz.py
    "conv_weight_rank_5": (ImportFailed, ["'/conv1/Conv'", "[8, 3, 3, 3, 1] for an input of "
                                                           "rank 4"]),
    "clip_without_bounds": (UnsupportedOp, ["pass 'relu-to-lif'", "'relu6' (op clip"]),
    "gemm_alpha_nan": (ImportFailed, ["'/fc/Gemm'", "alpha=nan is not a finite number"]),
}
# malformed metadata only names nodes: ignored, the model compiles and runs
TOLERATED = ["name_scopes_int", "name_scopes_none", "class_hierarchy_int"]


def test_every_case_is_covered():
    assert set(REFUSED) | set(TOLERATED) == set(mutate.SIGNATURES) | \
        set(mutate.ACCEPTED_INVALID) | set(mutate.FOUND)
    assert len(mutate.SIGNATURES) == 18  # 17 signatures + the 8 GiB sparse file


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("malformed")
    return mutate.load(nets.export("tiny_cnn", "torchscript", folder)), folder


@pytest.fixture(autouse=True)
def _limit():
    """A fixed memory limit: refusals must not depend on the machine's free memory."""
    limits.set_memory_limit("4G")
    yield
    limits.set_memory_limit(None)


def _build(base, case):
    model, folder = base
    fn = {**mutate.SIGNATURES, **mutate.ACCEPTED_INVALID, **mutate.FOUND}[case]
    path = fn(model, folder, case)
    assert path is not None
    return path


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_from_python(base, case):
    path = _build(base, case)
    kind, names = REFUSED[case]
    with pytest.raises(SnncError) as err:
        compile(path, timesteps=2)
    assert type(err.value) is kind, str(err.value)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    for name in names:
        assert name in msg, (name, msg)
    assert len(msg.splitlines()) <= 6


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_from_cli(base, case, capfd, tmp_path):
    path = _build(base, case)
    assert main(["compile", str(path), "-T", "2", "-o", str(tmp_path / "out"),
                 "--max-memory", "4G"]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.startswith(f"snnc: error: {path}: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", TOLERATED)
def test_malformed_metadata_is_ignored(base, case):
    c = compile(_build(base, case), timesteps=2)
    assert {n.name for n in c.ann.nodes} >= {"conv1", "fc"}
    assert c.to_torch()(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_torch_trace_error_is_one_paragraph(capfd, tmp_path):
    """`snnc compile zoo:resnet20 --input-shape 4,8,8` printed a 29-line torch traceback."""
    assert main(["compile", "zoo:resnet20", "--input-shape", "4,8,8",
                 "-o", str(tmp_path / "o")]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "module 'conv1' (Conv2d)" in err and "3 channels" in err


def test_huge_timesteps_refused_before_allocating():
    with pytest.raises(ResourceLimit, match=r"zoo:resnet20: compiling with T=1000000 needs "
                                            r"about .* GiB .*node '.*bn.*'.*--max-memory"):
        compile("zoo:resnet20", timesteps=1_000_000)


def test_forward_refused_above_the_limit(base):
    c = compile(base[1] / "tiny_cnn-torchscript.onnx", timesteps=4)
    module = c.to_torch()
    limits.set_memory_limit("1M")
    with pytest.raises(ResourceLimit, match=r"forward pass \(batch 4096, T=4\)"):
        module(torch.zeros(4096, 3, 8, 8))


def test_file_over_2gib_refused_without_reading(tmp_path):
    """A 3 GiB (sparse) file is refused from its size, in a process capped at 1 GiB more than
    it starts with: reading it even once would fail."""
    path = tmp_path / "big.onnx"
    path.write_bytes(b"\x08\x07")
    with open(path, "r+b") as f:
        f.truncate(3 << 30)
    code = ("import resource, sys\n"
            "from snnc.compiler.frontends.onnx import from_onnx\n"
            "from snnc.compiler.core.errors import ImportFailed\n"
            "used = int(open('/proc/self/statm').read().split()[0]) * 4096\n"
            "resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30),) * 2)\n"
            f"try:\n    from_onnx({str(path)!r})\n"
            "except ImportFailed as e:\n    print(e); sys.exit(3)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 3, out.stderr[-2000:]
    assert "3.0 GiB" in out.stdout and "above 2 GiB" in out.stdout


def test_large_external_weight_held_once(tmp_path):
    """A 256 MiB external weight (a sparse file of zeros) raises the importing process's peak
    RSS by well under twice its size (it used to be about five times)."""
    n = 8192
    w = TensorProto(name="fc.weight", data_type=TensorProto.FLOAT, dims=[n, n],
                    data_location=TensorProto.EXTERNAL)
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", str(4 * n * n))):
        w.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    with open(tmp_path / "w.bin", "wb") as f:
        f.truncate(4 * n * n)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "fc.weight"], ["y"], transB=1, name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(tmp_path / "big.onnx"))
    code = ("import resource, torch\n"
            "from snnc.compiler.frontends.onnx import from_onnx\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"g = from_onnx({str(tmp_path / 'big.onnx')!r})\n"
            "assert g.params['fc.weight'].shape == (8192, 8192)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1",
                                           "SNNC_MAX_MEMORY": "none"})
    assert out.returncode == 0, out.stderr[-2000:]
    growth = int(out.stdout.split()[-1])
    assert growth < 1.5 * 4 * n * n, growth


def test_external_data_read_once(tmp_path):
    """External weights land in the arrays straight from the file (onnx_wire.begin_external)."""
    path = nets.export("mlp", "torchscript", tmp_path)
    m = onnx.load(str(path))
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="mlp.data", size_threshold=0)
    g = from_onnx(path)
    w = g.params["fc1.weight"]
    assert w.shape == (12, 16) and torch.equal(w, nets.build("mlp").fc1.weight.detach())


def test_refusal_list_is_bounded(tmp_path):
    """Hundreds of unsupported nodes: grouped by op type with counts and a few names."""
    nodes, prev = [], "x"
    for i in range(120):
        op = ("Sigmoid", "Tanh", "Softplus", "Elu", "Selu", "Erf", "Neg", "Abs", "Exp", "Log",
              "Ceil", "Floor", "Sign", "Sqrt")[i % 14]
        nodes.append(helper.make_node(op, [prev], [f"v{i}"], name=f"n{i}"))
        prev = f"v{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         [1, 4])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "many.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedOp) as err:
        from_onnx(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: 120 node(s) cannot be imported")
    assert "9 x (op Sigmoid): no converter [n0, n14, n28 and 6 more]" in msg
    assert "... and 4 more op type(s) (32 node(s))" in msg
    assert len(msg.splitlines()) <= 13


@pytest.mark.parametrize("text,want", [("4G", 4 << 30), ("512M", 512 << 20), ("1.5GiB",
                                       3 << 29), ("1000", 1000), ("none", 1 << 62)])
def test_parse_size(text, want):
    assert limits.parse_size(text) == want


def test_max_memory_option(tmp_path, capfd):
    path = nets.export("mlp", "torchscript", tmp_path)
    assert main(["compile", str(path), "-o", str(tmp_path / "o"), "--max-memory", "1K"]) == 2
    err = capfd.readouterr().err
    assert "above the memory limit of 1.0 KiB" in err and "Traceback" not in err
    assert main(["--max-memory", "64M", "compile", str(path), "-o", str(tmp_path / "o")]) == 0
    assert main(["--max-memory", "lots", "targets"]) == 2
    assert Path(tmp_path / "o" / "manifest.json").is_file()


def test_interpreter_refused_above_the_limit(base):
    from snnc.compiler.compare import check_equivalence

    path = base[1] / "tiny_cnn-torchscript.onnx"
    g = from_onnx(path)
    limits.set_memory_limit("1K")
    with pytest.raises(ResourceLimit, match=r"forward pass \(batch 2, T=1\)"):
        check_equivalence(g, path, torch.zeros(2, 3, 8, 8))
    limits.set_memory_limit("64M")
    assert check_equivalence(g, path, torch.randn(2, 3, 8, 8)).ok


def test_default_limit_does_not_depend_on_what_is_free(monkeypatch, capfd):
    """The default --max-memory is half of the machine's memory, not of MemAvailable: on a
    busy machine (little free) `snnc cost` still prices a model an idle machine accepts
    (docs/frontends.md "Validation and limits"); an address-space rlimit still caps it."""
    import resource

    info = {"MemTotal": 16 << 30, "MemAvailable": 64 << 20}  # a loaded 16 GiB machine
    monkeypatch.setattr(limits, "_meminfo", info.get)
    monkeypatch.delenv("SNNC_MAX_MEMORY", raising=False)
    monkeypatch.setattr(limits, "_limit", None)
    cap = resource.getrlimit(resource.RLIMIT_AS)[0]
    if cap == resource.RLIM_INFINITY:
        assert limits.memory_limit() <= 8 << 30
        assert limits.memory_limit() >= min(8 << 30, _cgroup_max() // 2)
    example = Path(__file__).resolve().parents[2] / "models" / "examples" / "resnet20.onnx"
    assert main(["cost", str(example), "--format", "json"]) == 0
    assert limits.memory_limit() > 64 << 20  # more than everything MemAvailable says
    capfd.readouterr()


def _cgroup_max() -> int:
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        return 1 << 62 if text == "max" else int(text)
    except (OSError, ValueError):
        return 1 << 62
