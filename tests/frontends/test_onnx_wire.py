"""compiler/frontends/onnx_wire.py: the file's weights read once, into aligned arrays the IR
shares; the structure parsed alone. Its result must be what `onnx.load_model` then
`onnx_check.split_weights` give, and anything but the plain form must go the ordinary way."""

from __future__ import annotations

import math

import onnx
import pytest
from onnx import TensorProto, helper

from snnc.compiler.core.errors import ImportFailed, VerifyError
from snnc.compiler.frontends import onnx_check
from snnc.compiler.frontends.onnx import from_onnx, load_model
from snnc.compiler.frontends.onnx_wire import _encode_varint as _varint, read_split


def _ordinary(path):
    model = onnx.load_model(str(path), load_external_data=False)
    return model, onnx_check.split_weights(model)


@pytest.mark.parametrize("zoo_id,exporter", [("densenet121", "torchscript"),
                                             ("mobilenetv2", "dynamo"),
                                             ("resnet20", "torchscript")])
def test_same_as_onnx_load_then_split(zoo_id, exporter, exports):
    path = exports(zoo_id, exporter)
    want_model, want_split = _ordinary(path)
    got = read_split(path)
    assert got is not None
    model, split = got
    assert model.SerializeToString() == want_model.SerializeToString()
    assert split.keys() == want_split.keys()
    assert split or exporter == "dynamo"  # the dynamo exporter writes external data
    for i, raw in want_split.items():
        assert split[i].tobytes() == raw, model.graph.initializer[i].name
        assert split[i].ctypes.data % 64 == 0 and split[i].flags.writeable
    # shape data (<= SHAPE_DATA_MAX values) stays inline, as split_weights leaves it
    kept = [t for t in model.graph.initializer if t.HasField("raw_data")]
    assert all(not onnx_check.splits(t) for t in kept)


def test_the_ir_shares_the_arrays(exports):
    """The weights are held once: the IR's tensor is the array read from the file (aligned,
    writable); an unaligned or read-only array is copied."""
    import numpy as np

    from snnc.compiler.frontends.onnx import _param

    path = exports("resnet20", "torchscript")
    model, split = read_split(path)
    arr = onnx_check.tensor_array(model.graph.initializer[min(split)], "x", None,
                                  split[min(split)])
    t = _param(arr, set())
    assert t.data_ptr() == arr.ctypes.data and t.data_ptr() % 64 == 0
    odd = np.frombuffer(bytearray(4 * 33), np.float32, count=32, offset=1)
    assert not odd.flags.aligned and _param(odd, set()).data_ptr() != odd.ctypes.data
    g = from_onnx(path)
    weights = [v for k, v in g.params.items() if k.endswith(".weight")]
    assert weights and all(w.data_ptr() % 64 == 0 for w in weights)


