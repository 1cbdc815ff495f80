"""Users' own data files: ``.npz`` arrays and ImageFolder-style directories of images
(docs/pytorch-backend.md "Data").

* ``.npz``: keys ``x_train``/``y_train``/``x_test``/``y_test``, or ``x``/``y`` (one split, served
  for whichever split is asked), or any names given with :class:`DataSpec` ``keys``
  (``--keys x_tr,y_tr,x_te,y_te`` or ``--keys images,labels``). Never unpickled
  (``allow_pickle=False``).
* ImageFolder: ``DIR/<class>/<image>`` (one split) or ``DIR/train/<class>/...`` and
  ``DIR/test/<class>/...``; classes in sorted order, as torchvision's ImageFolder numbers them.

Scaling follows the dtype: ``uint8`` is divided by 255, floats are kept as they are (a float
image in [0, 1] stays in [0, 1]), ``bool`` becomes 0/1; other integer types are refused (say how
to scale them). Layout: ``[N, H, W]`` gets a channel; ``[N, C, H, W]`` and ``[N, H, W, C]``
are told apart by which axis holds 1-4 channels (the smaller if both could), and ``layout``
(``--layout NCHW|NHWC``) decides where that is ambiguous or wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.compiler.core.dataspec import LAYOUTS, DataSpec
from snnc.compiler.core.errors import SnncError

__all__ = ["DataSpec", "LAYOUTS", "read_npz", "read_image_folder", "is_image_folder",
           "to_nchw", "scale", "normalize"]
CHANNELS = (1, 2, 3, 4)  # grey, events (on/off), RGB, RGBA
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


def read_npz(path: Path, split: str, keys: tuple[str, ...] | None) -> tuple[np.ndarray, ...]:
    """(x, y) of `split` from the npz at `path`, named by `keys` or by the conventions above."""
    with np.load(path, allow_pickle=False) as z:
        have = list(z.files)
        if keys is None:
            if {"x_train", "y_train", "x_test", "y_test"} <= set(have):
                keys = ("x_train", "y_train", "x_test", "y_test")
            elif {"x", "y"} <= set(have):
                keys = ("x", "y")
            else:
                raise SnncError(f"{path}: no arrays named x/y or x_train/y_train/x_test/y_test "
                                f"(it has {', '.join(have) or 'none'}). Name yours with --keys "
                                f"IMAGES,LABELS or --keys XTR,YTR,XTE,YTE.")
        if len(keys) == 4:
            keys = keys[:2] if split == "train" else keys[2:]
        missing = [k for k in keys if k not in have]
        if missing:
            raise SnncError(f"{path}: no array named {', '.join(missing)} (it has "
                            f"{', '.join(have)}). Fix --keys.")
        try:
            x, y = z[keys[0]], z[keys[1]]
        except ValueError as err:  # object arrays: they would need pickle
            raise SnncError(f"{path}: array {keys[0]} or {keys[1]} holds Python objects, which "
                            f"snnc never unpickles ({err}). Save plain numeric arrays.") from None
    if x.ndim < 2 or len(x) != len(y) or y.ndim != 1:
        raise SnncError(f"{path}: images {keys[0]} {list(x.shape)} and labels {keys[1]} "
                        f"{list(y.shape)} do not match: want [N, ...] images and [N] labels.")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SnncError(f"{path}: labels {keys[1]} are {y.dtype}, not integer class ids.")
    return x, y


def read_image_folder(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 [N, H, W, C], y) from an ImageFolder directory (train/test sub-folders if any)."""
    from PIL import Image

    base = root / split if (root / "train").is_dir() and (root / "test").is_dir() else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    xs, ys, size = [], [], None
    for label, cls in enumerate(classes):
        for f in sorted((base / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            with Image.open(f) as im:
                a = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB"))
            if size is None:
                size = a.shape
            elif a.shape != size:
                raise SnncError(f"{f}: image of shape {list(a.shape)}, but {list(size)} before "
                                f"it; resize the images to one size first.")
            xs.append(a if a.ndim == 3 else a[..., None])
            ys.append(label)
    if not xs:
        raise SnncError(f"{base}: no images in class sub-folders (want {base}/<class>/<image>"
                        f" with one of {', '.join(IMAGE_SUFFIXES)}).")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def is_image_folder(p: Path) -> bool:
    """True when `p` looks like an ImageFolder directory (class sub-folders holding images)."""
    base = p / "train" if (p / "train").is_dir() else p
    for sub in base.iterdir():
        if sub.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir()):
            return True
    return False


def to_nchw(x: np.ndarray, layout: str | None, where: str) -> np.ndarray:
    """`x` as [N, C, H, W] (or [N, T, 2, H, W] events and [N, F] features, untouched): a channel
    added to [N, H, W];
    NCHW vs NHWC from `layout` or from which axis holds 1-4 channels."""
    if x.ndim == 2:  # [N, F] feature vectors (an MLP's input): kept
        return x
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        if x.ndim == 5:
            return x
        raise SnncError(f"{where}: images of shape {list(x.shape)}; want [N, H, W], "
                        f"[N, C, H, W] or [N, H, W, C].")
    if layout is None:
        c1, c3 = x.shape[1], x.shape[3]
        first, last = c1 in CHANNELS, c3 in CHANNELS
        if first and last and c1 != c3:  # e.g. [N, 1, 2, 2]: the smaller axis is the channel
            first, last = c1 < c3, c3 < c1
        if first == last:
            raise SnncError(f"{where}: cannot tell the channel axis of images "
                            f"{list(x.shape)}; say --layout NCHW or --layout NHWC.")
        layout = "NCHW" if first else "NHWC"
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout.upper() == "NHWC" else x


def scale(x: np.ndarray, where: str) -> np.ndarray:
    """Float32 images: uint8 / 255, floats kept, bool 0/1; other integers refused."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        out = x.astype(np.float32)
        if not np.isfinite(out).all():
            raise SnncError(f"{where}: images hold NaN or Inf values.")
        return out
    raise SnncError(f"{where}: images of dtype {x.dtype}: snnc reads uint8 (divided by 255) or "
                    f"float images (kept as they are). Convert yours to one of those.")


def normalize(x, mean, std, where: str):
    """(x - mean) / std per channel (torch tensor [N, C, ...])."""
    import torch

    c = x.shape[1]
    m, s = (torch.tensor(v, dtype=x.dtype) for v in (mean, std))
    if len(m) not in (1, c) or len(s) not in (1, c):
        raise SnncError(f"{where}: --mean/--std give {len(m)}/{len(s)} values for {c} "
                        f"channels; give one per channel or one for all.")
    view = (1, -1) + (1,) * (x.dim() - 2)
    return (x - m.view(view)) / s.view(view)
