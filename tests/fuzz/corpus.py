"""A seeded corpus of mutated ONNX files (tests/fuzz/mutate.py) from exported base nets."""

from __future__ import annotations

import random
from pathlib import Path

from tests.fuzz import mutate, nets

CI_BASES = [(n, e) for n in ("tiny_cnn", "mlp", "mini_mobilenet", "mini_densenet")
            for e in ("torchscript", "dynamo")]


def export_bases(folder: Path, bases=CI_BASES) -> list[tuple[str, Path]]:
    """Export each (net, exporter) of `bases` into `folder`: [(label, path)]."""
    folder.mkdir(parents=True, exist_ok=True)
    return [(f"{n.replace(':', '_').replace('@', '_')}-{e}", nets.export(n, e, folder))
            for n, e in bases]


def generate(bases: list[tuple[str, Path]], n: int, seed: int,
             folder: Path) -> list[tuple[str, str, Path]]:
    """`n` mutated files under `folder`: [(base label, mutation class, path)], a function of
    `seed` and the base files only."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    models = [(label, mutate.load(path)) for label, path in bases]
    out = []
    for i in range(n):
        label, model = models[i % len(models)]
        kind, path = mutate.mutate(model, rng, folder, f"m{i:05d}-{label}")
        out.append((label, kind, path))
    return out
