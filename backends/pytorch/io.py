"""Save and rebuild an SNNModule as an output directory (docs/outputs.md).

The module is never pickled and never stored apart from its graph: its parameters and buffers
are the graph's (`conv1.weight`, `bn1.running_mean`, ...), written to `graph.safetensors` beside
`graph.json`. `load_module(dir)` rebuilds the module from the IR, so what is loaded is always
what the IR says, never code that drifted from it.
"""

from __future__ import annotations

from pathlib import Path

from snnc.backends.pytorch.module import SNNModule, build_module
from snnc.compiler.core.ir import Graph


def module_graph(module: SNNModule, g: Graph | None = None) -> Graph:
    """`g` (default the module's own graph) with the module's current parameters and its
    time steps."""
    g = g if g is not None else module.graph
    params = dict(g.params or {})
    params.update(module.graph_params())
    g = g.with_params(params)
    if g.attrs.get("timesteps") != module.timesteps:
        g = g.with_attrs(timesteps=module.timesteps)
    return g


def save_module(module: SNNModule, g: Graph | None = None, directory: str | Path = ".", *,
                force: bool = False) -> Path:
    """Write `module`'s graph and weights as an output directory (atomically; a directory
    holding trained weights is replaced only with `force`). Returns the directory."""
    from snnc.compiler.core import outdir

    graph = module_graph(module, g)
    return outdir.write(directory, graph, options={"timesteps": module.timesteps},
                        emit=["torch"], cost=False, force=force)


def load_graph(directory: str | Path) -> tuple[Graph, dict]:
    """(the SNN graph with its weights, the manifest's options) of an output directory, after
    checking every file against the manifest."""
    from snnc.compiler.core import outdir

    d = outdir.read(directory)
    return d.graph(), dict(d.manifest.get("options") or {})


def load_module(directory: str | Path) -> SNNModule:
    """Rebuild the module saved in `directory` (never unpickles anything)."""
    g, _ = load_graph(directory)
    return build_module(g)
