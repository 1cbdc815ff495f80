"""Activation statistics of an ANN-form graph on real data, for data-based normalisation.

Not a pass module (leading underscore): it registers no pass. `activation_scales` runs the
ANN-form IR (the interpreter's op semantics, docs/ir.md) on calibration images and returns, for
every node, the p-th percentile of its positive outputs: the "robust" normalisation factor of
Rueckauer et al. 2017 (sec. 2.3.1, p = 99.9; p = 100 is Diehl et al. 2015's maximum). The pass
`normalize` (passes/normalize.py) turns them into weights and thresholds (docs/passes.md
"Conversion").
"""

from __future__ import annotations

import numpy as np
import torch

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.interpret import node_outputs
from snnc.compiler.core.ir import Graph

KEEP = 1 << 21  # at most this many positive values per node enter the percentile


def activation_scales(ann: Graph, x: torch.Tensor, *, percentile: float = 99.9,
                      batch_size: int = 100) -> dict[str, float]:
    """{node: p-th percentile of its positive outputs} over images `x` [N, ...].

    Values are subsampled with a fixed stride to at most `KEEP` per node (deterministic). A node
    that never outputs a positive value gets 0 (the normalize pass then leaves its layer)."""
    if ann.params is None:
        raise SnncError(f"graph '{ann.name}' holds no parameters: data-based normalisation "
                        f"needs the trained weights.")
    if not 0 < percentile <= 100:
        raise SnncError(f"normalisation percentile must lie in (0, 100] (got {percentile}).")
    if len(x) == 0:
        raise SnncError("data-based normalisation got no calibration images.")
    ins = ann.input_nodes()
    if len(ins) != 1:
        raise SnncError(f"graph '{ann.name}' has {len(ins)} inputs; normalisation takes one.")
    chunks: dict[str, list[np.ndarray]] = {}
    per_batch = max(1, KEEP // max(1, (len(x) + batch_size - 1) // batch_size))
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            for node, y in node_outputs(ann, {ins[0].name: x[i:i + batch_size].float()}):
                pos = y[y > 0]
                if pos.numel() > per_batch:
                    pos = pos[:: (pos.numel() + per_batch - 1) // per_batch]
                chunks.setdefault(node.name, []).append(pos.numpy())
    out = {}
    for name, parts in chunks.items():
        v = np.concatenate(parts)
        out[name] = float(np.percentile(v, percentile)) if v.size else 0.0
    return out


def calibration_images(ann: Graph, data, samples: int) -> torch.Tensor:
    """The first `samples` training images of `data` (anything `--data` takes: a name or path,
    a snnc.data DataSpec with its keys/layout/mean/std, a torch Dataset or DataLoader; read by
    snnc.data.load_dataset, the trainer's reader), shaped like `ann`'s input (zero-padded,
    channels repeated) as the trainer does (docs/pytorch-backend.md "Data")."""
    from snnc.data import load_dataset

    shape = ann.input_nodes()[0].shape
    size = shape[-1] if len(shape) == 4 else None
    ds = load_dataset(data, "train", limit=samples, size=size,
                      channels=shape[1] if len(shape) == 4 else 1)
    x = ds.x.flatten(1) if len(shape) == 2 else ds.x
    if tuple(x.shape[1:]) != tuple(shape[1:]):
        raise SnncError(f"--normalize {ds.name}: samples have shape {list(x.shape[1:])} but "
                        f"graph '{ann.name}' takes {list(shape[1:])} (its input node); pick a "
                        f"matching dataset (or --layout).")
    return x
