"""Save and rebuild an SNNModule: `model.safetensors` (weights) + `module.json` (the graph).

The module is never pickled: `module.json` holds the SNN IR (the same JSON as `graph.json`) and
the build options, `model.safetensors` the parameters and buffers under the graph's keys
(`conv1.weight`, `bn1.running_mean`, ...). `load_module(dir)` rebuilds the module from the IR,
so what is loaded is always what the IR says, never code that drifted from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from snnc.backends.pytorch.module import SNNModule, build_module
from snnc.compiler.core.errors import ImportFailed
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.serialize import from_json, load_params, to_json

FORMAT = "snnc-torch-module"
VERSION = 1


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_module(module: SNNModule, g: Graph | None = None, directory: str | Path = ".") -> Path:
    """Write `module`'s weights and its graph (`g`, default the module's own) into `directory`.

    Returns the directory. Files are written atomically (temp file + rename)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    g = g if g is not None else module.graph
    params = {k: v.detach().contiguous().cpu() for k, v in module.graph_params().items()}
    for k, v in (g.params or {}).items():  # keys the module does not hold (none today)
        params.setdefault(k, v.detach().contiguous().cpu())
    meta = {"format": FORMAT, "version": VERSION, "graph": to_json(g.with_params(params)),
            "options": {"compact": module.compact, "timesteps": module.timesteps},
            "torch": torch.__version__}
    _atomic_write(d / "model.safetensors",
                  lambda p: save_file(params, p, metadata={"format": FORMAT, "graph": g.name}))
    _atomic_write(d / "module.json", lambda p: Path(p).write_text(json.dumps(meta, indent=1)))
    return d


def load_graph(directory: str | Path) -> tuple[Graph, dict]:
    """(the SNN graph with its weights, the build options), as saved by :func:`save_module`."""
    d = Path(directory)
    mj, st = d / "module.json", d / "model.safetensors"
    for f in (mj, st):
        if not f.is_file():
            raise ImportFailed(f"{f}: missing. A PyTorch module directory holds module.json and "
                               f"model.safetensors; create one with `snnc compile MODEL -o DIR` "
                               f"(or snnc.backends.pytorch.save_module).")
    try:
        meta = json.loads(mj.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ImportFailed(f"{mj}: not valid JSON ({err}); recompile the model.") from None
    if meta.get("format") != FORMAT:
        raise ImportFailed(f"{mj}: not an snnc module file (format {meta.get('format')!r}, "
                           f"expected {FORMAT!r}); recompile the model.")
    return from_json(meta["graph"], params=load_params(st)), meta.get("options", {})


def load_module(directory: str | Path) -> SNNModule:
    """Rebuild the module saved in `directory` (never unpickles anything)."""
    g, opts = load_graph(directory)
    m = build_module(g, compact=opts.get("compact", True), timesteps=opts.get("timesteps"))
    return m
