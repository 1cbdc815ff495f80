"""ONNX specifics: opsets 13-20, external data, dynamic shapes, and every bad-file error."""

from __future__ import annotations

import shutil

import onnx
import pytest
import torch
from torch import nn

from snnc.compiler.compare import check_equivalence, explain_difference
from snnc.compiler.errors import ImportFailed, UnsupportedOp
from snnc.compiler.frontends import import_model
from snnc.compiler.frontends.onnx import from_onnx

from .conftest import build, example, export


OPSET_CASES = [("resnet20", o) for o in range(13, 21)] + [("mobilenetv2", 17), ("mobilenetv2", 18)]


@pytest.mark.parametrize("zoo_id,opset", OPSET_CASES)
def test_torchscript_opsets(zoo_id, opset, exports):
    """TorchScript exporter, opsets 13..20. mobilenetv2 at 17 and 18 covers ReduceMean's axes
    moving from an attribute to an input (opset 18) and Clip's bounds as inputs."""
    path = exports(zoo_id, "torchscript", opset)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    g = from_onnx(path)
    assert explain_difference(g, from_onnx(exports(zoo_id, "torchscript"))) is None
    assert check_equivalence(g, path, example(build(zoo_id), seed=7)).ok


def test_opset_below_13_is_converted(tmp_path):
    """Older files go through onnx.version_converter (here opset 11 -> 13)."""
    model = build("resnet20")
    path = export(model, tmp_path / "r20_op11.onnx", dynamo=False, opset=11)
    g = from_onnx(path)
    assert check_equivalence(g, model, example(model)).ok