def _model(init_raw: list[bytes]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 100], init_raw[0], raw=True)
    node = helper.make_node("Add", ["x", "w"], ["y"])
    g = helper.make_graph([node], "g", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _field(key: int, body: bytes) -> bytes:
    return bytes([key]) + _varint(len(body)) + body


def test_unusual_wire_forms_go_the_ordinary_way(tmp_path):
    m = _model([bytes(400)])
    plain, graph = m.SerializeToString(), m.graph.SerializeToString()
    m.ClearField("graph")
    rest = m.SerializeToString()
    path = tmp_path / "plain.onnx"
    path.write_bytes(plain)
    assert read_split(path) is not None
    # the graph given twice: protobuf merges the two (two nodes), not handled here
    twice = tmp_path / "graph_twice.onnx"
    twice.write_bytes(plain + _field(0x3A, graph))
    assert read_split(twice) is None
    assert len(onnx.load_model(str(twice)).graph.node) == 2
    # raw_data given twice in one initializer: protobuf keeps the last one
    body = helper.make_tensor("w", TensorProto.FLOAT, [1, 100], bytes(400),
                              raw=True).SerializeToString()
    t, t2 = _field(0x2A, body), _field(0x2A, body + _field(0x4A, bytes([1]) * 400))
    assert graph.count(t) == 1
    double = tmp_path / "raw_twice.onnx"
    double.write_bytes(rest + _field(0x3A, graph.replace(t, t2)))
    assert read_split(double) is None
    _, consts = load_model(double)
    assert consts["w"].tobytes() == bytes([1]) * 400  # protobuf's reading: the last one
    # a truncated file: refused by the ordinary read, with its message
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(plain[: len(plain) - 50])
    assert read_split(cut) is None
    with pytest.raises(ImportFailed, match="truncated"):
        load_model(cut)


def _plain_fields(buf, i, end):
    """The protobuf wire format read plainly, one varint at a time: (field, wire type, start
    of the key, start of the value, end of the value) of each field of buf[i:end]; raises
    onnx_wire._Unusual where `onnx_wire._fields` must (past the end, field 0, groups)."""
    from snnc.compiler.frontends import onnx_wire as w

    def varint(i):
        value = shift = 0
        while True:
            if i >= end or shift > 63:
                raise w._Unusual
            b = buf[i]
            value |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                return value, i
            shift += 7

    while i < end:
        start = i
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, j = varint(i)
        elif wire == 1:
            j = i + 8
        elif wire == 5:
            j = i + 4
        elif wire == 2:
            n, i = varint(i)
            j = i + n
        else:
            raise w._Unusual
        if j > end or field == 0:
            raise w._Unusual
        yield field, wire, start, i, j
        i = j


def _strip_by_fields(buf):
    """`onnx_wire._strip` written plainly (each graph and tensor field one step, varints read
    one byte at a time by `_plain_fields`): the reference for `_fields`' inline reading of
    one-byte keys and lengths and for the graph walk's runs of kept fields."""
    from snnc.compiler.frontends import onnx_wire as w

    spans, out, graphs = [], [], 0
    for field, wire, key, start, end in _plain_fields(buf, 0, len(buf)):
        if field != 7 or wire != 2:
            out.append(buf[key:end])
            continue
        graphs += 1
        if graphs > 1:
            raise w._Unusual
        parts = []
        for f, wt, k, s, e in _plain_fields(buf, start, end):
            if f != 5 or wt != 2:
                parts.append(buf[k:e])
                continue
            raw, kept = None, []
            for tf, tw, tk, ts, te in _plain_fields(buf, s, e):
                if tf == 9:
                    if raw is not None or tw != 2:
                        raise w._Unusual
                    raw = (ts, te)
                else:
                    kept.append(buf[tk:te])
            spans.append(raw)
            body = b"".join(kept)
            parts.append(buf[k:e] if raw is None else
                         w._key(buf, k) + w._encode_varint(len(body)) + body)
        body = b"".join(parts)
        out.append(w._key(buf, key) + w._encode_varint(len(body)) + body)
    return b"".join(out), spans


def test_the_walk_equals_a_plain_walk_one_field_at_a_time():
    """`_fields` reads one-byte keys, and lengths and varint values of one or two bytes,
    inline and `_strip_graph` copies runs of fields: on damaged files (bytes changed, cut,
    inserted) it must take out the same bytes, or find the same file unusual, as a walk one
    field at a time. The tensors' dims and lengths take one, two and three varint bytes."""
    import random

    import numpy as np

    from snnc.compiler.frontends import onnx_wire as w

    m = _model([bytes(400)])
    for i, n in enumerate((3, 200, 70, 5000, 20000)):  # the third without raw_data; dims
        # of one (3), two (200, 5000) and three (20000) varint bytes, raw lengths likewise
        # (12; 800; 20000, 80000 bytes)
        t = m.graph.initializer.add()
        vals = [0.5] * n
        t.CopyFrom(helper.make_tensor(f"c{i}", TensorProto.FLOAT, [n], vals) if i == 2 else
                   helper.make_tensor(f"c{i}", TensorProto.FLOAT, [n],
                                      np.array(vals, np.float32).tobytes(), raw=True))
    src = m.SerializeToString()
    rng = random.Random(11)
    seen = set()
    heads = [i for i in range(len(src)) if i < 2000 or src[i] not in (0, 0x3F)]  # not the
    # values of the large tensors (0.5 is 00 00 00 3f): damage lands on keys and lengths
    for _ in range(900):
        b = bytearray(src)
        for _ in range(rng.randint(1, 3)):
            pos = rng.choice(heads) if rng.random() < 0.8 else rng.randrange(len(b))
            pos = min(pos, len(b) - 1)
            r = rng.random()
            if r < 0.6:
                b[pos] = rng.randrange(256)
            elif r < 0.8:
                del b[pos:pos + rng.randint(1, 8)]
            else:
                b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        b = bytes(b)
        try:
            want = _strip_by_fields(b)
        except w._Unusual:
            want = "unusual"
        spans = []
        try:
            got = (w._strip(b, spans), spans)
        except w._Unusual:
            got = "unusual"
        seen.add(want == "unusual")
        assert got == want
    assert seen == {True, False}  # both outcomes met


def test_external_data_check_walks_every_tensor_as_onnx_does():
    """onnx_check._all_tensors: onnx's _get_all_tensors (initializers of the graph and its
    subgraphs, then attribute tensors of the graph, subgraphs and functions), same order."""
    from onnx import external_data_helper, numpy_helper

    import numpy as np

    def const(name, v):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
            np.full(3, v, np.float32), name=f"{name}_t"))

    branch = helper.make_graph([const("b_out", 1.0)], "then", [], [
        helper.make_tensor_value_info("b_out", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(np.zeros(3, np.float32), "sub_init")])
    other = helper.make_graph([const("e_out", 2.0)], "else", [], [
        helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [3])])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    g = helper.make_graph([const("k", 3.0), helper.make_node("If", ["c"], ["y"],
                                                             then_branch=branch,
                                                             else_branch=other)],
                          "g", [cond], [out], [numpy_helper.from_array(np.ones(3, np.float32),
                                                                       "top_init")])
    fn = helper.make_function("local", "f", [], ["z"], [const("z", 4.0)],
                              [helper.make_opsetid("", 17)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("local", 1)], functions=[fn])
    want = [t.name for t in external_data_helper._get_all_tensors(m)]
    assert [t.name for t in onnx_check._all_tensors(m)] == want
    assert set(want) == {"top_init", "sub_init", "k_t", "b_out_t", "e_out_t", "z_t"}


