"""Mutations of ONNX files for the fuzzing harness (docs/frontends.md, "Validation and limits").

Two families:

- `SIGNATURES` and `ACCEPTED_INVALID`: named, deterministic mutations, one per crash signature
  and per invalid-but-accepted case found by fuzzing (each is also a regression test in
  tests/frontends/test_malformed.py). Each is ``fn(model, folder, stem) -> Path | None``: it
  edits a copy of the model, writes the file(s) under `folder` and returns the .onnx path
  (None where the model has no node the mutation applies to).
- `mutate(data, rng, folder, stem)`: a random chain of one to three structural mutations
  (attributes, initializers, shapes, metadata, graph wiring, external data) or byte-level
  mutations (flips, truncation, insertion, duplication, zeroing) of a file's bytes.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Mutation = Callable[[onnx.ModelProto, Path, str], "Path | None"]


# -- helpers ----------------------------------------------------------------------------------
def load(path: Path) -> onnx.ModelProto:
    """The model at `path` with its external data pulled in (so that it saves as one file)."""
    return onnx.load(str(path), load_external_data=True)


def save(m: onnx.ModelProto, folder: Path, stem: str) -> Path:
    path = Path(folder) / f"{stem}.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def first(m: onnx.ModelProto, op: str) -> onnx.NodeProto | None:
    return next((n for n in m.graph.node if n.op_type == op), None)


def init(m: onnx.ModelProto, name: str) -> onnx.TensorProto | None:
    return next((t for t in m.graph.initializer if t.name == name), None)


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    kind = onnx.AttributeProto.INTS if isinstance(value, list) and not value else None
    node.attribute.append(helper.make_attribute(name, value, attr_type=kind))


def replace_init(m: onnx.ModelProto, name: str, arr: np.ndarray) -> None:
    t = init(m, name)
    new = numpy_helper.from_array(arr, name)
    t.CopyFrom(new)


def clear_shapes(m: onnx.ModelProto) -> None:
    """Drop inferred shapes so that a shape change is not contradicted by stale value_info."""
    del m.graph.value_info[:]
    for o in m.graph.output:
        for i, d in enumerate(o.type.tensor_type.shape.dim):
            d.dim_param = f"out{i}"  # a symbolic dim: inference fills it in


def real_input(m: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {t.name for t in m.graph.initializer}
    return next(vi for vi in m.graph.input if vi.name not in inits)


def _edit(op: str, fn: Callable[[onnx.ModelProto, onnx.NodeProto], None]) -> Mutation:
    def mutation(m, folder, stem):
        m = copy.deepcopy(m)
        node = first(m, op)
        if node is None:
            return None
        fn(m, node)
        return save(m, folder, stem)
    return mutation


def _insert_after(m: onnx.ModelProto, op: str, new_op: str, extra_inputs: list[str],
                  **attrs) -> onnx.NodeProto | None:
    """Insert a `new_op` node reading the output of the first `op` node."""
    node = first(m, op)
    if node is None:
        return None
    out, mid = node.output[0], node.output[0] + "_fuzz"
    for n in m.graph.node:
        for i, v in enumerate(n.input):
            if v == out:
                n.input[i] = mid
    for o in m.graph.output:
        if o.name == out:
            o.name = mid
    new = helper.make_node(new_op, [out, *extra_inputs], [mid], name=f"fuzz_{new_op}", **attrs)
    idx = list(m.graph.node).index(node)
    m.graph.node.insert(idx + 1, new)
    clear_shapes(m)
    return new


# -- the 17 crash signatures of the fuzzing report --------------------------------------------
def _gemm_bias_length(m, node):
    b = init(m, node.input[2])
    replace_init(m, b.name, np.zeros(3, np.float32))


def _conv_kernel_shape(m, node):
    set_attr(node, "kernel_shape", [5, 5])


def _input_width_2_31(m, folder, stem):
    m = copy.deepcopy(m)
    real_input(m).type.tensor_type.shape.dim[3].dim_value = 2 ** 31
    clear_shapes(m)
    return save(m, folder, stem)


def _conv_pads_two(m, node):
    set_attr(node, "pads", [1, 1])


def _scope_meta(key: str, value: str):
    def fn(m, node):
        for n in m.graph.node:
            meta = {p.key: p for p in n.metadata_props}
            for k, v in ((key, value),) + ((("pkg.torch.onnx.name_scopes", "['', 'conv1']"),)
                                           if key != "pkg.torch.onnx.name_scopes" else ()):
                if k in meta:
                    meta[k].value = v
                else:
                    n.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    return fn


def _init_dims(m, node):
    t = init(m, node.input[1])
    t.dims[-1] -= 1  # more data than the dims say


def _bn_scalar_scale(m, node):
    replace_init(m, node.input[1], np.array(1.0, np.float32))


def _pool_kernel_big(m, node):
    set_attr(node, "kernel_shape", [16, 16])
    clear_shapes(m)


def _dropout_ratio_vector(m, folder, stem):
    m = copy.deepcopy(m)
    m.graph.initializer.append(numpy_helper.from_array(np.array([0.1, 0.2], np.float32),
                                                       "fuzz_ratio"))
    if _insert_after(m, "Relu", "Dropout", ["fuzz_ratio"]) is None:
        return None
    return save(m, folder, stem)


def _clip_empty_min(m, node):
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.float32), "fuzz_min"))
    node.input[1] = "fuzz_min"


def _huge_image(m, folder, stem):
    m = copy.deepcopy(m)
    dims = real_input(m).type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 32768
    clear_shapes(m)
    return save(m, folder, stem)


def _gemm_weight_string(m, node):
    t = init(m, node.input[1])
    t.CopyFrom(helper.make_tensor(t.name, TensorProto.STRING, list(t.dims),
                                  [b"w"] * int(np.prod(t.dims))))


def _conv_strides_three(m, node):
    set_attr(node, "strides", [1, 1, 1])


def _external(m: onnx.ModelProto, folder: Path, stem: str, location: str,
              length: int | None = None) -> Path | None:
    """Move the first Conv's (or Gemm's) weight to external data at `location` (not written
    here)."""
    m = copy.deepcopy(m)
    node = first(m, "Conv") or first(m, "Gemm")
    if node is None:
        return None
    t = init(m, node.input[1])
    n = len(numpy_helper.to_array(t).tobytes())
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in (("location", location), ("offset", "0"), ("length", str(length or n))):
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    return save(m, folder, stem)


def _external_nul(m, folder, stem):
    return _external(m, folder, stem, "weights\x00.bin")


def _external_symlink_loop(m, folder, stem):
    link = Path(folder) / f"{stem}.loop"
    if link.is_symlink():
        link.unlink()
    os.symlink(link.name, link)  # points at itself
    return _external(m, folder, stem, link.name)


def _sparse_8gib(m, folder, stem):
    """An extra initializer whose external data claims 8 GiB in a sparse file (no disk used)."""
    m = copy.deepcopy(m)
    data = Path(folder) / f"{stem}.data"
    with open(data, "wb") as f:
        f.truncate(8 << 30)
    t = m.graph.initializer.add()
    t.name, t.data_type, t.data_location = "fuzz_big", TensorProto.FLOAT, TensorProto.EXTERNAL
    t.dims.extend([2 ** 31])
    for k, v in (("location", data.name), ("offset", "0"), ("length", str(8 << 30))):
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    return save(m, folder, stem)


SIGNATURES: dict[str, Mutation] = {
    "gemm_bias_length": _edit("Gemm", _gemm_bias_length),
    "conv_weight_vs_kernel_shape": _edit("Conv", _conv_kernel_shape),
    "input_width_2_31": _input_width_2_31,
    "conv_pads_two_values": _edit("Conv", _conv_pads_two),
    "name_scopes_int": _edit("Conv", _scope_meta("pkg.torch.onnx.name_scopes", "5")),
    "name_scopes_none": _edit("Conv", _scope_meta("pkg.torch.onnx.name_scopes", "None")),
    "initializer_dims_vs_data": _edit("Conv", _init_dims),
    "bn_scalar_scale": _edit("BatchNormalization", _bn_scalar_scale),
    "pool_kernel_larger_than_input": _edit("MaxPool", _pool_kernel_big),
    "dropout_ratio_vector": _dropout_ratio_vector,
    "clip_empty_min": _edit("Clip", _clip_empty_min),
    "image_32768": _huge_image,
    "gemm_weight_string": _edit("Gemm", _gemm_weight_string),
    "class_hierarchy_int": _edit("Conv", _scope_meta("pkg.torch.onnx.class_hierarchy", "7")),
    "conv_strides_three_values": _edit("Conv", _conv_strides_three),
    "external_location_nul": _external_nul,
    "external_symlink_loop": _external_symlink_loop,
    "external_sparse_8gib": _sparse_8gib,
}


# -- invalid models the importer used to accept -----------------------------------------------
def _nan(value):
    def fn(m, node):
        w = numpy_helper.to_array(init(m, node.input[1])).copy()
        w.reshape(-1)[3] = value
        replace_init(m, node.input[1], w)
    return fn


ACCEPTED_INVALID: dict[str, Mutation] = {
    "negative_stride": _edit("Conv", lambda m, n: (set_attr(n, "strides", [-2, -2]),
                                                   clear_shapes(m))),
    "conv_bias_short": _edit("Conv", lambda m, n: replace_init(
        m, n.input[2], np.zeros(len(numpy_helper.to_array(init(m, n.input[2]))) - 1,
                                np.float32))),
    "dilation_zero": _edit("Conv", lambda m, n: (set_attr(n, "dilations", [0, 0]),
                                                 clear_shapes(m))),
    "maxpool_kernel_zero": _edit("MaxPool", lambda m, n: (set_attr(n, "kernel_shape", [0, 0]),
                                                          clear_shapes(m))),
    "maxpool_kernel_larger_than_input": _edit(
        "MaxPool", lambda m, n: (set_attr(n, "kernel_shape", [9, 9]), clear_shapes(m))),
    "bn_negative_epsilon": _edit("BatchNormalization",
                                 lambda m, n: set_attr(n, "epsilon", -1.0)),
    "nan_weight": _edit("Conv", _nan(np.nan)),
    "inf_weight": _edit("Gemm", _nan(np.inf)),
}


# -- found by this harness (benchmarks/fuzz.py) after the checks above landed -----------------
def _conv_weight_rank(m, node):
    w = numpy_helper.to_array(init(m, node.input[1]))
    replace_init(m, node.input[1], w[..., None])  # [out, in, kh, kw, 1]: inference lets it by


def _clip_no_bounds(m, node):
    del node.input[1:]  # Clip without min/max: identity in ONNX, no spiking twin in snnc


FOUND: dict[str, Mutation] = {
    "conv_weight_rank_5": _edit("Conv", _conv_weight_rank),
    "clip_without_bounds": _edit("Clip", _clip_no_bounds),
    "gemm_alpha_nan": _edit("Gemm", lambda m, n: set_attr(n, "alpha", float("nan"))),
}


# -- random structural mutations --------------------------------------------------------------
_INTS = [-(2 ** 31), -2, -1, 0, 1, 2, 3, 7, 65, 2 ** 31, 2 ** 40]
_FLOATS = [float("nan"), float("inf"), -1.0, 0.0, 1e-30, 0.5, 1e30]
_OPS = ["Conv", "Gemm", "Relu", "MaxPool", "Add", "Concat", "Clip", "Dropout", "Flatten",
        "Reshape", "BatchNormalization", "AveragePool", "GlobalAveragePool", "Identity",
        "Sigmoid", "Softmax", "Mul", "LSTM", "Resize", "Loop", "NoSuchOp"]


def _rand_value(rng: random.Random, like):
    kind = rng.random()
    if isinstance(like, list) or kind < 0.5:
        return [rng.choice(_INTS) if rng.random() < 0.5 else rng.randint(0, 4)
                for _ in range(rng.choice([0, 1, 2, 3, 4, 6]))]
    if isinstance(like, float) or kind < 0.7:
        return rng.choice(_FLOATS)
    if kind < 0.85:
        return rng.choice(_INTS)
    return rng.choice(["NOTSET", "SAME_UPPER", "VALID", "junk", ""])


def _m_attr(m, rng):
    nodes = [n for n in m.graph.node if n.attribute] or list(m.graph.node)
    node = rng.choice(nodes)
    names = [a.name for a in node.attribute] + ["strides", "pads", "kernel_shape",
                                               "dilations", "group", "epsilon", "axis",
                                               "ratio", "transB", "alpha", "auto_pad"]
    name = rng.choice(names)
    old = next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)
    if rng.random() < 0.15 and old is not None:
        node.attribute.remove(next(a for a in node.attribute if a.name == name))
        return
    set_attr(node, name, _rand_value(rng, list(old) if hasattr(old, "__len__")
                                     and not isinstance(old, bytes) else old))
    if rng.random() < 0.7:
        clear_shapes(m)


def _m_init(m, rng):
    if not m.graph.initializer:
        return
    t = rng.choice(list(m.graph.initializer))
    try:
        arr = numpy_helper.to_array(t)
    except Exception:  # an earlier mutation of the chain broke it already: break it more
        t.dims.append(rng.choice(_INTS[1:]))
        return
    r = rng.random()
    if r < 0.2 and arr.size:
        arr = arr.copy()
        arr.reshape(-1)[rng.randrange(arr.size)] = rng.choice(_FLOATS) \
            if arr.dtype.kind == "f" else rng.choice(_INTS[1:-2])
        replace_init(m, t.name, arr)
    elif r < 0.4:
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(_INTS[1:])
        else:
            t.dims.append(rng.choice(_INTS[1:]))
    elif r < 0.55:
        shape = [d for d in arr.shape][:-1] if arr.ndim and rng.random() < 0.5 \
            else list(arr.shape) + [1]
        replace_init(m, t.name, np.resize(arr, shape).astype(arr.dtype))
    elif r < 0.7:
        t.data_type = rng.choice([TensorProto.STRING, TensorProto.INT8, TensorProto.DOUBLE,
                                  TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.INT64,
                                  TensorProto.UNDEFINED, 999])
    elif r < 0.85 and t.raw_data:
        t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
    else:
        replace_init(m, t.name, np.zeros(rng.choice([0, 1, 3]), arr.dtype))


def _m_input_shape(m, rng):
    dims = real_input(m).type.tensor_type.shape.dim
    if not dims:
        return
    d = dims[rng.randrange(len(dims))]
    r = rng.random()
    if r < 0.7:
        d.dim_value = rng.choice([0, 1, 2, 3, 5, 64, 4096, 2 ** 31, 2 ** 40])
    elif r < 0.85:
        d.dim_param = "N"
    else:
        del dims[rng.randrange(len(dims))]
    clear_shapes(m)


def _m_wiring(m, rng):
    nodes = list(m.graph.node)
    node = rng.choice(nodes)
    r = rng.random()
    if r < 0.25:
        m.graph.node.remove(node)
    elif r < 0.45 and node.input:
        values = [i for n in nodes for i in n.input] + [t.name for t in m.graph.initializer]
        node.input[rng.randrange(len(node.input))] = rng.choice(values + ["nowhere", ""])
    elif r < 0.6:
        node.op_type = rng.choice(_OPS)
    elif r < 0.7:
        node.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "custom"])
    elif r < 0.8:
        m.graph.node.insert(rng.randrange(len(nodes)), copy.deepcopy(node))
    elif r < 0.9:
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        a, b = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
        m.graph.node[i].CopyFrom(b)
        m.graph.node[j].CopyFrom(a)
    else:
        node.input.append(rng.choice([t.name for t in m.graph.initializer] or ["x"]))
    clear_shapes(m)


def _m_meta(m, rng):
    node = rng.choice(list(m.graph.node))
    key = rng.choice(["pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"])
    value = rng.choice(["5", "None", "[]", "[1, 2]", "['', None]", "{'a': 1}", "[", "'x'",
                        "[''] * 10**9", "__import__('os')", "['', 'a' * 300]", "[[['x']]]"])
    meta = {p.key: p for p in node.metadata_props}
    if key in meta:
        meta[key].value = value
    else:
        node.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    if rng.random() < 0.3:
        node.name = rng.choice(["", "/", "//x", "/a/b.c/Conv_1", "\x00", "é" * 50])


def _m_opset(m, rng):
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = rng.choice([1, 7, 9, 11, 12, 13, 17, 21, 22, 30, 1000])
    if rng.random() < 0.3:
        m.ir_version = rng.choice([0, 1, 3, 7, 10, 99])


STRUCTURAL = [_m_attr, _m_attr, _m_init, _m_init, _m_input_shape, _m_wiring, _m_meta, _m_opset]


def _named(rng, m, folder, stem):
    table = {**SIGNATURES, **ACCEPTED_INVALID, **FOUND}
    name = rng.choice(sorted(k for k in table if k != "external_sparse_8gib"))
    return table[name](m, folder, stem)


# -- byte-level mutations ---------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to four byte-level edits: flips, truncation, insertion, duplication, zeroing."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        r, i = rng.random(), rng.randrange(len(b))
        if r < 0.35:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif r < 0.5:
            del b[i:]
        elif r < 0.65:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif r < 0.8:
            j = min(len(b), i + rng.randint(1, 256))
            b[i:i] = b[i:j]
        else:
            j = min(len(b), i + rng.randint(1, 64))
            b[i:j] = bytes(j - i)
    return bytes(b)


def mutate(model: onnx.ModelProto, rng: random.Random, folder: Path,
           stem: str) -> tuple[str, Path]:
    """A randomly mutated copy of `model` written under `folder`: (mutation class, path)."""
    r = rng.random()
    if r < 0.25:
        path = save(model, folder, stem)
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))
        return "bytes", path
    if r < 0.4:
        path = _named(rng, model, folder, stem)
        if path is not None:
            return "named", path
    m = copy.deepcopy(model)
    kinds = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        fn = rng.choice(STRUCTURAL)
        kinds.append(fn.__name__[3:])
        fn(m, rng)
    path = save(m, folder, stem)
    if rng.random() < 0.1:
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))
        kinds.append("bytes")
    return "+".join(kinds), path
