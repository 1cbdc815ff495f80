"""ONNX front end: read a .onnx file (either torch exporter) into an ANN-form graph.

    g = from_onnx("model.onnx")                       # static input shape in the file
    g = from_onnx("model.onnx", input_shape=(3, 32, 32))   # for dynamic (symbolic) dims

Steps: check the file (empty, truncated, not ONNX, external data outside the model's folder:
each an ImportFailed naming the file); load external data; bring opsets below 13 up to 13 with
onnx's version converter; run onnx's checker and shape inference (its static shapes
cross-check the shapes snnc computes); fold constants (initializers, Constant nodes, Shape
arithmetic); convert each node through the registry in onnx_ops.py; eliminate Identity.
Unsupported ops are all listed in one UnsupportedOp. No pickle is ever loaded: ONNX is
protobuf, and external data is read as raw tensor bytes only.

Node names: a Conv/Gemm/MatMul whose weight initializer is named ``<path>.weight`` takes that
module path (both exporters keep it, even when they fold a BatchNormalization into the conv);
otherwise the torch module scope recorded by the exporter (``/layer1/layer1.0/Add`` or the
dynamo exporter's ``pkg.torch.onnx.name_scopes``) gives ``layer1_0_add``.
"""

from __future__ import annotations

import ast
import contextvars
import math
import os
import re
from collections import Counter
from itertools import chain
from pathlib import Path

import numpy as np
import onnx
import torch

from snnc.compiler.core import limits
from snnc.compiler.core.errors import ImportFailed, ResourceLimit, SnncError, UnsupportedOp
from snnc.compiler.frontends.fx_ops import batch_free
from snnc.compiler.frontends.onnx_attrs import check_nodes, static_shapes
from snnc.compiler.frontends.onnx_check import (
    _first, check_external, check_file, check_onnx, split_weights, tensor_array,
)
from snnc.compiler.frontends.onnx_wire import PendingSplit, begin_external, begin_split
from snnc.compiler.frontends.onnx_ops import (
    CONST_EVALS, ONNX_CONVERTERS, Reject, attribute_tables,
)
from snnc.compiler.core.ir import Attrs, Graph, GraphBuilder, Node, sanitize
from snnc.compiler.core.threads import prompt_switches
from snnc.compiler.frontends.report import problem_list

MIN_OPSET = 13
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
          b"PK\x03\x04": "a zip archive (a PyTorch checkpoint .pt/.pth?)",
          b"\x80\x02": "a Python pickle", b"\x89HDF": "an HDF5 file", b"%PDF": "a PDF document"}


# ops that only move shapes around: not reported again downstream of a reported node
_PLUMBING = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Identity",
             "Reshape", "Flatten", "Constant"}


class _Poisoned(Exception):
    """An input comes from a node that could not be converted (already reported)."""


# -- loading ----------------------------------------------------------------------------------
def _sniff(path: Path, label: str) -> None:
    if not path.is_file():
        raise ImportFailed(f"{label}: no such file. Check the path.")
    if path.stat().st_size == 0:
        raise ImportFailed(f"{label}: the file is empty (0 bytes). Export the model again, e.g. "
                           f"torch.onnx.export(model, (x,), '{path.name}').")
    head = path.open("rb").read(4096)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise ImportFailed(f"{label}: this is {what}, not an ONNX model. snnc reads .onnx "
                               f"files (torch.onnx.export) or a torch nn.Module in Python; it "
                               f"never unpickles checkpoints.")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return
    if text and all(c.isprintable() or c.isspace() for c in text):
        raise ImportFailed(f"{label}: this is a text file, not an ONNX model (ONNX files are "
                           f"binary protobuf). Export one with torch.onnx.export.")


def _set_input_shape(model: onnx.ModelProto, input_shape, label: str) -> None:
    """Give the one real input the shape (1, *input_shape) before shape inference."""
    inits = {t.name for t in model.graph.initializer}
    real = [vi for vi in model.graph.input if vi.name not in inits]
    if len(real) != 1:
        raise ImportFailed(f"{label}: input_shape= applies to a model with one input; this one "
                           f"has {len(real)}.")
    shape = real[0].type.tensor_type.shape
    del shape.dim[:]
    for d in (1, *(int(v) for v in input_shape)):
        shape.dim.add().dim_value = d
    del model.graph.value_info[:]
    for o in model.graph.output:
        for i, d in enumerate(o.type.tensor_type.shape.dim):
            d.dim_param = f"snnc_out{i}"  # inferred again from the new input shape