def _many_tensors(path, n: int = 600, table: int = 20_000):
    """A file of `n` float weights of 100 values (more than one preadv's buffers), with an
    int64 initializer of `table` values (kept in the model, 160 kB: a gap the weights' read
    skips) in the middle."""
    import numpy as np
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    ws = [numpy_helper.from_array(rng.standard_normal(100).astype(np.float32), f"w{i}")
          for i in range(n)]
    big = numpy_helper.from_array(np.arange(table, dtype=np.int64), "table")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [100])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [100])
    g = helper.make_graph([helper.make_node("Sum", ["x", *(w.name for w in ws)], ["y"])],
                          "g", [x], [y], ws[:n // 2] + [big] + ws[n // 2:])
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                    str(path))
    return path


def test_weights_read_in_runs_equal_onnx_reading(tmp_path):
    """begin_split's thread reads the weights in runs (one os.preadv per up to _IOV_MAX
    buffers; a gap above _GAP_MAX starts a new run): every byte lands where onnx's own
    reading puts it."""
    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "many.onnx")
    want_model, want_split = _ordinary(path)
    assert len(want_split) > onnx_wire._IOV_MAX
    pending = onnx_wire.begin_split(path)
    assert pending is not None and pending.wait() and pending.wait()  # waiting twice is fine
    assert pending.model.SerializeToString() == want_model.SerializeToString()
    assert pending.split.keys() == want_split.keys()
    for i, raw in want_split.items():
        assert pending.split[i].tobytes() == raw


@pytest.mark.parametrize("n,table,shared", [
    (600, 20_000, True),  # 600 x 448 padded bytes of weights in a 420 kB file
    (600, 1, False),  # their 64-byte padding (48 bytes each) makes them longer than the file
    (8, 20_000, False),  # 3.6 kB of weights in a 165 kB file: under half of it
])
def test_the_weights_are_read_into_the_walks_buffer(tmp_path, monkeypatch, n, table, shared):
    """begin_split reads the weights into the buffer its walk read the structure into (the
    kernel has cleared and mapped its pages once: `_weight_block`) when they fit there and
    fill at least half of it, else into a buffer of their own; either way every byte lands
    where onnx's own reading puts it, each tensor on a 64-byte boundary."""
    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "many.onnx", n=n, table=table)
    _, want_split = _ordinary(path)
    images = []
    real = onnx_wire._Image.of_file
    monkeypatch.setattr(onnx_wire._Image, "of_file",
                        staticmethod(lambda fd: images.append(real(fd)) or images[-1]))
    pending = onnx_wire.begin_split(path)
    assert pending is not None and pending.wait() and pending.finite
    assert len(images) == 1 and images[0].view.obj.size == path.stat().st_size + 64
    assert pending.split.keys() == want_split.keys()
    for i, raw in want_split.items():
        got = pending.split[i]
        assert got.tobytes() == raw and got.ctypes.data % 64 == 0 and got.flags.writeable
        assert (got.base is images[0].view.obj) == shared


@pytest.mark.parametrize("size,shared", [(1000, True), (1001, False), (500, True),
                                         (499, False), (0, False)])
def test_the_weight_block_uses_the_image_when_it_fills_half_of_it(size, shared):
    """`_weight_block(image of a 1,000-byte file, size)`: the image when size <= 1,000 <=
    2 size, else a new buffer; `size` bytes on a 64-byte boundary either way."""
    import numpy as np

    from snnc.compiler.frontends.onnx_wire import _weight_block

    image = np.empty(1000 + 64, dtype=np.uint8)
    block = _weight_block(image, size)
    assert block.size == size and block.ctypes.data % 64 == 0
    assert (block.base is image) == shared


