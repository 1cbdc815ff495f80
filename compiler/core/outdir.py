"""The output directory: one format, one reader (`read`), one writer (`write`) (docs/outputs.md).

Every fact is stored once: the SNN graph and its weights (`graph.json` + `graph.safetensors`,
trained weights included: the PyTorch module is rebuilt from them), the imported ANN form
(`ann.json` + `ann.safetensors`), and files derived from them (`graph.snnc`, `cost.*`, `lava/`,
`model.nir`), regenerated whenever the weights change. `manifest.json` records the sha256 of
every file except the training run's own `checkpoints/` (indexed by
`checkpoints/train_state.json`); `read` refuses a directory whose files do not match it.
Directories are replaced only through `snnc.compiler.core.atomic.replace_dir`, and only when they
are snnc's own (`guard`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snnc.compiler.core.atomic import MARKER, replace_dir, stage
from snnc.compiler.core.errors import ImportFailed, SnncError
from snnc.compiler.core.ir import Graph

FORMAT = "snnc-output"
VERSION = 2
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
EMITTERS = ("torch", "lava", "nir")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(path: Path) -> dict | None:
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def is_output_dir(path: str | Path) -> bool:
    """Whether `path` is a directory holding an snnc manifest."""
    return Path(path).is_dir() and _manifest(Path(path)) is not None


@dataclass
class OutputDir:
    """A verified output directory: its path and manifest; graphs are read on demand."""

    path: Path
    manifest: dict

    @property
    def files(self) -> dict[str, str]:
        return self.manifest["files"]

    @property
    def trained(self) -> dict | None:
        """The last training run's summary (None: the weights are the compiled ones)."""
        return self.manifest.get("trained")

    @property
    def emit(self) -> list[str]:
        return list(self.manifest.get("emit", []))

    def graph(self) -> Graph:
        """The SNN graph with its (current, possibly trained) weights."""
        return _read_graph(self.path, "graph")

    def ann(self) -> Graph | None:
        """The imported ANN form (None for a directory written from a module alone)."""
        return _read_graph(self.path, "ann") if "ann.json" in self.files else None


def _read_graph(d: Path, stem: str) -> Graph:
    from snnc.compiler.core.serialize import load_params, loads

    try:
        return loads((d / f"{stem}.json").read_text(),
                     params=load_params(d / f"{stem}.safetensors"))
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise ImportFailed(f"{d / (stem + '.json')}: cannot be read ({err}). Recompile the "
                           f"model.") from None


def read(path: str | Path, *, verify: bool = True) -> OutputDir:
    """Open output directory `path`; with `verify` every file must match its manifest hash."""
    d = Path(path)
    if not (d / MANIFEST).is_file():
        raise ImportFailed(f"{d}: not an snnc output directory (no {MANIFEST}). Create one with "
                           f"`snnc compile MODEL -o {d}`.")
    m = _manifest(d)
    if m is None:
        raise ImportFailed(f"{d / MANIFEST}: not an snnc manifest (unreadable JSON or no "
                           f"\"format\": \"{FORMAT}\"). Recompile the model.")
    if m.get("version") != VERSION or not isinstance(m.get("files"), dict):
        raise ImportFailed(f"{d}: written by another snnc version (format {m.get('version')}, "
                           f"this snnc reads {VERSION}). Recompile the source model "
                           f"({m.get('source') or 'MODEL'}) with `snnc compile`.")
    if verify:
        bad = [name for name, digest in m["files"].items()
               if not (d / name).is_file() or sha256_file(d / name) != digest]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ImportFailed(f"{d}: {shown} do(es) not match the sha256 recorded in "
                               f"{MANIFEST} (edited, truncated or missing). snnc does not mix "
                               f"files of different runs: recompile or re-train the directory.")
    return OutputDir(d, m)


def foreign_files(d: Path, manifest: dict) -> list[str]:
    """Files in `d` that snnc did not write (not in the manifest, not its checkpoints)."""
    known = set(manifest.get("files", {})) | {MANIFEST, MARKER}
    out = []
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if rel in known or _checkpoint_file(rel):
            continue
        out.append(rel)
    return out