def test_external_data_beside_the_model(tmp_path, exports):
    src = onnx.load(str(exports("resnet20", "torchscript")))
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save_model(src, str(folder / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    assert (folder / "m.data").stat().st_size > 100_000
    g = from_onnx(folder / "m.onnx")
    assert check_equivalence(g, folder / "m.onnx", example(build("resnet20"))).ok
    assert explain_difference(g, from_onnx(exports("resnet20", "torchscript"))) is None


def _point_outside(tmp_path, exports, location):
    model = onnx.load(str(exports("resnet20", "torchscript")))
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    shutil.move(folder / "m.data", tmp_path / "secret.bin")
    m = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save_model(m, str(folder / "m.onnx"))
    return folder / "m.onnx"


@pytest.mark.parametrize("where", ["../secret.bin", "ABS"])
def test_external_data_outside_folder_refused(tmp_path, exports, where):
    loc = str(tmp_path / "secret.bin") if where == "ABS" else where
    path = _point_outside(tmp_path, exports, loc)
    with pytest.raises(ImportFailed, match=r"m\.onnx: tensor '.*' keeps its data at .*outside"):
        from_onnx(path)


def test_external_data_missing(tmp_path, exports):
    path = _point_outside(tmp_path, exports, "m.data")
    with pytest.raises(ImportFailed, match=r"m\.onnx: tensor .* 'm\.data', which does not exist"):
        from_onnx(path)


def test_dynamic_dims_need_input_shape(tmp_path):
    model = build("resnet20")
    path = export(model, tmp_path / "dyn.onnx", dynamo=False,
                  input_names=["img"], dynamic_axes={"img": {0: "batch", 2: "h", 3: "w"}})
    with pytest.raises(ImportFailed, match=r"dyn\.onnx: input 'img' has dynamic.*'h', 'w'.*"
                                           r"input_shape=\(3, 32, 32\)"):
        from_onnx(path)
    g = from_onnx(path, input_shape=(3, 16, 16))
    assert g.input_nodes()[0].shape == (1, 3, 16, 16)
    x = torch.randn(2, 3, 16, 16)
    assert check_equivalence(g, model, x).ok


def test_dynamic_batch_only_uses_batch_one(tmp_path):
    model = build("vgg11")
    path = export(model, tmp_path / "dynb.onnx", dynamo=False, input_names=["img"],
                  dynamic_axes={"img": {0: "batch"}})
    g = from_onnx(path)
    assert g.input_nodes()[0].shape == (1, 3, 32, 32)
    assert check_equivalence(g, path, example(model, batch=3)).ok


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "png", "zeros"])
def test_bad_files(tmp_path, exports, kind):
    path = tmp_path / f"bad_{kind}.onnx"
    good = exports("resnet20", "torchscript").read_bytes()
    data = {"empty": b"", "truncated": good[: len(good) // 3],
            "text": b"this is not a model\nbut a note\n",
            "png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "zeros": bytes(64)}[kind]
    path.write_bytes(data)
    with pytest.raises(ImportFailed) as err:
        from_onnx(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ":")
    want = {"empty": "empty", "truncated": "truncated", "text": "text file",
            "png": "PNG image", "zeros": "ONNX"}[kind]
    assert want in msg


def test_other_file_types(tmp_path):
    ckpt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, ckpt)
    with pytest.raises(ImportFailed, match=r"model\.pt: snnc cannot import a PyTorch checkpoint"
                                           r".*never unpickles"):
        import_model(ckpt)
    with pytest.raises(ImportFailed, match="expected a torch nn.Module or a path"):
        import_model(42)


class _Zoo(nn.Module):
    """One model holding every unsupported kind at once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gelu = nn.GELU()
        self.hs = nn.Hardswish()
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        y = self.hs(self.gelu(self.conv(x)))
        y = y * torch.sigmoid(y)                    # SiLU-style gating
        seq = y.flatten(2).transpose(1, 2)          # [N, HW, C]
        seq, _ = self.lstm(seq)
        seq, _ = self.gru(seq)
        att = torch.softmax(self.q(seq) @ self.k(seq).transpose(1, 2), -1)   # attention
        seq = att @ seq
        return seq.mean(1)


@pytest.mark.parametrize("dynamo", [False, True])
def test_unsupported_ops_all_listed(tmp_path, dynamo):
    model = _Zoo().eval()
    path = tmp_path / "gated.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 4, 4),), str(path), dynamo=dynamo,
                          **({"verbose": False} if dynamo else {}))
    with pytest.raises(UnsupportedOp) as err:
        from_onnx(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    for op in ("Sigmoid", "LSTM", "GRU", "Softmax"):
        if op in ops:
            assert f"(op {op})" in msg, op
    assert "LSTM" in msg and "GRU" in msg and "Sigmoid" in msg and "Softmax" in msg
    assert "(op MatMul): MatMul of two activations" in msg and "(op Mul)" in msg
    assert ("(op Gelu)" in msg or "(op Erf)" in msg) and ("HardSwish" in msg or "HardSigmoid"
                                                          in msg or "(op Div)" in msg)
    assert "node '" in msg and "@onnx_converter" in msg


@pytest.mark.parametrize("zoo_id,exporter", [("densenet121", "torchscript"),
                                             ("mobilenetv2", "dynamo"),
                                             ("resnet20", "torchscript")])
def test_checks_run_on_the_structure_alone(zoo_id, exporter, exports, tmp_path):
    """onnx's checker and shape inference see the model without its weights' data
    (onnx_check.split_weights / _structure): the shapes they infer equal those inferred on the
    whole model, and every initializer's array equals onnx's own reading of it, inline or
    external."""
    from onnx import numpy_helper

    from snnc.compiler.frontends.onnx import load_model
    from snnc.compiler.frontends.onnx_attrs import static_shapes

    path = exports(zoo_id, exporter)
    whole = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(whole, check_type=True, strict_mode=True,
                                                 data_prop=True)
    want = {t.name: numpy_helper.to_array(t) for t in whole.graph.initializer}
    onnx.save_model(whole, str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    location="ext.data", size_threshold=256)
    for p in (path, tmp_path / "ext.onnx"):
        model, consts = load_model(p)
        assert static_shapes(model) == static_shapes(inferred)
        assert len(static_shapes(model)) > len(whole.graph.node) // 2
        assert consts.keys() == want.keys()
        for name, arr in want.items():
            assert consts[name].dtype == arr.dtype and (consts[name] == arr).all(), name


@pytest.mark.parametrize("zoo_id,exporter", [("densenet121", "torchscript"),
                                             ("mobilenetv2", "dynamo"),
                                             ("mobilenetv2", "torchscript"),
                                             ("resnet20", "torchscript"),
                                             ("resnet20", "dynamo")])
def test_data_propagation_skipped_only_where_it_infers_nothing(zoo_id, exporter, exports):
    """check_onnx asks onnx's shape inference for data propagation only where some value
    could be propagated (onnx_check.needs_data_prop): these exports have no shape arithmetic,
    and inference with propagation gives the same model, byte for byte."""
    from snnc.compiler.frontends import onnx_check
    from snnc.compiler.frontends.onnx_wire import read_split

    model, split = read_split(exports(zoo_id, exporter))
    probe = onnx_check._structure(model, split).SerializeToString()
    kw = dict(check_type=True, strict_mode=True)
    assert not onnx_check.needs_data_prop(model, split)  # no shape arithmetic in these
    with_prop = onnx.shape_inference.infer_shapes(probe, data_prop=True, **kw)
    without = onnx.shape_inference.infer_shapes(probe, data_prop=False, **kw)
    assert with_prop.SerializeToString() == without.SerializeToString()


def _graph(nodes, inits=(), domain=""):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y], list(inits))
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=opsets)


def test_needs_data_prop_rule():
    """Values start at constants (kept initializers, Constant nodes) and at Shape/Size; an op
    with a propagation function makes one only from valued inputs. Split weights (typed
    inputs in the checked structure) hold no value."""
    import numpy as np
    from onnx import helper, numpy_helper

    from snnc.compiler.frontends.onnx_check import needs_data_prop

    c1 = numpy_helper.from_array(np.array([1, 8], np.int64), "c1")
    w = numpy_helper.from_array(np.ones(8, np.float32), "w")
    shape_chain = _graph([helper.make_node("Shape", ["x"], ["s"]),
                          helper.make_node("Reshape", ["x", "s"], ["y"])])
    const_concat = _graph([helper.make_node("Constant", [], ["k"], value=c1),
                           helper.make_node("Concat", ["k", "c1"], ["s"], axis=0),
                           helper.make_node("Reshape", ["x", "s"], ["y"])], [c1])
    bias_add = _graph([helper.make_node("Flatten", ["x"], ["f"]),
                       helper.make_node("Add", ["f", "w"], ["y"])], [w])
    plain_reshape = _graph([helper.make_node("Reshape", ["x", "c1"], ["y"])], [c1])
    assert needs_data_prop(shape_chain, {})
    assert needs_data_prop(const_concat, {})
    assert not needs_data_prop(bias_add, {})  # an activation has no value
    assert not needs_data_prop(plain_reshape, {})  # Reshape reads its constant without it
    # the weight split off (index 0): Add of it and a Constant would be valued only if kept
    both = _graph([helper.make_node("Constant", [], ["k"], value=w),
                   helper.make_node("Add", ["k", "w"], ["y"])], [w])
    assert needs_data_prop(both, {}) and not needs_data_prop(both, {0: b""})
    # a subgraph, or a domain other than ONNX's: not looked into, propagation kept
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", 1, None)])
    cond = _graph([helper.make_node("If", ["c"], ["y"], then_branch=branch,
                                    else_branch=branch)])
    assert needs_data_prop(cond, {})
    assert needs_data_prop(_graph([helper.make_node("Relu", ["x"], ["y"])], domain="my"), {})
    assert not needs_data_prop(_graph([helper.make_node("Relu", ["x"], ["y"])]), {})