def test_a_failed_weight_read_is_read_again_the_ordinary_way(tmp_path, monkeypatch):
    """Should the weights' read come up short (the file changed while it was read),
    load_model reads the file the ordinary way: same result, no error."""
    import os

    from snnc.compiler.core import threads
    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "many.onnx", n=8)
    _, want = load_model(path)
    calls = []
    real = onnx_wire._read_runs

    def short(fd, reads, done, check=None):  # one read past the file's end: a short read
        calls.append(len(reads))
        view = memoryview(bytearray(4))
        real(fd, [*reads, (os.fstat(fd).st_size, view)], done, check)

    monkeypatch.setattr(onnx_wire, "_read_runs", short)
    assert read_split(path) is None
    _, got = load_model(path)
    assert len(calls) == 2 and got.keys() == want.keys()
    assert all((got[k] == want[k]).all() for k in want)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_the_weight_thread_finds_non_finite_weights(tmp_path, bad):
    """The thread tests its buffers for NaN/Inf (PendingSplit.finite); a file with one bad
    weight is refused naming the tensor and the count, as the test of each tensor did."""
    import numpy as np
    from onnx import numpy_helper

    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "ok.onnx", n=8)
    pending = onnx_wire.begin_split(path)
    assert pending.wait() and pending.finite
    m = onnx.load(str(path))
    w = numpy_helper.to_array(m.graph.initializer[5]).copy()
    w[7] = bad
    m.graph.initializer[5].CopyFrom(numpy_helper.from_array(w, m.graph.initializer[5].name))
    onnx.save_model(m, str(tmp_path / "bad.onnx"))
    pending = onnx_wire.begin_split(tmp_path / "bad.onnx")
    assert pending.wait() and not pending.finite
    kind = "1 NaN and 0 infinite" if np.isnan(bad) else "0 NaN and 1 infinite"
    with pytest.raises(ImportFailed, match=rf"tensor '{m.graph.initializer[5].name}' holds {kind}"):
        load_model(tmp_path / "bad.onnx")


def test_huge_finite_weights_are_finite(tmp_path):
    """all_finite's first test is x.x (docs/frontends.md step 4): weights whose squares
    overflow float32 (1e30) make it infinite, and the exact test must still accept them, in
    the thread's buffer and tensor by tensor; NaN, +-Inf and float16/float64 are answered as
    np.isfinite(x).all() answers."""
    import warnings

    import numpy as np
    from onnx import numpy_helper

    from snnc.compiler.frontends import onnx_wire
    from snnc.compiler.frontends.onnx_check import all_finite

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64, np.float16):
        big = np.finfo(dtype).max
        for values in ([], [1.0, 2.0], [big, big], [1.0, np.nan], [np.inf, 1.0], [-np.inf],
                       [big / 2] * 5, rng.standard_normal(1000)):
            x = np.asarray(values, dtype=dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the overflow is an answer, not a warning
                assert all_finite(x) == bool(np.isfinite(x).all()), (dtype, values)
    path = _many_tensors(tmp_path / "ok.onnx", n=8)
    m = onnx.load(str(path))
    w = numpy_helper.to_array(m.graph.initializer[5]).copy()
    w[:] = 1e30
    m.graph.initializer[5].CopyFrom(numpy_helper.from_array(w, m.graph.initializer[5].name))
    onnx.save_model(m, str(tmp_path / "huge.onnx"))
    pending = onnx_wire.begin_split(tmp_path / "huge.onnx")
    assert pending.wait() and pending.finite
    _, consts = load_model(tmp_path / "huge.onnx")
    assert (consts[m.graph.initializer[5].name] == np.float32(1e30)).all()


def test_the_file_is_read_in_as_the_walk_goes(tmp_path, monkeypatch):
    """begin_split walks the file through `_Image` (os.pread as the walk reaches each field,
    the weights' values stepped over) instead of a mapping of the file: on damaged files it
    takes out the same bytes, or finds the same file unusual, as the walk over the file's
    bytes in memory, and it reads little more than the structure."""
    import os
    import random

    import numpy as np

    from snnc.compiler.frontends import onnx_wire as w

    m = _model([bytes(400)])
    for i in range(6):  # weights of 40 kB: the walk steps over them
        t = m.graph.initializer.add()
        t.CopyFrom(helper.make_tensor(f"c{i}", TensorProto.FLOAT, [10000],
                                      np.full(10000, i, np.float32).tobytes(), raw=True))
        t.doc_string = f"tensor {i} " * 40 * (i % 2)  # fields after raw_data's bytes too
    src = m.SerializeToString()
    path = tmp_path / "m.onnx"

    def by_file():
        spans = []
        fd = os.open(path, os.O_RDONLY)
        try:
            img = w._Image.of_file(fd)
            return w._strip(img.view, spans, img), spans
        except w._Unusual:
            return "unusual"
        finally:
            os.close(fd)

    def in_memory(b):
        spans = []
        try:
            return w._strip(b, spans), spans
        except w._Unusual:
            return "unusual"

    read = []
    real = w._Image.need
    monkeypatch.setattr(w._Image, "need", lambda self, end: (
        read.append(-self.hi), real(self, end), read.append(self.hi)))
    path.write_bytes(src)
    assert by_file() == in_memory(src) != "unusual"
    assert sum(read) < len(src) // 10  # the structure, not the 240 kB of weights
    rng = random.Random(5)
    seen = set()
    for _ in range(300):
        b = bytearray(src)
        pos = rng.randrange(len(b)) if rng.random() < 0.3 else rng.randrange(600)
        if rng.random() < 0.7:
            b[pos] = rng.randrange(256)
        else:
            del b[pos:]
        path.write_bytes(bytes(b))
        want = in_memory(bytes(b))
        seen.add(want == "unusual")
        assert by_file() == want
    assert seen == {True, False}


def test_without_pread_or_preadv_the_same_model_is_read(tmp_path, monkeypatch):
    """Where the platform lacks os.preadv (the walk's reads and the weight thread fall back to
    os.pread and to one read per tensor) or os.pread too (Windows: begin_split declines and
    the ordinary read serves), load_model gives the same model and weights."""
    import os

    import numpy as np

    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "many.onnx", n=40)
    want_model, want = load_model(path)
    monkeypatch.delattr(os, "preadv", raising=False)
    pending = onnx_wire.begin_split(path)
    assert pending is not None and pending.wait()
    model, consts = load_model(path)
    assert model.SerializeToString() == want_model.SerializeToString()
    assert consts.keys() == want.keys() and all(np.array_equal(consts[k], want[k]) for k in want)
    monkeypatch.delattr(os, "pread", raising=False)
    assert onnx_wire.begin_split(path) is None
    model, consts = load_model(path)
    assert model.SerializeToString() == want_model.SerializeToString()
    assert consts.keys() == want.keys() and all(np.array_equal(consts[k], want[k]) for k in want)


