"""Front ends: a torch ``nn.Module`` (torch.fx) or an ``.onnx`` file -> ANN-form IR.

    from snnc.compiler.frontends import import_model
    g = import_model(model, input_shape=(3, 32, 32))     # nn.Module, traced with torch.fx
    g = import_model("resnet20.onnx")                    # ONNX file (either torch exporter)

See docs/frontends.md for what each front end accepts and the exporters' quirks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snnc.compiler.core.errors import ImportFailed
from snnc.compiler.core.ir import Graph

_OTHER_SUFFIXES = {
    ".pt": "a PyTorch checkpoint", ".pth": "a PyTorch checkpoint", ".ckpt": "a checkpoint",
    ".pkl": "a pickle", ".h5": "a Keras/HDF5 file", ".pb": "a TensorFlow graph",
    ".tflite": "a TFLite model", ".safetensors": "a bare weight file", ".nir": "a NIR graph",
}


def import_model(model_or_path: Any, *, example_input: Any = None,
                 input_shape: Any = None) -> Graph:
    """An ANN-form graph from an ``nn.Module`` or a path to an ``.onnx`` file."""
    import torch

    if isinstance(model_or_path, torch.nn.Module):
        from snnc.compiler.frontends.fx import from_torch

        return from_torch(model_or_path, example_input, input_shape=input_shape)
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            if example_input is not None and input_shape is None:
                input_shape = tuple(example_input.shape[1:])
            from snnc.compiler.frontends.onnx import from_onnx

            return from_onnx(path, input_shape=input_shape)
        what = _OTHER_SUFFIXES.get(suffix, f"a '{suffix or '(no suffix)'}' file")
        raise ImportFailed(
            f"{path}: snnc cannot import {what}. It reads ONNX files (.onnx) and torch "
            f"nn.Modules: load your model in Python and call import_model(model, "
            f"input_shape=(3, 32, 32)), or export it with torch.onnx.export(model, (x,), "
            f"'{path.stem}.onnx'). snnc never unpickles checkpoints.")
    raise ImportFailed(f"import_model: expected a torch nn.Module or a path to an .onnx file, "
                       f"got {type(model_or_path).__name__}.")


__all__ = ["import_model"]
