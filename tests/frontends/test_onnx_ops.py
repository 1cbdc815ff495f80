"""ONNX converters on hand-written graphs (forms the torch exporters rarely emit), each
checked against onnxruntime: MatMul + Add bias, Gemm transB=0 with alpha/beta, auto_pad,
AveragePool without counting pads, MaxPool ceil_mode, Flatten axis 2, Squeeze/Unsqueeze,
Shape-arithmetic Reshape, Dropout, opset 11 Clip via version conversion."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from snnc.compiler.compare import check_equivalence
from snnc.compiler.errors import UnsupportedOp
from snnc.compiler.frontends.onnx import from_onnx

RNG = np.random.default_rng(0)


def _save(tmp_path, name, nodes, inits, in_shape, out_shape, opset=17):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _check(path, shape):
    g = from_onnx(path)
    x = torch.from_numpy(RNG.standard_normal((1, *shape[1:])).astype(np.float32))
    report = check_equivalence(g, path, x)
    assert report.ok, str(report)
    return g


def test_matmul_add_becomes_linear_with_bias(tmp_path):
    w, b = RNG.standard_normal((6, 4)), RNG.standard_normal(4)
    path = _save(tmp_path, "mm", [helper.make_node("MatMul", ["x", "w"], ["h"]),
                                  helper.make_node("Add", ["h", "b"], ["y"])],
                 {"w": w, "b": b}, [1, 6], [1, 4])
    g = _check(path, (1, 6))
    assert [(n.op, n.attrs.get("bias")) for n in g.nodes[1:]] == [("linear", True)]


def test_gemm_no_transpose_alpha_beta(tmp_path):
    w, c = RNG.standard_normal((5, 3)), RNG.standard_normal(3)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=0)
    _check(_save(tmp_path, "gemm", [node], {"w": w, "c": c}, [1, 5], [1, 3]), (1, 5))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad(tmp_path, auto_pad):
    w = RNG.standard_normal((3, 2, 4, 4))
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 2])
    out = [1, 3, 4, 4] if auto_pad != "VALID" else [1, 3, 2, 2]
    g = _check(_save(tmp_path, f"conv_{auto_pad}", [node], {"w": w}, [1, 2, 7, 7], out),
               (1, 2, 7, 7))
    assert g.nodes[1].shape == tuple(out)


def test_pools_flatten_squeeze_dropout(tmp_path):
    nodes = [
        helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2], count_include_pad=0),
        helper.make_node("MaxPool", ["a"], ["m"], kernel_shape=[2, 2], strides=[2, 2],
                         ceil_mode=1),
        helper.make_node("Dropout", ["m", "ratio"], ["d"]),
        helper.make_node("Flatten", ["d"], ["f"], axis=2),           # [2, 4]: a reshape
        helper.make_node("Unsqueeze", ["f", "ax"], ["u"]),           # [1, 2, 4]
        helper.make_node("Squeeze", ["u", "ax"], ["s"]),             # [2, 4]
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["s", "target"], ["y"]),       # [1, 8]
    ]
    inits = {"ratio": np.array(0.25, np.float32), "ax": np.array([0], np.int64),
             "zero": np.array(0, np.int64),
             "minus1": np.array([-1], np.int64)}
    g = _check(_save(tmp_path, "misc", nodes, inits, [1, 2, 7, 7], [1, 8]), (1, 2, 7, 7))
    ops = [n.op for n in g.nodes[1:]]
    assert ops == ["avgpool", "maxpool", "dropout"] + ["reshape"] * 4
    assert [n.attrs["shape"] for n in g.nodes[4:]] == [(2, 4), (1, 2, 4), (2, 4), (1, 8)]
    assert g.nodes[1].attrs["count_include_pad"] is False and g.nodes[2].attrs["ceil"] is True


def test_opset11_clip_attrs_converted(tmp_path):
    """Opset 6-10 Clip keeps min/max as attributes; version conversion moves them to inputs."""
    node = helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.25)
    path = _save(tmp_path, "clip10", [node], {}, [1, 4], [1, 4], opset=10)
    g = _check(path, (1, 4))
    assert (g.nodes[1].attrs["min"], g.nodes[1].attrs["max"]) == (-0.5, 0.25)


def test_constant_add_refused(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "c"], ["y"])]
    path = _save(tmp_path, "cadd", nodes, {"c": np.ones(4)}, [1, 4], [1, 4])
    with pytest.raises(UnsupportedOp, match=r"(?s)cadd\.onnx: 1 node.*node #1 "
                                            r"\(unnamed, output 'y'\) \(op Add\): addition "
                                            r"of a constant"):
        from_onnx(path)


def test_node_names_follow_the_documented_rule():
    """docs/frontends.md "Names": a Conv/Gemm/MatMul with a `<path>.weight` initializer takes
    `<path>`; else the TorchScript scope (`/layer1/layer1.0/Add_3`, a leaf module's single op
    taking the module's path) or the dynamo exporter's name_scopes metadata; else the node's
    name or op. A node whose metadata holds other keys only is named by its scope, as one
    without metadata (base_name builds the metadata table only when there is one)."""
    from snnc.compiler.frontends.onnx import base_name

    def node(op, name="", inputs=("x",), meta=None):
        n = helper.make_node(op, list(inputs), ["y"], name=name)
        for k, v in (meta or {}).items():
            p = n.metadata_props.add()
            p.key, p.value = k, v
        return n

    cases = [
        (node("Conv", "/whatever/Conv", ("x", "layer1.0.conv1.weight")), "layer1_0_conv1"),
        (node("Conv", "/layer1/layer1.0/conv1/Conv", ("x", "onnx::Conv_246")), "layer1_0_conv1"),
        (node("Add", "/layer1/layer1.0/Add_3"), "layer1_0_add"),
        (node("Relu", "/layer1/layer1.0/relu/Relu"), "layer1_0_relu"),
        (node("Flatten", "/Flatten"), "flatten"),
        (node("Add", "/layer1/layer1.0/Add_3", meta={"other": "x"}), "layer1_0_add"),
        (node("Relu", "node_relu_3", meta={
            "pkg.torch.onnx.name_scopes": "['', 'layer1', 'layer1.0', 'relu']",
            "pkg.torch.onnx.class_hierarchy": "['Net', 'torch.nn.modules.container.Sequential', "
                                              "'torch.nn.modules.activation.ReLU', 'relu']"}),
         "layer1_0"),
        (node("Add", "node_add_1", meta={
            "pkg.torch.onnx.name_scopes": "['', 'layer1.0', 'add_1']",
            "pkg.torch.onnx.class_hierarchy": "['Net', 'models.Block', 'add']"}),
         "layer1_0_add"),
        (node("Relu", "node_relu_3", meta={"pkg.torch.onnx.name_scopes": "5"}), "node_relu_3"),
        (node("Relu"), "relu"),
    ]
    assert [base_name(n) for n, _ in cases] == [want for _, want in cases]


def _literal_list(text: str):
    """The rule `_str_list` implements, written plainly (its reference): literal_eval, a list
    or tuple of strings only, None for anything else."""
    import ast

    if len(text) > 10_000:
        return None
    try:
        v = ast.literal_eval(text)
    except Exception:
        return None
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return list(v)
    return None


_ODD = "'\"\\[], \n\r\x00\t\u2028\ud800a.\xe9_0"  # the characters the fast form excludes, and some


@settings(max_examples=400)
@given(st.lists(st.text(alphabet=st.sampled_from(_ODD) | st.characters(), max_size=12),
                max_size=6))
def test_metadata_lists_read_as_literal_eval_reads_them(items):
    """`_str_list` reads the dynamo exporter's name scopes (the repr of a list of strings)
    with a regular expression, and everything else with literal_eval: on the repr of any
    list of strings, and on any text near that form, the same answer as literal_eval's."""
    from snnc.compiler.frontends.onnx import _str_list

    text = repr(items)
    assert _str_list(text) == _literal_list(text) == items
    for variant in (text[:-1], text.replace("'", '"', 1), text + " ", text.replace(", ", ",")):
        assert _str_list(variant) == _literal_list(variant), ascii(variant)


@settings(max_examples=400)
@given(st.text(alphabet=st.sampled_from(_ODD), max_size=30))
def test_metadata_text_of_any_form_reads_as_literal_eval_reads_it(text):
    from snnc.compiler.frontends.onnx import _str_list

    assert _str_list(text) == _literal_list(text), ascii(text)
    assert _str_list(f"[{text}]") == _literal_list(f"[{text}]"), ascii(text)
    assert _str_list(f"['{text}']") == _literal_list(f"['{text}']"), ascii(text)


_ASCII_ODD = "'\"\\[], \n\r\x00\t\x0b\x0ca._0"  # ASCII only: the split path's texts


@settings(max_examples=600)
@given(st.lists(st.text(alphabet=st.sampled_from(_ASCII_ODD), max_size=8), max_size=6),
       st.sampled_from(["['", "[", "[ '"]), st.sampled_from(["', '", "','", "', "]),
       st.sampled_from(["']", "'", "' ]"]))
def test_ascii_metadata_lists_split_as_literal_eval_reads_them(items, head, sep, tail):
    """The split path of `_str_list` (ASCII text of the form ['a', 'b'], every quote in a
    separator) against literal_eval, on texts of that form built from items holding quotes,
    backslashes, line ends, NUL and separators, and near misses of the form."""
    from snnc.compiler.frontends.onnx import _str_list

    for text in (head + sep.join(items) + tail, repr(items)):
        assert _str_list(text) == _literal_list(text), ascii(text)


def test_static_shapes_keep_only_fully_static_values():
    """static_shapes (the cross-check of snnc's shapes): a dim set to 0 is static, a
    dim_param or an unset dim is not; a scalar's empty shape is static, no shape is absent."""
    from snnc.compiler.frontends.onnx_attrs import static_shapes

    def vi(name, dims):
        v = helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)
        return v

    unset = vi("unset", [1, 3])
    unset.type.tensor_type.shape.dim[1].Clear()
    noshape = helper.make_tensor_value_info("noshape", TensorProto.FLOAT, None)
    graph = helper.make_graph([], "g", [vi("x", [1, 3, 4, 4])], [vi("y", [2, 0, 3])],
                              value_info=[vi("sym", [1, "N"]), unset, noshape,
                                          vi("scalar", []), vi("zero_last", [5, 0])])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    got = static_shapes(model)
    assert got == {"x": (1, 3, 4, 4), "y": (2, 0, 3), "scalar": (), "zero_last": (5, 0)}
    assert model.SerializeToString() == before  # reading an absent shape adds none
    assert not model.graph.value_info[2].type.tensor_type.HasField("shape")  # noshape
    other = onnx.ValueInfoProto(name="seq")  # not a tensor type: no shape
    other.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    graph.value_info.append(other)
    assert static_shapes(helper.make_model(graph)) == got


