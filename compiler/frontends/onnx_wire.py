"""Read an .onnx file with its weights' bytes read once, straight into aligned arrays.

`onnx.load_model` reads the file (one copy), protobuf parses it (a second copy of every
weight), `split_weights` takes each weight's `raw_data` out (a third: protobuf hands out a new
`bytes`) and the IR's tensors need writable memory (a fourth). `read_split` instead walks the
protobuf wire format of the file (mapped read-only, not copied) down to each
`graph.initializer[i].raw_data`, reads those bytes from the file straight into a new numpy
buffer (one copy, 64-byte aligned) and lets protobuf parse only the rest: the model's
structure, the same message less those fields. Its result is what `split_weights` returns
after `onnx.load_model` (the initializers whose data it splits off have no `raw_data`, the
others keep theirs), with the split data as arrays instead of bytes.

Only the plain case is taken this way: anything unusual in the wire format (a field given
twice where protobuf would merge or override it, groups, a length past the end) returns None,
and the caller reads the file the ordinary way, which parses or refuses it exactly as before.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import onnx

from snnc.compiler.frontends.onnx_check import splits

_LEN = 2  # wire type of length-delimited fields (messages, bytes, packed repeated)
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9  # onnx.proto field numbers


class _Unusual(Exception):
    """The file is not in the plain form `read_split` handles: read it the ordinary way."""


def _varint(buf, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise _Unusual
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf, i: int, end: int):
    """(field number, wire type, start of the key, start of the value, end of the value) of
    each field of the message in buf[i:end]."""
    while i < end:
        start = i
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, j = _varint(buf, i, end)
        elif wire == 1:
            j = i + 8
        elif wire == 5:
            j = i + 4
        elif wire == _LEN:
            n, i = _varint(buf, i, end)
            j = i + n
        else:  # groups (3, 4) and invalid wire types
            raise _Unusual
        if j > end or field == 0:
            raise _Unusual
        yield field, wire, start, i, j
        i = j


def _strip(buf, spans: list[tuple[int, int]]) -> bytes:
    """The model message in `buf` without the raw_data of graph.initializer; appends each
    initializer's (start, end) of raw_data (or None) to `spans`, in order."""
    out: list[bytes] = []
    graphs = 0
    for field, wire, key, start, end in _fields(buf, 0, len(buf)):
        if field != _MODEL_GRAPH or wire != _LEN:
            out.append(buf[key:end])
            continue
        graphs += 1
        if graphs > 1:  # protobuf merges repeated message fields: not the plain case
            raise _Unusual
        body = _strip_graph(buf, start, end, spans)
        out.append(_key(buf, key) + _encode_varint(len(body)) + body)
    return b"".join(out)


def _strip_graph(buf, i: int, end: int, spans: list) -> bytes:
    """The graph message in buf[i:end] less its initializers' raw_data (see `_strip`).

    A graph has a field per node, input, output and initializer (densenet121: ~1,100): the
    walk reads one-byte keys and lengths inline (`_varint` for longer ones) and copies the
    bytes between two initializers as one slice, instead of a generator step, two calls and
    a slice per field. What it accepts and refuses is `_fields`' (tests/frontends/
    test_onnx_wire.py)."""
    parts: list[bytes] = []
    run = i  # start of the bytes kept as they are
    while i < end:
        start = i
        k = buf[i]
        if k < 0x80:
            i += 1
        else:
            k, i = _varint(buf, i, end)
        wire = k & 7
        if wire == _LEN:
            if i >= end:
                raise _Unusual
            n = buf[i]
            if n < 0x80:
                i += 1
            elif i + 1 < end and buf[i + 1] < 0x80:  # two bytes: a node's usual length
                n = (n & 0x7F) | buf[i + 1] << 7
                i += 2
            else:
                n, i = _varint(buf, i, end)
            j = i + n
        elif wire == 0:
            _, j = _varint(buf, i, end)
        elif wire == 1:
            j = i + 8
        elif wire == 5:
            j = i + 4
        else:  # groups (3, 4) and invalid wire types
            raise _Unusual
        if j > end or k >> 3 == 0:
            raise _Unusual
        if k >> 3 == _GRAPH_INITIALIZER and wire == _LEN:
            tensor: list[bytes] = []
            raw = None
            for tf, tw, tkey, tstart, tend in _fields(buf, i, j):
                if tf == _TENSOR_RAW_DATA:
                    if raw is not None or tw != _LEN:  # the last one would win: not plain
                        raise _Unusual
                    raw = (tstart, tend)
                else:
                    tensor.append(buf[tkey:tend])
            spans.append(raw)
            if raw is None:  # nothing to take out: the field stays in the run
                i = j
                continue
            body = b"".join(tensor)
            parts += (buf[run:start], _key(buf, start), _encode_varint(len(body)), body)
            run = j
        i = j
    parts.append(buf[run:end])
    return b"".join(parts)


def _key(buf, i: int) -> bytes:
    """The bytes of the varint key starting at buf[i]."""
    _, j = _varint(buf, i, len(buf))
    return bytes(buf[i:j])


def read_split(path: Path) -> tuple[onnx.ModelProto, dict[int, np.ndarray]] | None:
    """(model less the split weights' data, {initializer index: that data as a uint8 array}),
    as `onnx.load_model(path, load_external_data=False)` then `split_weights` would give; None
    when the file is not in the plain form handled here (see the module doc)."""
    spans: list = []
    with open(path, "rb", buffering=0) as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                structure = _strip(buf, spans)
        except (_Unusual, ValueError, OSError):
            return None
        model = onnx.ModelProto()
        try:
            model.ParseFromString(structure)
        except Exception:  # the ordinary read refuses it, naming the error
            return None
        inits = model.graph.initializer
        if len(inits) != len(spans):
            return None
        # One buffer for all: one allocation (huge pages where the kernel gives them: a
        # page fault per 2 MiB instead of per 4 KiB), each tensor on a 64-byte boundary.
        offsets, size = [], 0
        for span in spans:
            offsets.append(size)
            if span is not None:
                size += -(-(span[1] - span[0]) // 64) * 64
        block = np.empty(size + 64, dtype=np.uint8)
        block = block[-block.ctypes.data % 64:][:size]
        split: dict[int, np.ndarray] = {}
        for i, (t, span, at) in enumerate(zip(inits, spans, offsets)):
            if span is None:
                continue
            start, end = span
            data = block[at:at + end - start]
            f.seek(start)
            if f.readinto(memoryview(data)) != end - start:
                return None
            if splits(t):
                split[i] = data
            else:  # shape data and the like: kept in the model, as split_weights does
                t.raw_data = data.tobytes()
    return model, split