def _checkpoint_file(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] != CHECKPOINTS:
        return False
    name = parts[1]
    return (name in ("train_state.json", "best.safetensors")
            or (name.startswith("epoch-") and name.endswith(".safetensors"))
            or name.startswith((".train_state.json.", ".epoch-", ".best.safetensors.")))


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def guard_path(directory: str | Path, sources: Sequence[str | Path] = ()) -> None:
    """Refuse an output path that would replace its own source, an ancestor of it, or the
    current directory (before any lock is taken)."""
    out = Path(directory).resolve()
    cwd = Path.cwd().resolve()
    if _contains(out, cwd):
        raise SnncError(f"-o {directory}: that is the current directory or one of its parents; "
                        f"snnc would replace it. Give a new folder, e.g. -o {out.name}.snnc.")
    for s in sources:
        src = Path(s).resolve()
        if src.is_dir():
            if out != src and _contains(out, src):
                raise SnncError(f"-o {directory}: it contains the model directory {s}; "
                                f"writing there would delete it. Give another -o.")
        elif _contains(out, src.parent):
            raise SnncError(f"-o {directory}: it is the folder holding the model {s} (or one of "
                            f"its parents); writing there would delete it. Give a new folder, "
                            f"e.g. -o {src.stem}.snnc.")


def guard_contents(directory: Path, *, force: bool = False, keep_trained: bool = False) -> None:
    """Refuse to replace `directory` unless it is missing, empty, or snnc's own without
    foreign files; one holding trained weights needs `force` (or `keep_trained`: the caller
    carries them over)."""
    if not directory.exists() and not directory.is_symlink():
        return
    if not directory.is_dir():
        raise SnncError(f"-o {directory}: exists and is not a directory; give another -o.")
    if not any(directory.iterdir()):
        return
    m = _manifest(directory)
    if m is None:
        raise SnncError(f"-o {directory}: a non-empty folder that snnc did not write (no "
                        f"{MANIFEST}); snnc never replaces it. Give a new or empty folder.")
    foreign = foreign_files(directory, m)
    if foreign:
        raise SnncError(f"-o {directory}: holds files snnc did not write "
                        f"({', '.join(foreign[:5])}); move them away or give another -o.")
    if m.get("trained") and not (force or keep_trained):
        raise SnncError(f"-o {directory}: holds trained weights ({m['trained'].get('epochs')} "
                        f"epoch(s)); writing there would discard them. Add --force to replace "
                        f"them, or give another -o.")


