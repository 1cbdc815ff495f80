"""JSON form of the IR (`to_json` / `from_json` round-trip to an equal graph) and weights.

Values keep their types: tuples are tagged (`{"tuple": [...]}`) so that they come back as
tuples, floats are written with `repr` precision by the json module. Parameter shapes and dtypes
are recorded beside the structure; the tensors themselves go to safetensors
(`save_params` / `load_params`), never to pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from snnc.compiler.core.errors import ImportFailed
from snnc.compiler.core.ir import Attrs, Edge, EdgeKind, Form, Graph, GraphBuilder, Node, Payload

FORMAT_VERSION = 1


def _enc(v: Any) -> Any:
    if isinstance(v, tuple):
        return {"tuple": [_enc(x) for x in v]}
    if isinstance(v, (EdgeKind, Payload, Form)):
        return v.value
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(_dec(x) for x in v["tuple"])
    return v


def _attrs(a: Attrs) -> dict:
    return {k: _enc(v) for k, v in a.items()}


def to_json(g: Graph) -> dict:
    """A JSON-ready dict of `g` (structure, attributes and parameter shapes)."""
    params = {}
    if g.params is not None:
        params = {k: {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
                  for k, t in g.params.items()}
    return {
        "format": "snnc-ir", "version": FORMAT_VERSION, "name": g.name, "form": g.form.value,
        "attrs": _attrs(g.attrs),
        "nodes": [{"name": n.name, "op": n.op, "attrs": _attrs(n.attrs), "shape": list(n.shape),
                   "params": list(n.params)} for n in g.nodes],
        "edges": [{"src": e.src, "dst": e.dst, "port": e.port, "kind": e.kind.value,
                   "hops": e.hops, "projection": e.projection,
                   "payload": None if e.payload is None else e.payload.value,
                   "attrs": _attrs(e.attrs)} for e in g.edges],
        "outputs": list(g.outputs),
        "params": params,
    }


def from_json(data: dict, *, params: dict | None = None) -> Graph:
    """The graph `data` describes; `params` attaches weights (else structure only)."""
    if data.get("format") != "snnc-ir":
        raise ImportFailed("not an snnc IR JSON document (missing \"format\": \"snnc-ir\")")
    b = GraphBuilder(data["name"], Form(data["form"]),
                     Attrs({k: _dec(v) for k, v in data.get("attrs", {}).items()}),
                     None if params is None else dict(params))
    for n in data["nodes"]:
        b.nodes[n["name"]] = Node(n["name"], n["op"],
                                  Attrs({k: _dec(v) for k, v in n["attrs"].items()}),
                                  tuple(n["shape"]), tuple(n["params"]))
    for e in data["edges"]:
        b.edges.append(Edge(e["src"], e["dst"], e["port"], EdgeKind(e["kind"]), e["hops"],
                            e["projection"], None if e["payload"] is None else Payload(e["payload"]),
                            Attrs({k: _dec(v) for k, v in e["attrs"].items()})))
    b.outputs = list(data["outputs"])
    return b.build(check=False)


def dumps(g: Graph) -> str:
    return json.dumps(to_json(g), indent=1)


def loads(text: str, *, params: dict | None = None) -> Graph:
    return from_json(json.loads(text), params=params)


def save_params(g: Graph, path: str | Path) -> None:
    """Write the graph's parameters to a safetensors file, byte-identical for equal graphs.

    One metadata key only: safetensors keeps metadata in a hash map whose order changes from
    process to process, so two keys would make identical runs write different bytes."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in sorted((g.params or {}).items())}
    save_file(tensors, str(path), metadata={"format": "snnc-params"})
    os.chmod(path, 0o666 & ~umask())  # safetensors creates files 0600


def umask() -> int:
    """The process's umask, read without changing it where /proc tells it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def load_params(path: str | Path) -> dict:
    """Read parameters from a safetensors file (never pickle)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own types for corrupt files
        raise ImportFailed(f"{path}: cannot read parameters ({err}). The file is not a valid "
                           f"safetensors file; recompile the model.") from None
