"""Read an .onnx file with its weights' bytes read once, straight into aligned arrays.

`onnx.load_model` reads the file (one copy), protobuf parses it (a second copy of every
weight), `split_weights` takes each weight's `raw_data` out (a third: protobuf hands out a new
`bytes`) and the IR's tensors need writable memory (a fourth). `read_split` instead walks the
protobuf wire format of the file down to each `graph.initializer[i].raw_data` (reading in,
with `os.pread` as it goes, every byte but those values: `_Image`), reads those bytes from
the file straight into a new numpy buffer (one copy, 64-byte aligned) and lets protobuf
parse only the rest: the model's structure, the same message less those fields. Its result
is what `split_weights` returns after `onnx.load_model` (the initializers whose data it
splits off have no `raw_data`, the others keep theirs), with the split data as arrays
instead of bytes.

Only the plain case is taken this way: anything unusual in the wire format (a field given
twice where protobuf would merge or override it, groups, a length past the end) returns None,
and the caller reads the file the ordinary way, which parses or refuses it exactly as before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import onnx

from snnc.compiler.core import arenas
from snnc.compiler.frontends.onnx_check import all_finite, splits

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
    """Protobuf's varint of `value` (an int32/int64: a negative one as its 64-bit two's
    complement)."""
    if 0 <= value < 128:
        return _SMALL[value]
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(128)]  # the one-byte varints


def _field(key: int, body: bytes) -> bytes:
    """A length-delimited field: its one-byte `key`, the length of `body`, `body`."""
    n = len(body)
    return b"".join((_SMALL[key], _SMALL[n] if n < 128 else _encode_varint(n), body))


def typed_inputs(tensors: list[onnx.TensorProto]) -> bytes | None:
    """The GraphProto wire bytes of what `onnx_check._typed_input` appends for each of
    `tensors` (their `input` fields: merged into a graph, they append the same
    ValueInfoProtos), or None when a name is not text (protobuf hands out bytes for a name
    that is not UTF-8, which `_typed_input` refuses, as it always did). Written here and
    parsed by protobuf in one call: densenet121's 182 weights ~0.3 ms, instead of ~0.7 ms
    of messages built field by field (and freed)."""
    dim_fields: dict[int, bytes] = {}  # a dim's value -> its TensorShapeProto.dim field
    out = []
    for t in tensors:
        name = t.name
        if type(name) is not str:
            return None
        parts = []
        for d in t.dims:
            f = dim_fields.get(d)
            if f is None:
                f = dim_fields[d] = _field(_DIM, _VARINT_1 + _encode_varint(d))
            parts.append(f)
        tensor = b"".join((_VARINT_1, _encode_varint(t.data_type),
                           _field(_SHAPE, b"".join(parts))))
        info = b"".join((_field(_NAME, name.encode()), _field(_TYPE, _field(_TENSOR, tensor))))
        out.append(_field(_GRAPH_INPUT, info))
    return b"".join(out)


# the keys `typed_inputs` writes (field number << 3 | wire type): GraphProto.input 11,
# ValueInfoProto.name 1 and .type 2, TypeProto.tensor_type 1, TypeProto.Tensor.shape 2,
# TensorShapeProto.dim 1 (length-delimited), TypeProto.Tensor.elem_type 1 and
# Dimension.dim_value 1 (varints, 0x08)
_GRAPH_INPUT, _NAME, _TYPE, _TENSOR, _SHAPE, _DIM = (11 << 3 | 2, 1 << 3 | 2, 2 << 3 | 2,
                                                     1 << 3 | 2, 2 << 3 | 2, 1 << 3 | 2)
_VARINT_1 = bytes((1 << 3 | 0,))


def _fields(buf, i: int, end: int, img: _Image | None = None):
    """(key, start of the key, start of the value, end of the value) of each field of the
    message in buf[i:end] (the key is field number << 3 | wire type); `img`: the file image
    `buf` views, whose key and length bytes are read in as the walk reaches them (the value's
    are the caller's). Raises _Unusual past the end, for field number 0, groups and invalid
    wire types. One-byte keys, and lengths and varint values of one or two bytes (a graph's
    keys, its lengths, a tensor's dims) are read inline: the walk steps over ~1,100 graph
    fields and ~3,000 tensor fields on densenet121."""
    while i < end:
        if img is not None and i + _HEAD > img.hi:
            img.need(i + _HEAD)
        start = i
        key = buf[i]
        if key < 0x80:
            i += 1
        else:
            key, i = _varint(buf, i, end)
        wire = key & 7
        if wire == _LEN:
            if i < end and buf[i] < 0x80:
                j = i + 1 + buf[i]
                i += 1
            elif i + 1 < end and buf[i + 1] < 0x80:  # two bytes: lengths up to 16,383
                j = i + 2 + ((buf[i] & 0x7F) | buf[i + 1] << 7)
                i += 2
            else:
                n, i = _varint(buf, i, end)
                j = i + n
        elif wire == 0:  # a varint value, stepped over: one or two bytes inline
            if i < end and buf[i] < 0x80:
                j = i + 1
            elif i + 1 < end and buf[i + 1] < 0x80:
                j = i + 2
            else:
                _, j = _varint(buf, i, end)
        elif wire == 1:
            j = i + 8
        elif wire == 5:
            j = i + 4
        else:  # groups (3, 4) and invalid wire types
            raise _Unusual
        if j > end or key < 8:  # past the end, or field number 0
            raise _Unusual
        yield key, start, i, j
        i = j


def _strip(buf, spans: list[tuple[int, int]], img: _Image | None = None) -> bytes:
    """The model message in `buf` without the raw_data of graph.initializer; appends each
    initializer's (start, end) of raw_data (or None) to `spans`, in order. `img`: the file
    image that `buf` views (`_Image`), read in as the walk goes; None: `buf` holds the file."""
    if img is None:
        img = _Image.whole(buf)
    out: list[bytes] = []
    graphs = 0
    for fkey, key, start, end in _fields(buf, 0, len(buf), img):
        if fkey != _GRAPH_KEY:
            if end > img.hi:
                img.need(end)
            out.append(buf[key:end])
            continue
        graphs += 1
        if graphs > 1:  # protobuf merges repeated message fields: not the plain case
            raise _Unusual
        body = _strip_graph(buf, start, end, spans, img)
        out.append(_key(buf, key) + _encode_varint(len(body)) + body)
    return b"".join(out)


def _strip_graph(buf, i: int, end: int, spans: list, img: _Image) -> bytes:
    """The graph message in buf[i:end] less its initializers' raw_data (see `_strip`).

    A graph has a field per node, input, output and initializer (densenet121: ~1,100): the
    bytes between two initializers are copied as one slice, not one slice per field."""
    parts: list[bytes] = []
    run = i  # start of the bytes kept as they are
    for key, start, i, j in _fields(buf, i, end, img):
        if key == _INITIALIZER_KEY:
            raw = _raw_span(buf, i, j, img)
            spans.append(None if raw is None else raw[1:])
            if raw is not None:  # else nothing to take out: the field stays in the run
                body = b"".join((buf[i:raw[0]], buf[raw[2]:j]))  # its other fields, in order
                parts += (buf[run:start], _key(buf, start), _encode_varint(len(body)), body)
                run = j
        elif j > img.hi:  # a field kept as it is: all its bytes
            img.need(j)
    parts.append(buf[run:end])
    return b"".join(parts)


_INITIALIZER_KEY = _GRAPH_INITIALIZER << 3 | _LEN
_GRAPH_KEY = _MODEL_GRAPH << 3 | _LEN


def _raw_span(buf, i: int, end: int, img: _Image) -> tuple[int, int, int] | None:
    """(start of its key, start, end) of the raw_data of the tensor message in buf[i:end], or
    None when it has none; raises _Unusual as `_fields` does, or when raw_data is given twice
    or not as bytes. Of the file image `img`, every byte of the tensor but raw_data's value
    is read in."""
    raw = None
    for key, start, i, j in _fields(buf, i, end, img):
        if key >> 3 == _TENSOR_RAW_DATA:
            if raw is not None or key & 7 != _LEN:  # the last one would win: not plain
                raise _Unusual
            raw = (start, i, j)
            img.skip(j)  # the weight's bytes: the thread reads them
        elif j > img.hi:
            img.need(j)
    return raw


_HEAD = 20  # bytes a field's key and length (or varint value) can take: 10 + 10


class _Image:
    """The file as the walk reads it: a buffer the file's size, filled with `os.pread` in
    file order up to `hi` as the walk reaches each field (`need`), except the weights' values
    it steps over (`skip`); pages never read are never touched. A fresh `mmap` of the file
    cost more than the walk itself (densenet121: a page fault per tensor header, ~1.3 ms, and
    ~0.4 ms to unmap); the reads (one per tensor header, ~10 for the nodes) cost ~0.3 ms.
    The walk only moves forward, so everything below `hi` it still reads has been read in.

    `of_file`'s buffer (`view.obj`) is 64 bytes longer than the file, for alignment: once the
    walk is done, `begin_split` reads the weights into it (`_weight_block`)."""

    __slots__ = ("fd", "size", "view", "hi", "chunk")

    def __init__(self, fd: int | None, view: memoryview, hi: int):
        self.fd, self.view, self.size, self.hi = fd, view, len(view), hi
        self.chunk = _CHUNK_MIN

    @classmethod
    def whole(cls, buf) -> "_Image":
        """`buf` holds the whole file: nothing to read."""
        return cls(None, memoryview(buf), len(buf))

    @classmethod
    def of_file(cls, fd: int) -> "_Image":
        size = os.fstat(fd).st_size
        return cls(fd, memoryview(np.empty(size + 64, dtype=np.uint8))[:size], 0)

    def need(self, end: int) -> None:
        """Read in the file up to `end`, and some bytes beyond: _CHUNK_MIN after a `skip` (a
        tensor's header), twice as many at each read in a row (the nodes: ~10 reads)."""
        start = self.hi
        stop = min(self.size, max(end, start + self.chunk))
        self.chunk = min(2 * self.chunk, _CHUNK_MAX)
        if stop <= start:
            return
        if _pread_into(self.fd, self.view[start:stop], start) != stop - start:
            raise _Unusual  # the file shrank under the walk: read it the ordinary way
        self.hi = stop

    def skip(self, end: int) -> None:
        """Step over the bytes up to `end` without reading them."""
        if end > self.hi:
            self.hi = end
            self.chunk = _CHUNK_MIN


_CHUNK_MIN, _CHUNK_MAX = 256, 1 << 16  # bytes `_Image.need` reads beyond what it must


def _weight_block(image: np.ndarray, size: int) -> np.ndarray:
    """`size` bytes starting on a 64-byte boundary, for the weights: in `image`, the walk's
    buffer, when they fit there and fill at least half of it, else in a new buffer.

    The walk wrote the structure's bytes into pages of `image` spread over the whole file
    (numpy asks the kernel for 2 MB pages for a buffer this large), so the kernel has
    already cleared and mapped them; the weights read into a second buffer of the file's
    size made it clear as much memory again (densenet121: 32 MB; with one buffer the first
    `snnc cost` in a process 76-137 -> 68-80 ms, repeated ones 0-1.2 ms less). Half: a file
    whose bytes are mostly not split weights (integer tensors, a small file beside external
    data) does not keep its image alive for a small block. Weights whose 64-byte padding
    makes them longer than the file (many small tensors) get a new buffer."""
    if not size * 2 >= image.size - 64 >= size:
        return _aligned(size)
    return image[-image.ctypes.data % 64:][:size]


def _aligned(size: int) -> np.ndarray:
    """A new buffer of `size` bytes starting on a 64-byte boundary."""
    buf = np.empty(size + 64, dtype=np.uint8)
    return buf[-buf.ctypes.data % 64:][:size]


def _key(buf, i: int) -> bytes:
    """The bytes of the varint key starting at buf[i]."""
    _, j = _varint(buf, i, len(buf))
    return bytes(buf[i:j])


def read_split(path: Path) -> tuple[onnx.ModelProto, dict[int, np.ndarray]] | None:
    """(model less the split weights' data, {initializer index: that data as a uint8 array}),
    as `onnx.load_model(path, load_external_data=False)` then `split_weights` would give; None
    when the file is not in the plain form handled here (see the module doc)."""
    pending = begin_split(path)
    if pending is None or not pending.wait():
        return None
    return pending.model, pending.split


class PendingSplit:
    """`begin_split`'s result: the model (its structure, and the small initializers' data)
    and the split weights' arrays, whose bytes a helper thread is still reading: call
    `wait()` (True: every byte read; False: the file changed under the read, read it the
    ordinary way) before anything reads them. After a successful wait, `finite` is True when
    the thread also found every split weight finite (all float32: one `np.isfinite` pass over
    the buffer, its padding zeroed), so step 4 need not test them one by one; False when it
    did not look or found a NaN/Inf (step 4 then finds and names the tensor)."""

    def __init__(self, model: onnx.ModelProto, split: dict[int, np.ndarray],
                 thread: threading.Thread | None, done: list[bool]):
        self.model, self.split = model, split
        self._thread, self._done = thread, done

    def running(self) -> bool:
        """Whether the helper thread still reads or tests."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> bool:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._done[0]

    @property
    def finite(self) -> bool:
        return self.wait() and self._done[1]


def begin_split(path: Path) -> PendingSplit | None:
    """Start `read_split`: walk the file's structure and parse it here, read the small
    initializers' data here (shape arithmetic needs it before onnx's checks), and leave the
    weights' bytes (32 MB for densenet121, ~5 ms) to a helper thread, which reads them
    straight into their aligned arrays with one `os.preadv` per run of tensors, the GIL
    released meanwhile, while this thread checks the structure (docs/frontends.md step 3).
    None when the file is not in the plain form handled here, or when the platform has no
    `os.pread` (Windows): the ordinary read then serves."""
    if not hasattr(os, "pread"):
        return None
    spans: list = []
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    handed = False
    try:
        try:
            img = _Image.of_file(fd)
            if not img.size:  # as mmap refused an empty file: the ordinary read decides
                return None
            structure = _strip(img.view, spans, img)
        except (_Unusual, ValueError, OSError):
            return None
        image, img = img.view.obj, None  # the weights are read into the image's pages
        model = onnx.ModelProto()
        try:
            model.ParseFromString(structure)
        except Exception:  # the ordinary read refuses it, naming the error
            return None
        inits = model.graph.initializer
        if len(inits) != len(spans):
            return None
        # One buffer for all: one allocation, each tensor on a 64-byte boundary.
        reads: list[tuple[int, memoryview]] = []
        split: dict[int, np.ndarray] = {}
        taken = [span is not None and splits(t) for t, span in zip(inits, spans)]
        wanted = [(i, span) for i, span in enumerate(spans) if taken[i]]
        size = sum(-(-(end - start) // 64) * 64 for _, (start, end) in wanted)
        block = _weight_block(image, size)
        arenas.hold(block)
        image = None  # when the block is a new buffer, the image's pages are freed here
        at = 0
        f32 = all(inits[i].data_type == onnx.TensorProto.FLOAT for i, _ in wanted)
        for i, (start, end) in wanted:
            n, pad = end - start, -(end - start) % 64
            data = block[at:at + n]
            if f32 and pad:
                block[at + n:at + n + pad] = 0  # the padding: finite for the thread's check
            at += n + pad
            split[i] = data
            reads.append((start, memoryview(data)))
        for t, span, take in zip(inits, spans, taken):  # shape data and the like: kept in
            if span is not None and not take:  # the model, as split_weights does
                raw = os.pread(fd, span[1] - span[0], span[0])
                if len(raw) != span[1] - span[0]:
                    return None
                t.raw_data = raw
        done = [False, False]
        thread = None
        if reads:
            check = block.view(np.float32) if f32 else None
            thread = threading.Thread(target=_read_runs, args=(fd, reads, done, check),
                                      name="snnc-onnx-weights", daemon=True)
            thread.start()
            handed = True  # the thread closes fd
        else:
            done[0] = True
        return PendingSplit(model, split, thread, done)
    finally:
        if not handed:
            os.close(fd)


def begin_external(model: onnx.ModelProto, folder: Path,
                   places: dict[int, tuple[str, int, int]]) -> PendingSplit | None:
    """Start reading the external data of `model`'s float32 initializers at their `places`
    ({initializer index: (location, offset, length)}, as `check_external` checked and
    returned them) as `begin_split` reads inline weights: into one buffer, each
    tensor on a 64-byte boundary, by a helper thread (one `os.preadv` per run of tensors of
    each file), which then tests the buffer for NaN/Inf, while this thread checks the
    structure. torch's dynamo exporter, the default one, writes every initializer to one
    data file (densenet121: 423 tensors, 32 MB): read one by one on this thread they took
    ~13 ms. The result's `split` maps initializer indices to their bytes; None when there is
    nothing to read this way or two tensors' data overlap in a file (the ordinary read then
    serves)."""
    if not hasattr(os, "pread"):
        return None
    files: dict[str, list[tuple[int, int, int]]] = {}  # location -> [(offset, length, index)]
    inits = model.graph.initializer
    for i, (loc, offset, length) in places.items():
        if length and inits[i].data_type == onnx.TensorProto.FLOAT:
            files.setdefault(loc, []).append((offset, length, i))
    if not files:
        return None
    block = _aligned(sum(-(-n // 64) * 64 for held in files.values() for _, n, _ in held))
    arenas.hold(block)
    split: dict[int, np.ndarray] = {}
    jobs: list[tuple[Path, list[tuple[int, memoryview]]]] = []
    at = 0
    for loc, held in files.items():
        held.sort()
        end, reads = 0, []
        for offset, n, i in held:
            if offset < end:  # overlapping data: not the plain case
                return None
            end = offset + n
            data = block[at:at + n]
            pad = -n % 64
            if pad:
                block[at + n:at + n + pad] = 0  # the padding: finite for the thread's check
            at += n + pad
            split[i] = data
            reads.append((offset, memoryview(data)))
        jobs.append((folder / loc, reads))
    done = [False, False]
    thread = threading.Thread(target=_read_files, args=(jobs, done, block.view(np.float32)),
                              name="snnc-onnx-external", daemon=True)
    thread.start()
    return PendingSplit(model, split, thread, done)


def _read_files(jobs: list[tuple[Path, list[tuple[int, memoryview]]]], done: list[bool],
                check: np.ndarray) -> None:
    """`begin_external`'s thread: each (file, reads) of `jobs` read as `_read_runs` reads
    one file, then done[0] = True; done[1] = True when `check` holds finite values only."""
    try:
        for path, reads in jobs:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                _read(fd, reads)
            finally:
                os.close(fd)
        done[0] = True
        done[1] = all_finite(check)
    except (OSError, _Short):
        return


_GAP_MAX = 1 << 16  # bytes between two tensors read (into a scratch buffer) rather than skipped
_IOV_MAX = 512  # buffers per preadv call (POSIX guarantees IOV_MAX >= 16; Linux has 1024)


def _read_runs(fd: int, reads: list[tuple[int, memoryview]], done: list[bool],
               check: np.ndarray | None = None) -> None:
    """Read each (file offset, buffer) of `reads` (in file order) from `fd`, then close it;
    done[0] = True when every byte was read, then done[1] = True when `check` (the float32
    view of the buffers, or None) holds finite values only. Runs of tensors separated by
    small gaps (each tensor's protobuf fields) are one `os.preadv` each, the gaps landing in a
    scratch buffer; without preadv, one read per tensor (`_pread_into`)."""
    try:
        _read(fd, reads)
        done[0] = True
        if check is not None:  # before the close, which would give the GIL up once more
            done[1] = all_finite(check)
    except (OSError, _Short):
        return
    finally:
        os.close(fd)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read `len(view)` bytes of `fd` at `offset` into `view` (os.preadv, straight in; without
    it, os.pread and a copy); the number of bytes read."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


class _Short(Exception):
    """A read came up short: the file changed under it."""


def _read(fd: int, reads: list[tuple[int, memoryview]]) -> None:
    """`_read_runs`' reading; raises _Short or OSError when a byte is missing."""
    if not hasattr(os, "preadv"):
        for offset, view in reads:
            if _pread_into(fd, view, offset) != len(view):
                raise _Short
        return
    scratch = memoryview(bytearray(_GAP_MAX))
    k = 0
    while k < len(reads):
        first, pos, bufs, want = reads[k][0], reads[k][0], [], 0
        while k < len(reads) and len(bufs) < _IOV_MAX - 1:
            offset, view = reads[k]
            gap = offset - pos  # >= 0: the spans are fields of one message, in order
            if gap > _GAP_MAX:
                break
            if gap:
                bufs.append(scratch[:gap])
            bufs.append(view)
            want += gap + len(view)
            pos = offset + len(view)
            k += 1
        if os.preadv(fd, bufs, first) != want:
            raise _Short