def test_attribute_tables_are_kept_per_node_within_an_import_only():
    """`attributes(node)` keeps the table of the node read last; within `attribute_tables()`
    (one import: the node checks, then the converters, read every node) the table of every
    node read, all dropped at the block's end, so no model stays alive
    (compiler/frontends/onnx_ops.py)."""
    from snnc.compiler.frontends import onnx_ops

    a = helper.make_node("Relu", ["x"], ["y"], name="a")
    b = helper.make_node("Gemm", ["y", "w"], ["z"], name="b", alpha=2.0)
    first = onnx_ops.attributes(b)
    onnx_ops.attributes(a)
    assert onnx_ops.attributes(b) is not first and onnx_ops.attributes(b) == first
    with onnx_ops.attribute_tables():
        first = onnx_ops.attributes(b)
        onnx_ops.attributes(a)
        assert onnx_ops.attributes(b) is first
        assert onnx_ops.attr(b, "alpha") == 2.0
    assert onnx_ops._LAST[0] is None and onnx_ops._TABLES.get() is None


def test_finite_attribute_check_reads_every_attribute_of_a_repeated_name():
    """onnx's checker refuses a repeated attribute name before snnc's checks run; snnc's
    own check of float attributes still reads all of them (not only the first, which the
    attribute table holds)."""
    from snnc.compiler.frontends.onnx_attrs import Bad, _finite_attrs

    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")
    node.attribute.extend([helper.make_attribute("alpha", 1.0),
                           helper.make_attribute("alpha", float("nan"))])
    with pytest.raises(Bad, match="alpha=nan is not a finite number"):
        _finite_attrs(node)
    _finite_attrs(helper.make_node("Gemm", ["x", "w"], ["y"], alpha=1.0, beta=0.5))