def _plain_probe(model: onnx.ModelProto, split: dict) -> bytes:
    """What onnx_check._structure gives, built the plain way: a ValueInfoProto per weight
    (helper.make_tensor_value_info) appended to a copy's inputs, the metadata_props of its
    nodes and value infos left out (the model's kept)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    g = probe.graph
    for item in [*g.node, *g.input, *g.output, *g.value_info]:
        del item.metadata_props[:]
    names = {vi.name for vi in g.input}
    keep = []
    for i, t in enumerate(model.graph.initializer):
        if i in split or t.data_location == TensorProto.EXTERNAL:
            if t.name not in names:
                names.add(t.name)
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type,
                                                             list(t.dims)))
        else:
            keep.append(t)
    del g.initializer[:]
    g.initializer.extend(keep)
    return probe.SerializeToString()


@pytest.mark.parametrize("zoo_id,exporter,opset,external", [
    ("densenet121", "torchscript", None, False), ("mobilenetv2", "dynamo", None, False),
    ("resnet20", "torchscript", 11, False), ("resnet20", "torchscript", None, True),
    ("resnet20", "dynamo", None, False)])
def test_the_probe_onnx_checks_is_the_plain_one(zoo_id, exporter, opset, external, exports,
                                                 tmp_path, monkeypatch):
    """check_onnx writes the weights' typed inputs as wire bytes (onnx_wire.typed_inputs)
    into the probe that onnx's checker and shape inference read: byte for byte the probe
    built with a ValueInfoProto per weight, on what load_model hands it (both exporters,
    external data, an opset converted from 11)."""
    from snnc.compiler.frontends import onnx as front

    path = exports(zoo_id, exporter, opset)
    if external:
        folder = tmp_path / "ext"
        folder.mkdir()
        onnx.save_model(onnx.load(str(path)), str(folder / "m.onnx"),
                        save_as_external_data=True, location="m.data", size_threshold=0)
        path = folder / "m.onnx"
    seen = []

    def check_onnx(model, path, label, split=None):
        probe = onnx_check._structure(model, split or {}).SerializeToString()
        assert probe == _plain_probe(model, split or {})
        seen.append(len(model.graph.initializer))
        return onnx_check.check_onnx(model, path, label, split)

    monkeypatch.setattr(front, "check_onnx", check_onnx)
    load_model(path)
    assert seen and seen[0] > 10


def test_the_probe_of_odd_weights_is_the_plain_one():
    """The typed inputs of weights with dims of every varint length, negative dims (two:
    still > SHAPE_DATA_MAX values), an empty shape (an external scalar), a type beyond
    onnx's, names in UTF-8 and a name given twice; a name protobuf hands out as bytes (not
    UTF-8) is refused as building its ValueInfoProto refuses it."""
    from snnc.compiler.frontends import onnx_wire

    m = _model([bytes(400)])
    inits = m.graph.initializer
    for name, dims, dtype in [("big", [3, 200, 20_000, 3_000_000_000], TensorProto.FLOAT),
                              ("neg", [-10, -10], TensorProto.FLOAT),
                              ("größe.weight", [65], TensorProto.DOUBLE),
                              ("odd", [70], 1000), ("big", [80], TensorProto.FLOAT)]:
        t = inits.add()
        t.name, t.data_type = name, dtype
        t.dims.extend(dims)
    scalar = inits.add()
    scalar.CopyFrom(helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]))
    scalar.data_location = TensorProto.EXTERNAL
    split = {i: b"" for i in range(1, len(inits) - 1)}
    assert onnx_check._structure(m, split).SerializeToString() == _plain_probe(m, split)
    assert len(onnx_check._structure(m, split).graph.input) == 1 + 5  # "big" once

    raw = bytearray(m.SerializeToString())
    at = raw.index(b"odd")
    raw[at:at + 3] = b"\xff\xfe\xfd"
    bad = onnx.ModelProto()
    bad.ParseFromString(bytes(raw))
    assert onnx_wire.typed_inputs(list(bad.graph.initializer)) is None
    with pytest.raises(UnicodeDecodeError) as plain:
        _plain_probe(bad, split)
    with pytest.raises(UnicodeDecodeError) as got:
        onnx_check._structure(bad, split)
    assert str(got.value) == str(plain.value)


def test_the_switch_interval_is_lowered_while_weights_are_read_then_put_back(tmp_path,
                                                                             monkeypatch):
    """load_model lowers the interpreter's switch interval while its weight thread runs (the
    thread gets the GIL soon after its read and its test, not after 5 ms: compiler/core/
    threads.py's SWITCH_INTERVAL) and puts the caller's back afterwards: on success, on a
    refused file, and when blocks overlap in several threads (the last one out restores it)."""
    import sys
    import threading

    from snnc.compiler.core import threads
    from snnc.compiler.frontends import onnx_wire

    path = _many_tensors(tmp_path / "many.onnx", n=8)
    seen = []
    real = onnx_wire._read_runs

    def spy(*args):
        seen.append(sys.getswitchinterval())
        real(*args)

    monkeypatch.setattr(onnx_wire, "_read_runs", spy)
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.004)
        load_model(path)
        assert seen == [pytest.approx(threads.SWITCH_INTERVAL)]  # held in microseconds
        assert sys.getswitchinterval() == pytest.approx(0.004)
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(path.read_bytes()[:-40])  # cut inside the last weight: refused
        with pytest.raises(ImportFailed):
            load_model(bad)
        assert sys.getswitchinterval() == pytest.approx(0.004)

        inside, leave = threading.Event(), threading.Event()

        def other():
            with threads.prompt_switches():
                inside.set()
                leave.wait(10)

        t = threading.Thread(target=other)
        with threads.prompt_switches():
            t.start()
            assert inside.wait(10)
        assert sys.getswitchinterval() == pytest.approx(threads.SWITCH_INTERVAL)  # other inside
        leave.set()
        t.join(10)
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(before)


def test_shapes_read_while_the_weights_are_read_are_the_models(tmp_path, monkeypatch, exports):
    """from_onnx reads the static shapes while the weight thread finishes (onnx._load): the
    same as static_shapes of the model load_model returns, also when the read fails and the
    file is read again the ordinary way."""
    import os

    from snnc.compiler.frontends import onnx as fonnx
    from snnc.compiler.frontends import onnx_wire
    from snnc.compiler.frontends.onnx_attrs import static_shapes

    path = exports("resnet20", "torchscript")
    model, _, shapes = fonnx._load(path, None)
    assert shapes == static_shapes(model) and len(shapes) > 50
    real = onnx_wire._read_runs

    def short(fd, reads, done, check=None):
        real(fd, [*reads, (os.fstat(fd).st_size, memoryview(bytearray(4)))], done, check)

    monkeypatch.setattr(onnx_wire, "_read_runs", short)
    model2, _, shapes2 = fonnx._load(path, None)
    assert shapes2 == shapes == static_shapes(model2)


def _short_external_reads(monkeypatch) -> list:
    """Make every read of the external data's thread come up short (one read past the
    file's end, as when the file changed after its check); returns the list each read's
    run count is appended to."""
    import os

    from snnc.compiler.frontends import onnx_wire

    real, calls = onnx_wire._read, []

    def short(fd, reads):
        calls.append(len(reads))
        real(fd, [*reads, (os.fstat(fd).st_size, memoryview(bytearray(4)))])

    monkeypatch.setattr(onnx_wire, "_read", short)
    return calls


def test_shapes_read_while_the_external_data_is_read_are_the_models(exports, monkeypatch):
    """The same for torch's dynamo export, whose weights the external data's thread reads
    (onnx._load reads the static shapes meanwhile): equal to static_shapes of the model, also
    when that read comes up short and the tensors are read the ordinary way."""
    from snnc.compiler.frontends import onnx as fonnx
    from snnc.compiler.frontends.onnx_attrs import static_shapes

    path = exports("resnet20", "dynamo")
    assert not fonnx._walked(path)  # its weights lie in <file>.data: the external reader's
    model, _, shapes = fonnx._load(path, None)
    assert shapes == static_shapes(model) and len(shapes) > 50
    calls = _short_external_reads(monkeypatch)
    model2, _, shapes2 = fonnx._load(path, None)
    assert calls and shapes2 == shapes == static_shapes(model2)


def test_node_names_made_while_the_weights_are_read_are_the_conversions(exports, monkeypatch):
    """onnx._name_nodes names nodes while a weight thread runs, 16 per check, stopping when
    none does; each name is `base_name`'s, a node whose name cannot be made is left out (the
    conversion makes it), and the graph imported with those names is the one imported
    without them."""
    from snnc.compiler.core.text import print_ir
    from snnc.compiler.frontends import onnx as fonnx

    path = exports("densenet121", "dynamo")
    model = onnx.load(str(path), load_external_data=False)
    nodes = list(model.graph.node)

    class Thread:  # runs for the first `checks` questions
        def __init__(self, checks):
            self.checks = checks

        def running(self):
            self.checks -= 1
            return self.checks >= 0

    names: dict = {}
    fonnx._name_nodes(model, names, Thread(3), [])
    assert len(nodes) > 48 and [names[id(n)] for n in nodes[:48]] == [
        (n, fonnx.base_name(n)) for n in nodes[:48]]
    assert len(names) == 48
    names.clear()
    real = fonnx.base_name
    odd = nodes[5]

    def fails_once(node):
        if node is odd:
            raise ValueError("odd metadata")
        return real(node)
    monkeypatch.setattr(fonnx, "base_name", fails_once)
    fonnx._name_nodes(model, names, None, [Thread(100)])
    assert id(odd) not in names and len(names) == len(nodes) - 1
    monkeypatch.setattr(fonnx, "base_name", real)

    made = []
    real_name_nodes = fonnx._name_nodes

    def spy(model, names, pending, external):  # the whole model named, as if the thread ran
        real_name_nodes(model, names, pending, [*external, Thread(10**6)])
        made.append(len(names))
    monkeypatch.setattr(fonnx, "_name_nodes", spy)
    g1 = from_onnx(path)
    assert made and made[0] == len(nodes)
    monkeypatch.setattr(fonnx, "_name_nodes", lambda *a: None)
    g2 = from_onnx(path)
    assert print_ir(g1) == print_ir(g2) and list(g1.params) == list(g2.params)


def _external_copy(src, folder, **save):
    """`src` re-saved by onnx with every initializer as external data, into `folder`."""
    folder.mkdir()
    onnx.save_model(onnx.load(str(src)), str(folder / "m.onnx"), save_as_external_data=True,
                    size_threshold=0, **save)
    return folder / "m.onnx"


@pytest.mark.parametrize("case", ["dynamo", "one_file", "file_per_tensor"])
def test_external_data_read_by_the_thread_equals_onnx_reading(case, exports, tmp_path):
    """begin_external reads the float32 external initializers (torch's dynamo exporter: all
    of them, in one .data file; onnx's writer: one file, or one file per tensor) into one
    buffer: each tensor's bytes equal onnx's own reading, on a 64-byte boundary, writable;
    the import's weights are those arrays, and its graph is the one of the TorchScript
    export with inline weights."""
    import numpy as np
    from onnx import numpy_helper

    from snnc.compiler.compare import explain_difference
    from snnc.compiler.frontends import onnx_wire

    if case == "dynamo":
        path = exports("mobilenetv2", "dynamo")
    else:
        path = _external_copy(exports("resnet20", "torchscript"), tmp_path / case,
                              all_tensors_to_one_file=case == "one_file",
                              **({"location": "m.data"} if case == "one_file" else {}))
    model = onnx.load_model(str(path), load_external_data=False)
    full = onnx.load_model(str(path))
    places = onnx_check.check_external(model, path.parent, str(path))
    pending = onnx_wire.begin_external(model, path.parent, places)
    assert pending is not None and pending.wait() and pending.finite
    inits = model.graph.initializer
    external = [i for i, t in enumerate(inits) if t.data_location == TensorProto.EXTERNAL
                and t.data_type == TensorProto.FLOAT and math.prod(t.dims)]
    assert len(external) > 20 and sorted(pending.split) == external
    files = {onnx_check.external_place(inits[i])[0] for i in external}
    assert (len(files) == 1) == (case != "file_per_tensor")
    for i in external:
        got = pending.split[i]
        want = numpy_helper.to_array(full.graph.initializer[i])
        assert got.tobytes() == want.tobytes(), inits[i].name
        assert got.ctypes.data % 64 == 0 and got.flags.writeable
    g = from_onnx(path)
    if case != "dynamo":
        assert explain_difference(g, from_onnx(exports("resnet20", "torchscript"))) is None
    weights = [v for k, v in g.params.items() if k.endswith(".weight")]
    assert weights and all(w.data_ptr() % 64 == 0 for w in weights)
    assert np.isfinite(np.concatenate([w.numpy().ravel() for w in weights])).all()


def test_external_data_in_overlapping_places_goes_the_ordinary_way(exports, tmp_path):
    """Two tensors whose external data overlap (a hand-edited file) are not read into one
    buffer (begin_external answers None): the import reads each where it says, as onnx
    does."""
    import numpy as np
    from onnx import numpy_helper

    from snnc.compiler.frontends import onnx_wire

    path = _external_copy(exports("resnet20", "torchscript"), tmp_path / "ext",
                          location="m.data")
    m = onnx.load_model(str(path), load_external_data=False)
    by_dims: dict = {}
    for t in m.graph.initializer:
        by_dims.setdefault(tuple(t.dims), []).append(t)
    a, b = next(ts for dims, ts in by_dims.items() if len(ts) > 1 and math.prod(dims) > 64)[:2]
    b.ClearField("external_data")
    b.external_data.extend(a.external_data)  # b now reads a's bytes
    onnx.save_model(m, str(path))
    assert onnx_wire.begin_external(m, path.parent,
                                    onnx_check.check_external(m, path.parent, "m")) is None
    _, consts = load_model(path)
    full = {t.name: numpy_helper.to_array(t) for t in onnx.load_model(str(path)).graph.initializer}
    assert np.array_equal(consts[b.name], full[b.name])
    assert np.array_equal(consts[b.name], consts[a.name])


def test_non_finite_external_weight_is_refused_naming_it(exports, tmp_path):
    """The thread finds a NaN in the external data (PendingSplit.finite False): the import
    tests each tensor and refuses the file naming the tensor, as for inline weights."""
    import numpy as np

    path = _external_copy(exports("resnet20", "torchscript"), tmp_path / "ext",
                          location="m.data")
    m = onnx.load_model(str(path), load_external_data=False)
    t = next(t for t in m.graph.initializer if t.name.endswith("fc.weight"))
    offset = int(onnx_check.external_place(t)[1] or 0)
    with open(path.parent / "m.data", "r+b") as f:
        f.seek(offset + 4 * 7)
        f.write(np.float32("nan").tobytes())
    with pytest.raises(ImportFailed, match=r"tensor '.*fc\.weight'.*1 NaN"):
        load_model(path)


def test_a_failed_external_read_is_read_again_the_ordinary_way(exports, tmp_path,
                                                                 monkeypatch):
    """Should the external data's read come up short (the file changed after its check),
    the import reads each tensor the ordinary way (np.fromfile): the same weights."""
    import numpy as np

    path = exports("mobilenetv2", "dynamo")
    _, want = load_model(path)
    calls = _short_external_reads(monkeypatch)
    _, got = load_model(path)
    assert calls and got.keys() == want.keys()
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_each_external_file_is_checked_once_and_named_by_its_first_tensor(exports, tmp_path):
    """check_external resolves each data file once; a missing second file is reported naming
    the first tensor that keeps its data there, as the check of each tensor did."""
    path = _external_copy(exports("resnet20", "torchscript"), tmp_path / "ext",
                          location="m.data")
    m = onnx.load_model(str(path), load_external_data=False)
    moved = [t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL][5:]
    for t in moved:
        for e in t.external_data:
            if e.key == "location":
                e.value = "gone.data"
    onnx.save_model(m, str(path))
    with pytest.raises(ImportFailed, match=rf"tensor '{moved[0].name}' keeps its data at "
                                           r"'gone\.data', which does not exist"):
        load_model(path)


def test_a_model_beside_its_data_file_is_parsed_not_walked(exports, tmp_path):
    """`_walked`: torch's dynamo exporter writes the weights to `<file>.data` beside the
    model, which then holds the structure only: protobuf parses it (no walk); a model with
    its weights inline is walked. Both ways give the same model (test_same_as_onnx_load_then
    _split) and the same import."""
    from snnc.compiler.compare import explain_difference
    from snnc.compiler.frontends.onnx import _walked

    dyn = exports("mobilenetv2", "dynamo")
    assert dyn.with_name(dyn.name + ".data").is_file() and not _walked(dyn)
    ts = exports("resnet20", "torchscript")
    assert _walked(ts)
    copy = _external_copy(ts, tmp_path / "beside", location="m.onnx.data")
    assert not _walked(copy)
    assert explain_difference(from_onnx(copy), from_onnx(ts)) is None


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_shape_facts_of_the_onnx_import_are_its_shape_rules(exporter, exports):
    """The conversion leaves each node's shape fact (the node, the shapes its rule read) for
    the verifier (compiler/core/verify.py): every fact is that node's rule on those shapes,
    read from the graph's own values, and the graph verified with the facts is the one
    verified without them; a node whose shape is then broken is still found."""
    import dataclasses

    from snnc.compiler.core.ir import deferred_verify
    from snnc.compiler.core.shapes import infer_shape
    from snnc.compiler.core.verify import verify

    with deferred_verify():
        g = from_onnx(exports("densenet121", exporter))
    facts = g._index["facts"]
    ins = g._idx()["ins"]
    assert len(facts) == sum(n.op != "input" for n in g.nodes)
    for n in g.nodes:
        if n.op == "input":
            continue
        node, given = facts[n.name]
        assert node is n and given == [tuple(g.node(e.src).shape) for e in ins[n.name]]
        assert infer_shape(n, given) == n.shape
    scratch = dataclasses.replace(g)
    assert "facts" not in scratch._index
    assert verify(g) == verify(scratch)
    with deferred_verify():
        g = from_onnx(exports("densenet121", exporter))
    b = g.edit()
    victim = next(n for n in g.nodes if n.op == "relu")
    b.replace_node(dataclasses.replace(victim, shape=(*victim.shape[:-1], victim.shape[-1] + 1)))
    with pytest.raises(VerifyError, match=f"node '{victim.name}' \\(op relu\\) records shape"):
        verify(b.build(check=False))