def load_model(path: str | os.PathLike, input_shape=None
               ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Read, check and normalise an ONNX file: (model with inferred shapes, initializers).

    Checks in docs/frontends.md's order ("Validation and limits", compiler/frontends/
    onnx_check.py); external data is read once, straight into the arrays returned.
    """
    model, consts, _ = _load(path, input_shape)
    return model, consts


def _load(path: str | os.PathLike, input_shape
          ) -> tuple[onnx.ModelProto, dict[str, np.ndarray], dict]:
    """`load_model`'s (model, initializers) and the model's `static_shapes`, read while
    the weight thread finishes (they read the inferred value_info, never a weight); within
    `from_onnx`, the `base_name` of the model's first nodes too, made while that thread still
    runs (`_name_nodes`)."""
    names = _NAMES.get()
    path = Path(path)
    label = str(path)
    _sniff(path, label)
    check_file(path, label)
    known = None
    external: list = []  # the external data's reader, when _load_checked starts one
    with prompt_switches():  # the weight threads get the GIL when they need it (onnx_wire)
        pending = begin_split(path) if _walked(path) else None
        try:
            got = _load_checked(path, label, input_shape, pending, external)
            if got is not None and (pending is not None or external):
                known = static_shapes(got[0])  # while the threads read and test the weights
                if names is not None:
                    _name_nodes(got[0], names, pending, external)
        finally:  # on an error too: no thread left reading into the arrays
            read_all = pending is None or pending.wait()
            ext = external[0] if external else None
            ext_read = ext is not None and ext.wait()
    if not read_all:  # the file changed while its weights were read: the ordinary way
        got = _load_checked(path, label, input_shape, None)
        known = None
        if names:
            names.clear()  # another model's nodes
    model, split = got
    # the thread tested its buffers for NaN/Inf; the arrays here are those buffers unless
    # the file was read again, or converted from an old opset (split again from the result)
    finite = read_all and pending is not None and split is pending.split and pending.finite
    # the external data read by its thread (else read here, tensor by tensor), unless the
    # file was read again (the model is another one then)
    ext_split = ext.split if ext_read and model is ext.model else {}
    ext_finite = bool(ext_split) and ext.finite
    consts = {}
    folder = path.parent
    for i, t in enumerate(model.graph.initializer):
        raw = split.pop(i, None)
        if raw is not None:
            consts[t.name] = tensor_array(t, label, folder, raw, finite)
        else:
            raw = ext_split.pop(i, None)
            consts[t.name] = tensor_array(t, label, folder, raw, ext_finite and raw is not None)
        t.ClearField("raw_data")  # the array holds the data now: never two copies
    if known is None:  # no thread, or the file was read again
        known = static_shapes(model)
    return model, consts, known


# {id(node): (node, base_name(node))} of the nodes named ahead within one `from_onnx` (a
# context variable, as onnx_ops' attribute tables: concurrent imports keep their own); None
# outside one
_NAMES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("snnc_onnx_node_names",
                                                                    default=None)


def _name_nodes(model: onnx.ModelProto, names: dict, pending: PendingSplit | None,
                external: list) -> None:
    """{id(node): (node, base_name(node))} into `names` for the model's nodes in order, while
    a weight thread still reads or tests (`_load` then waits for it: on a dynamo export
    ~0.5-1 ms, on densenet121 time for its first ~200 nodes' scope names); the conversion
    names the rest. A node whose name cannot be made here is left to the conversion, which
    makes it (and raises) where it always did. Each entry holds its node, so no other object
    has its id while `names` lives."""
    threads = [p for p in (pending, *external) if p is not None]
    for i, node in enumerate(model.graph.node):
        if not i % 16 and not any(p.running() for p in threads):
            return
        try:
            names[id(node)] = (node, base_name(node))
        except Exception:  # noqa: BLE001 - made again by the conversion, which reports it
            pass


def _load_checked(path: Path, label: str, input_shape, pending: PendingSplit | None,
                  external: list | None = None) -> tuple[onnx.ModelProto, dict] | None:
    """Steps 1-3 of `load_model` on `pending`'s model (its weights' bytes still being read by
    `onnx_wire.begin_split`'s thread: nothing here reads them), or on the file parsed the
    ordinary way when `pending` is None: (model with inferred shapes, {initializer index:
    data split off}); None when `pending`'s read failed where the weights were needed. Into
    `external` (a list), when given: the reader of the model's external data
    (`onnx_wire.begin_external`), started once step 2 has checked where it lies."""
    model, split = (pending.model, pending.split) if pending is not None else \
        (_parse(path, label), None)
    if not model.graph.node or model.ir_version <= 0:
        raise ImportFailed(f"{label}: parses but holds no ONNX graph (ir_version "
                           f"{model.ir_version}, {len(model.graph.node)} nodes): it is "
                           f"truncated or not an ONNX model. Export it again.")
    places = check_external(model, path.parent, label)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and opset > newest or model.ir_version > onnx.IR_VERSION:
        raise ImportFailed(f"{label}: opset {opset} / IR version {model.ir_version} is newer "
                           f"than this onnx {onnx.__version__} knows (opset {newest}, IR "
                           f"version {onnx.IR_VERSION}): re-export with opset_version="
                           f"{min(newest, 20)}, or upgrade onnx.")
    if opset is not None and opset < MIN_OPSET:
        if split is not None:  # the converter needs the weights inside the model: put back
            if pending is not None and not pending.wait():
                return None  # the file changed under the read: load_model reads it again
            for i, raw in split.items():  # the split ones (read once, never re-parsed)
                model.graph.initializer[i].raw_data = bytes(raw)
            split = None
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
            onnx.checker.check_model(model)
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
            places = {}  # the external data is inside the converted model now
        except Exception as err:
            raise ImportFailed(f"{label}: opset {opset} could not be converted to opset "
                               f"{MIN_OPSET} by onnx.version_converter ({_first(err)}). "
                               f"Re-export with opset_version={MIN_OPSET} or later.") from None
    if input_shape is not None:
        _set_input_shape(model, input_shape, label)
    if split is None:
        split = split_weights(model)
    if external is not None and places:
        ext = begin_external(model, path.parent, places)
        if ext is not None:
            external.append(ext)
    model = check_onnx(model, path, label, split)
    sizes = {t.name: 4 * math.prod(t.dims) for t in model.graph.initializer}
    if sizes:
        largest = max(sizes, key=sizes.get)
        limits.require(sum(sizes.values()) + sizes[largest], f"importing the weights of "
                       f"{label} (tensor '{largest}' alone holds "
                       f"{limits.fmt(sizes[largest])})", label)
    return model, split


def _walked(path: Path) -> bool:
    """Whether `_load` reads `path` with `onnx_wire.begin_split` (its inline weights read
    straight into their arrays): a binary protobuf file whose weights are not in
    `<file>.data` beside it, where torch's dynamo exporter (the default) writes them. Such a
    file holds the structure only (densenet121: 0.84 MB of nodes, metadata and value infos),
    which protobuf parses in less time than the walk takes to find that it holds no weights
    (0.85 against 1.7 ms); either way gives the same model (tests/frontends)."""
    return _protobuf_file(path) and not path.with_name(path.name + ".data").is_file()


def _protobuf_file(path: Path) -> bool:
    """Whether onnx.load_model reads `path` as binary protobuf (not a text format, which it
    picks by the file's extension)."""
    try:
        fmt = onnx.serialization.registry.get_format_from_file_extension(path.suffix)
    except AttributeError:  # an onnx without the format registry reads every file as protobuf
        return True
    return fmt in (None, "protobuf")


def _parse(path: Path, label: str) -> onnx.ModelProto:
    try:
        return onnx.load_model(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        raise ImportFailed(f"{label}: cannot be parsed as ONNX ({type(err).__name__}: "
                           f"{str(err)[:200]}). The file is truncated or not an ONNX model: "
                           f"export it again.") from None


# -- names ------------------------------------------------------------------------------------
_COUNTER = re.compile(r"_\d+$")  # the exporter's counter suffix: Relu_3 -> Relu


def _scope_name(node: onnx.NodeProto, op_type: str) -> str | None:
    """The torch module scope the exporter recorded for `node` (of op `op_type`), or None."""
    if node.metadata_props:  # the TorchScript exporter records none
        scopes = classes = None  # the values of the two keys read (the last one given wins,
        for p in node.metadata_props:  # as in a dict); the others' (a stack trace, ...) never
            key = p.key
            if key == _SCOPES:
                scopes = p.value
            elif key == _CLASSES:
                classes = p.value
        if scopes is not None:  # dynamo exporter
            scopes, classes = _str_list(scopes), _str_list(classes or "[]")
            scopes = [s for s in scopes or () if s]
            classes = classes or []
            if not scopes:
                return None
            op = _COUNTER.sub("", scopes[-1])
            if len(scopes) == 1:
                return op
            leaf = len(classes) >= 2 and str(classes[-2]).startswith("torch.nn.modules.")
            return scopes[-2] if leaf else f"{scopes[-2]}.{op}"
    name = node.name
    if name.startswith("/"):  # TorchScript exporter: /layer1/layer1.0/conv1/Conv
        parts = [p for p in name.split("/") if p]
        path: list[str] = []
        for m in parts[:-1]:  # scopes repeat their parent: layer1, layer1.0 -> layer1.0
            if path and m.startswith(path[-1] + "."):
                path[-1] = m
            else:
                path.append(m)
        if path and op_type in _MODULE_OPS:
            return ".".join(path)
        path.append(_COUNTER.sub("", parts[-1]).lower())
        return ".".join(path)
    return None


_SCOPES, _CLASSES = "pkg.torch.onnx.name_scopes", "pkg.torch.onnx.class_hierarchy"
# What the exporter writes (a Python list of plain strings, its repr): `_str_list` reads it
# without a parser; anything else (escapes, double quotes, other types) goes to literal_eval
_PLAIN = r"[^'\\\n\r\x00\ud800-\udfff]*"  # no quote, backslash, line end, NUL, surrogate
_PLAIN_LIST = re.compile(f"\\[(?:'{_PLAIN}'(?:, '{_PLAIN}')*)?\\]")
_PLAIN_ITEM = re.compile(f"'({_PLAIN})'")


def _str_list(text: str) -> list[str] | None:
    """A metadata value that should be a list of strings, or None if it is anything else
    (metadata only names nodes: a malformed value is ignored, docs/frontends.md). The form
    the dynamo exporter writes is split at its separators, or read by a regular expression:
    the same list as `ast.literal_eval` gives, which takes ~15 times as long as the split
    and ~6 times as long as the expression on one of densenet121's ~500 such values."""
    if len(text) > 10_000:
        return None
    if len(text) > 3 and text.startswith("['") and text.endswith("']") and text.isascii():
        inner = text[2:-2]  # what the expressions below accept, by C-level scans
        if "\\" not in inner and "\n" not in inner and "\r" not in inner \
                and "\x00" not in inner and inner.count("'") == 2 * inner.count("', '"):
            return inner.split("', '")  # every quote is in a separator: no item holds one
    if _PLAIN_LIST.fullmatch(text):
        return _PLAIN_ITEM.findall(text)
    try:
        v = ast.literal_eval(text)
    except Exception:  # SyntaxError, ValueError, MemoryError/RecursionError on odd nesting
        return None
    if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
        return list(v)
    return None


# ONNX ops that a torch leaf module (Conv2d, ReLU, ...) exports as its single node
_MODULE_OPS = {"Conv", "Gemm", "MatMul", "Relu", "Clip", "BatchNormalization", "MaxPool",
               "AveragePool", "GlobalAveragePool", "Dropout"}


def base_name(node: onnx.NodeProto) -> str:
    """The IR name an ONNX node gets (before making it unique); within `from_onnx`, the one
    `_name_nodes` made ahead when it did."""
    names = _NAMES.get()
    if names:
        made = names.get(id(node))  # each entry holds its node: no other has its id meanwhile
        if made is not None:
            return made[1]
    op = node.op_type
    if op in _WEIGHT_NAMED:
        inputs = node.input
        if len(inputs) > 1:
            weight = inputs[1]
            if weight.endswith(".weight"):
                return sanitize(weight.removesuffix(".weight"))
    scoped = _scope_name(node, op)
    if scoped:
        return sanitize(scoped)
    return sanitize(node.name or op.lower())


_WEIGHT_NAMED = frozenset({"Conv", "Gemm", "MatMul"})  # named after their weight's module


# -- conversion -------------------------------------------------------------------------------
class _Ctx:
    """What converters see: constants, shapes, the IR being built (see onnx_ops.py)."""

    def __init__(self, model: onnx.ModelProto, name: str, label: str,
                 consts: dict[str, np.ndarray]):
        self.label = label
        self.b = GraphBuilder(name, params={})
        self.values: dict[str, str] = {}  # ONNX value -> IR node
        self.shapes: dict[str, tuple[int, ...]] = {}  # IR node -> shape
        self.consts: dict[str, np.ndarray] = dict(consts)
        self.used: set[int] = set()  # data pointers already held by a parameter
        self.poisoned: set[str] = set()
        self._nodes = model.graph.node
        self._consumers: dict[str, int] | None = None
        self.graph_outputs = {o.name for o in model.graph.output}
        self.onnx_shapes: dict[str, tuple[int, ...]] = {}  # cross-check, see from_onnx

    @property
    def consumers(self) -> dict[str, int]:
        """How many node inputs read each value, counted at the first question (a bias to
        fold, a MaxPool's Indices output): most models ask none, and the count reads every
        node's inputs (densenet121: ~0.6 ms)."""
        if self._consumers is None:
            self._consumers = Counter(chain.from_iterable(n.input for n in self._nodes))
        return self._consumers

    # reading
    def const(self, name: str, role: str | None = None) -> np.ndarray | None:
        """The constant value of `name`; with `role`, a missing constant is a refusal."""
        if name in self.consts:
            return self.consts[name]
        if role is not None:
            if name in self.poisoned:
                raise _Poisoned
            raise Reject(f"its {role} input '{name}' is computed at run time; snnc needs a "
                         f"constant (an initializer) there")
        return None

    def tensor(self, name: str) -> str:
        """The IR node carrying activation `name`."""
        if name in self.values:
            return self.values[name]
        if name in self.poisoned:
            raise _Poisoned
        if name in self.consts:
            raise Reject(f"input '{name}' is a constant where an activation is expected")
        raise Reject(f"input '{name}' is produced by no node")

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        return self.shapes[self.tensor(name)]

    def is_used(self, name: str) -> bool:
        return self.consumers.get(name, 0) > 0 or name in self.graph_outputs

    # writing
    def emit(self, node, op: str, attrs: dict, inputs: list[str], params: dict) -> str:
        return self.emit_chain(node, [(op, attrs)], inputs, params)

    def emit_chain(self, node, steps, inputs, params: dict | None = None) -> str:
        """Add IR nodes applying `steps` [(op, attrs), ...] in turn; the first reads `inputs`."""
        srcs = [self.tensor(i) for i in ([inputs] if isinstance(inputs, str) else inputs)]
        base = base_name(node)
        b, shapes = self.b, self.shapes
        for k, (op, attrs) in enumerate(steps):
            name = b.fresh(base if k == 0 else f"{base}_{op}")
            ps = params if (k == 0 and params) else None
            keys = tuple([f"{name}.{r}" for r in ps]) if ps else ()
            frozen = Attrs(attrs)
            try:
                shape = b.add_inferred(Node(name, op, frozen, (), keys), srcs,
                                       [shapes[s] for s in srcs]).shape
            except Exception as err:
                raise Reject(f"its shapes do not work out in snnc: {err}") from None
            if ps:
                for key, arr in zip(keys, ps.values()):
                    b.set_param(key, _param(arr, self.used))
            shapes[name], srcs = shape, [name]
        out = node.output[0]
        want = self.onnx_shapes.get(out)
        if want is not None and want != shapes[srcs[0]]:
            raise Reject(f"snnc computes output shape {list(shapes[srcs[0]])} but ONNX "
                         f"shape inference gives {list(want)}")
        self.values[out] = srcs[0]
        return srcs[0]

    def emit_reshape(self, node, out: tuple[int, ...]) -> None:
        """identity / flatten{start} / reshape, whichever gives `out` (as the fx front end)."""
        src = self.shape(node.input[0])
        if math.prod(out) != math.prod(src):
            raise Reject(f"cannot reshape {list(src)} to {list(out)}")
        if tuple(out) == tuple(src):
            self.alias(node.output[0], node.input[0])
            return
        for start in range(len(src)):
            if tuple(out) == (*src[:start], math.prod(src[start:])):
                self.emit(node, "flatten", {"start": start}, [node.input[0]], {})
                return
        self.emit(node, "reshape", {"shape": batch_free(src, out)}, [node.input[0]], {})

    def alias(self, out: str, inp: str) -> None:
        self.values[out] = self.tensor(inp)

    def fold_bias(self, node, a: str, b: str) -> bool:
        """Add(conv_or_matmul_output, constant bias) -> that conv/linear with a bias."""
        t, c = (a, self.consts.get(b)) if a not in self.consts else (b, self.consts.get(a))
        if c is None or t in self.consts:
            return False
        prod = self.b.nodes.get(self.tensor(t))
        if prod is None or prod.op not in ("conv2d", "linear") or prod.attrs["bias"] \
                or self.consumers.get(t, 0) != 1 or t in self.graph_outputs:
            return False
        out = prod.attrs["out"]
        want = (out,) if prod.op == "linear" else (out, 1, 1)
        if c.size != out or c.shape[-len(want):] != want[-c.ndim:] if c.ndim else True:
            return False
        key = f"{prod.name}.bias"
        self.b.replace_node(Node(prod.name, prod.op, prod.attrs.set(bias=True), prod.shape,
                                 (*prod.params, key)))
        self.b.set_param(key, torch.from_numpy(np.array(c, dtype=np.float32).reshape(-1)).clone())
        self.values[node.output[0]] = prod.name
        return True


def _param(arr: np.ndarray, used: set[int]) -> torch.Tensor:
    """A float32 tensor of `arr`, sharing its memory when it already is one, so the weights
    read from the file are held once (docs/frontends.md "Validation and limits"); a buffer
    already given to another parameter (a shared initializer) or read-only is copied."""
    a = np.ascontiguousarray(arr, dtype=np.float32)
    flags = a.flags
    if not flags.writeable or not flags.aligned:
        a = a.copy()
    t = torch.from_numpy(a)
    ptr = t.data_ptr()  # the array's own pointer (numpy's __array_interface__: 5x the time)
    if a.size and ptr in used:
        t = torch.from_numpy(a.copy())
        ptr = t.data_ptr()
    used.add(ptr)
    return t


def _input_shape(vi: onnx.ValueInfoProto, given, label: str) -> tuple[int, ...]:
    dims = vi.type.tensor_type.shape.dim
    if given is not None:
        return (1, *(int(d) for d in given))
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    if shape and shape[0] is None:
        shape[0] = 1  # a symbolic batch: front ends use batch 1
    if not dims or any(d is None for d in shape):
        shown = [d.dim_param or "?" if not d.HasField("dim_value") else d.dim_value for d in dims]
        raise ImportFailed(f"{label}: input '{vi.name}' has dynamic or unknown dimensions "
                           f"{shown}. Give the shape without batch: from_onnx(path, "
                           f"input_shape=(3, 32, 32)) or --input-shape 3,32,32, or export with "
                           f"a fixed-size example input.")
    return tuple(shape)  # type: ignore[arg-type]


_SUPPORTED = ("snnc imports Conv, Gemm, MatMul(+Add), BatchNormalization, Relu, Clip, Add, "
              "Concat, MaxPool, AveragePool, GlobalAveragePool, ReduceMean over H,W, Flatten, "
              "Reshape, Dropout and Identity (docs/frontends.md).")


def _who(node: onnx.NodeProto, index: int) -> str:
    name = f"node '{node.name}'" if node.name else \
        f"node #{index} (unnamed, output '{node.output[0] if node.output else ''}')"
    return f"{name} (op {node.op_type})"


def from_onnx(path: str | os.PathLike, *, input_shape=None) -> Graph:
    """Import the ONNX file at `path` as an ANN-form graph (docs/ir.md, docs/frontends.md).

    `input_shape` (without batch) replaces the file's input shape; it is needed when the
    file's input has dynamic dimensions other than the batch. Raises ImportFailed for a file
    that cannot be read or is malformed (docs/frontends.md, "Validation and limits"),
    UnsupportedOp listing every node that cannot be converted, ResourceLimit above the memory
    limit; never another exception type.
    """
    label = str(path)
    token = _NAMES.set({})  # the nodes named ahead (`_name_nodes`), read by `base_name`
    try:
        with attribute_tables():  # the node checks and the converters read each node's once
            return _from_onnx(path, label, input_shape)
    finally:
        _NAMES.reset(token)


def _from_onnx(path: str | os.PathLike, label: str, input_shape) -> Graph:
    try:
        model, consts, shapes = _load(path, input_shape)
        bad = check_nodes(model, consts, shapes)
        if bad:
            problems = [(_who(n, i), f"(op {n.op_type})", why) for i, n, why in bad]
            raise ImportFailed(f"{label}: {len(bad)} node(s) are invalid:\n  "
                               f"{problem_list(problems)}\nThe file is malformed (onnxruntime "
                               f"would refuse or misrun it): export the model again.")
        return _convert(model, consts, label, input_shape, shapes)
    except SnncError:
        raise
    except MemoryError:
        raise ResourceLimit(f"{label}: ran out of memory while importing the model. Lower the "
                            f"input shape, or free memory.") from None
    except RecursionError:
        raise ImportFailed(f"{label}: the graph is nested too deeply to import.") from None
    except Exception as err:  # a malformed file that slipped through the checks above
        where = getattr(err, "snnc_node", "the model")
        raise ImportFailed(f"{label}: cannot import {where}: {type(err).__name__}: "
                           f"{str(err)[:200]}. The file is probably malformed: check it with "
                           f"onnxruntime, and if onnxruntime runs it, report this as a bug in "
                           f"snnc.") from err


def _convert(model: onnx.ModelProto, consts: dict, label: str, input_shape,
             shapes: dict) -> Graph:
    """The IR of the checked `model`; `shapes`: static_shapes(model), the cross-check."""
    ctx = _Ctx(model, sanitize(Path(label).stem), label, consts)
    ctx.onnx_shapes = shapes
    real_inputs = [vi for vi in model.graph.input if vi.name not in consts]
    for vi in real_inputs:
        shape = _input_shape(vi, None, label)
        name = ctx.b.fresh(sanitize(vi.name))
        ctx.b.add(Node(name, "input", shape=shape))
        ctx.values[vi.name], ctx.shapes[name] = name, shape

    bad: list[tuple[str, str, str]] = []
    for index, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            bad.append((_who(node, index), f"(op {node.domain}::{node.op_type})",
                        "custom domain"))
            ctx.poisoned.update(node.output)
            continue
        op_type = node.op_type
        fold = CONST_EVALS.get(op_type)
        if fold is not None and _fold_constant(ctx, node, fold, op_type):
            continue
        conv = ONNX_CONVERTERS.get(op_type)
        if ctx.poisoned and op_type in _PLUMBING and any(
                i in ctx.poisoned for i in node.input):
            ctx.poisoned.update(node.output)  # shape plumbing of a reported node: no news
            continue
        try:
            if conv is None:
                raise Reject("no converter")
            conv(ctx, node)
        except _Poisoned:
            ctx.poisoned.update(node.output)
        except Reject as why:
            bad.append((_who(node, index), f"(op {node.op_type})", str(why)))
            ctx.poisoned.update(node.output)
        except (SnncError, MemoryError, RecursionError):
            raise
        except Exception as err:  # a malformed node the checks missed: name it
            bad.append((_who(node, index), f"(op {node.op_type})",
                        f"malformed ({type(err).__name__}: {str(err)[:160]})"))
            ctx.poisoned.update(node.output)
    if bad:
        raise UnsupportedOp(
            f"{label}: {len(bad)} node(s) cannot be imported:\n  {problem_list(bad)}\n"
            f"{_SUPPORTED} Replace these ops in the model (e.g. GELU/SiLU -> ReLU) and export "
            f"again, or register a converter with @onnx_converter('OP') in "
            f"snnc.compiler.frontends.onnx_ops.")
    outs = []
    for o in model.graph.output:
        if o.name not in ctx.values:
            raise ImportFailed(f"{label}: graph output '{o.name}' is a constant, not computed "
                               f"from the input; snnc cannot compile such a model.")
        outs.append(ctx.values[o.name])
    ctx.b.outputs = outs
    return ctx.b.build()


def _fold_constant(ctx: _Ctx, node: onnx.NodeProto, fn, op_type: str) -> bool:
    """Evaluate `node` (op `op_type`, CONST_EVALS entry `fn`) now if it only computes
    constants (shape arithmetic); True if done."""
    consts = ctx.consts
    if op_type == "Shape":
        if node.input[0] not in ctx.values and node.input[0] not in consts:
            return False
    else:
        for i in node.input:
            if i and i not in consts:
                return False
    try:
        vals = fn(ctx, node)
    except Exception:
        return False  # leave it to the converter, which names what is wrong
    for out, v in zip(node.output, vals):
        consts[out] = np.asarray(v)
    return True