def versions() -> dict[str, str]:
    """The versions recorded in the manifest (python, snnc, torch, onnx, numpy)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("snnc", "torch", "onnx", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write(directory: str | Path, graph: Graph, *, ann: Graph | None = None,
          options: Mapping[str, Any] | None = None, source: str = "",
          source_sha256: str | None = None, emit: Sequence[str] = (), cost: bool = True,
          plot: bool = False, cost_rates=None, cost_target: str | None = None,
          trained: dict | None = None,
          carry: Mapping[str, Path] | None = None, link: bool = False,
          sources: Sequence[str | Path] = (), force: bool = False,
          keep_trained: bool = False, render: Callable[..., None] | None = None,
          emitted: Sequence[str] | None = None) -> Path:
    """Write output directory `directory` atomically (see the module doc and atomic.py).

    `carry` maps relative names to existing files copied as they are (training report,
    checkpoints); `link` hard-links them instead (for files of the directory being replaced,
    which snnc never edits in place). `sources` are inputs the directory must not swallow;
    `force` allows replacing trained weights. `render(graph, ann, dir, emit=, cost=, plot=,
    target=, rates=)` writes the derived files (`lava/`, `model.nir`, `cost.*`; the API
    layer's `snnc.compiler.api.render`); without it they are left out. Returns the
    directory. `emitted`: the kinds the manifest records (default `emit`; more when files of
    other kinds are carried)."""
    from snnc.compiler.core.serialize import dumps, save_params
    from snnc.compiler.core.text import print_ir

    guard_path(directory, sources)
    emit = [k for k in dict.fromkeys(emit)]
    for k in emit:
        if k not in EMITTERS:
            raise SnncError(f"--emit {k!r} is not one of {', '.join(EMITTERS)}.")
    opts = dict(options or {})
    if render is None:  # this layer cannot emit backends or cost: leave them out
        emit, cost, plot = [k for k in emit if k == "torch"], False, False
    record = list(dict.fromkeys(emitted if emitted is not None else emit))

    def fill(tmp: Path) -> None:
        (tmp / "graph.json").write_text(dumps(graph) + "\n")
        save_params(graph, tmp / "graph.safetensors")
        (tmp / "graph.snnc").write_text(print_ir(graph))
        stage("fill:graph")
        if ann is not None:
            (tmp / "ann.json").write_text(dumps(ann) + "\n")
            save_params(ann, tmp / "ann.safetensors")
        if render is not None:
            target = cost_target or opts.get("target", graph.attrs.get("target", "generic"))
            render(graph, ann, tmp, emit=emit, cost=cost, plot=plot, target=target,
                   rates=cost_rates)
        else:
            stage("fill:artifacts")
        for rel, src in (carry or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            if link:
                _link_or_copy(Path(src), tmp / rel)
            else:
                shutil.copyfile(src, tmp / rel)
        files = {p.relative_to(tmp).as_posix(): sha256_file(p)
                 for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != MARKER
                 and p.relative_to(tmp).parts[0] != CHECKPOINTS}
        manifest = {"format": FORMAT, "version": VERSION, "source": source,
                    "source_sha256": source_sha256, "options": opts, "emit": record,
                    "trained": trained, "files": files, "versions": versions()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")

    return replace_dir(directory, fill, check=lambda d: guard_contents(
        d, force=force, keep_trained=keep_trained))


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (files are replaced, never edited, so a link is safe), else
    copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def rewrite(d: OutputDir, out: str | Path | None = None, *, graph: Graph | None = None,
            emit: Sequence[str] | None = None, trained: dict | None | bool = False,
            carry: Mapping[str, Path] | None = None, cost_rates=None,
            checkpoints: bool = True, force: bool = False,
            render: Callable[..., None] | None = None) -> Path:
    """Write `d` again (to `out`, default in place) with what changed: a new `graph` (new
    weights: every derived file is regenerated), more `emit` kinds, a `trained` summary,
    `carry` files. Unchanged training files and checkpoints are carried over when the weights
    are unchanged; `checkpoints` carries the training checkpoints over. `render`: as in
    `write`; without it, derived files are carried over only while the weights are unchanged
    (new weights drop them from the directory and the manifest)."""
    m = d.manifest
    target = Path(out) if out is not None else d.path
    carry = dict(carry or {})
    cost = "cost.json" in m["files"]
    redo = list(dict.fromkeys(emit or []))
    kinds = list(dict.fromkeys([*m.get("emit", []), *redo]))
    new_weights = graph is not None
    if not new_weights:  # same weights: every derived file stays valid but those re-emitted
        graph = d.graph()
        cost = False
        for rel in m["files"]:
            if rel.split("/")[0] in _PRIMARY or _kind_of(rel) in redo:
                continue
            carry.setdefault(rel, d.path / rel)
    else:
        redo = kinds
    ck = d.path / CHECKPOINTS
    if checkpoints and ck.is_dir():
        for p in sorted(ck.iterdir()):
            if _checkpoint_file(f"{CHECKPOINTS}/{p.name}") and not p.name.startswith("."):
                carry.setdefault(f"{CHECKPOINTS}/{p.name}", p)
    in_place = target.resolve() == d.path.resolve()
    if render is None and new_weights:  # derived files cannot be regenerated here: dropped
        kinds = ["torch"] if "torch" in kinds else []
    return write(target, graph, ann=d.ann(), options=m.get("options"), source=m.get("source", ""),
                 source_sha256=m.get("source_sha256"), emit=redo, emitted=kinds, cost=cost,
                 plot="cost.png" in m["files"], cost_rates=cost_rates,
                 trained=m.get("trained") if trained is False else trained, carry=carry,
                 link=in_place, force=force, keep_trained=in_place, render=render)


# written from the graph itself by `write` (never carried)
_PRIMARY = ("graph.json", "graph.safetensors", "graph.snnc", "ann.json", "ann.safetensors")


def _kind_of(rel: str) -> str | None:
    """The --emit kind a file belongs to (lava/..., model.nir), else None."""
    if rel.startswith("lava/"):
        return "lava"
    return "nir" if rel == "model.nir" else None


