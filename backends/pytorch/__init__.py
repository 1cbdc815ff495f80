"""The PyTorch backend: SNN-form IR -> trainable nn.Module (docs/pytorch-backend.md).

Public API: :func:`build_module` (graph -> :class:`SNNModule`), :func:`save_module` /
:func:`load_module` (an output directory, docs/outputs.md), :func:`train` (the training loop).
"""

from snnc.backends.pytorch.module import SNNModule, build_module

__all__ = ["SNNModule", "build_module", "save_module", "load_module", "train"]


def __getattr__(name):
    if name in ("save_module", "load_module"):
        from snnc.backends.pytorch import io

        return getattr(io, name)
    if name == "train":
        from snnc.backends.pytorch.training import train

        return train
    raise AttributeError(name)
