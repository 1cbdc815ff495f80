"""Users' PyTorch data: a ``torch.utils.data.Dataset`` or ``DataLoader`` that yields ``(x, y)``
(docs/pytorch-backend.md "Data").

snnc materialises it once into arrays (as it holds its own datasets) so that shuffling, the
validation split, ``limit`` and the dtype/layout rules of :mod:`snnc.data.files` apply to it
exactly as to an ``.npz``: uint8 images are divided by 255, float images kept, [N, H, W, C]
detected. A Dataset is read in order (index 0, 1, ...); a DataLoader in the order it yields.
It is one split: it is served for whichever split is asked.
"""

from __future__ import annotations

import numpy as np
import torch

from snnc.compiler.core.errors import SnncError


def is_torch_data(obj) -> bool:
    """True for a torch Dataset / IterableDataset / DataLoader (not for a name or a DataSpec)."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    return isinstance(obj, (Dataset, IterableDataset, DataLoader))


def describe(obj) -> str:
    """A short name for messages and reports, e.g. 'TensorDataset (Python)'."""
    return f"{type(obj).__name__} (Python)"


def _array(v, what: str, where: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return np.asarray(v)
    raise SnncError(f"{where}: {what} is a {type(v).__name__}; yield tensors or numpy arrays "
                    f"(images) and integer class ids (labels) as (x, y).")


def materialise(obj, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, ...], labels [N]) as numpy arrays from a torch Dataset or DataLoader that
    yields (x, y) pairs (a DataLoader: batches; a Dataset: samples), at most `limit` samples."""
    from torch.utils.data import DataLoader

    where = describe(obj)
    loader = obj if isinstance(obj, DataLoader) else DataLoader(obj, batch_size=256)
    xs, ys, n = [], [], 0
    for item in loader:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise SnncError(f"{where}: yields {type(item).__name__}"
                            f"{f' of {len(item)}' if isinstance(item, (tuple, list)) else ''};"
                            f" snnc needs (x, y) pairs: images and integer class labels.")
        x, y = (_array(v, w, where) for v, w in zip(item, ("x", "y")))
        if x.ndim == 0 or y.ndim != 1 or len(x) != len(y):
            raise SnncError(f"{where}: a batch of images {list(x.shape)} with labels "
                            f"{list(y.shape)}; want [B, ...] images and [B] labels.")
        xs.append(x)
        ys.append(y)
        n += len(y)
        if limit is not None and n >= limit:
            break
    if not xs:
        raise SnncError(f"{where}: yielded no samples.")
    shapes = {a.shape[1:] for a in xs}
    if len(shapes) > 1:
        raise SnncError(f"{where}: images of different shapes {sorted(map(list, shapes))}; "
                        f"give one size (resize them first).")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SnncError(f"{where}: labels are {y.dtype}, not integer class ids.")
    return (x, y) if limit is None else (x[:limit], y[:limit])
