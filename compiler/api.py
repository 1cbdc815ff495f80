"""The public Python API: `compile`, `Compiled`, `load` (docs/design.md "Interfaces").

    from snnc.compiler import compile
    c = compile("model.onnx", residual="s2s", target="loihi2", timesteps=8)
    module = c.to_torch()          # trainable nn.Module, logits [B, classes]
    report = c.cost(rate=0.1)      # cost model report
    c.save("model.snnc")           # the output directory

`compile` imports the model (ONNX file, nn.Module, or a zoo name such as ``zoo:resnet20``),
annotates its skip edges, runs the conversion pipeline (verified after every pass) and returns a
`Compiled` holding both the ANN-form and the SNN-form graphs.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnc.compiler.core.errors import ImportFailed, SnncError
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.options import Options

__all__ = ["compile", "load", "Compiled", "Options", "import_ann", "resolve_encoder"]

EMITTERS = ("torch", "lava", "nir")


def resolve_encoder(encoder: str, target: str) -> str:
    """`auto` -> the target file's features.encoder_default (docs/targets.md): `direct` where
    the target takes graded input (generic, loihi2, cmos45, nir), `poisson` on a binary-only
    chip (loihi1, truenorth, speck), which cannot receive the frame itself."""
    if encoder != "auto":
        return encoder
    from snnc.compiler.targets import load_target

    return load_target(target).encoder_default


def zoo_module(name: str):
    """Zoo model `name` in eval mode, with weights drawn from seed 0 (so that `snnc compile
    zoo:NAME` is reproducible and `inspect --check` can rebuild the same reference)."""
    import torch

    from snnc import models

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return models.get(name).eval()


def import_ann(model: Any, *, example_input=None, input_shape=None) -> Graph:
    """The ANN-form IR of `model` (path, nn.Module or ``zoo:NAME``), skip edges annotated."""
    from snnc.compiler.core.blocks import annotate_skips
    from snnc.compiler.frontends import import_model

    if isinstance(model, str) and model.startswith("zoo:"):
        from snnc import models

        name = model[4:]
        if name not in models.available():
            raise ImportFailed(f"{model}: no zoo model '{name}'. Available: "
                               f"{', '.join(models.available())}.")
        module = zoo_module(name)
        if example_input is None and input_shape is None:
            input_shape = tuple(module.input_shape)
        model = module
    g = import_model(model, example_input=example_input, input_shape=input_shape)
    return annotate_skips(g)


def compile(model: Any, options: Options | None = None, *, example_input=None,
            input_shape=None, progress: Callable[[str], None] | None = None,
            **overrides: Any) -> Compiled:
    """Compile `model` (ONNX path, nn.Module, ``zoo:NAME`` or an ANN-form Graph) into an SNN.

    `options` (snnc.compiler.core.options.Options, default: the defaults) with keyword `overrides`
    (``compile(m, residual="s2m", timesteps=4)``; any Options field) says what to produce.
    `encoder="auto"` picks `direct` for targets with graded input and `poisson` for binary-only
    chips (see `resolve_encoder`). `passes` are extra `--pass` specs (``NAME{k=v}`` or
    ``module:function``) run after the conversion pipeline. Raises SnncError subclasses for bad
    input.
    """
    from snnc.compiler.core.passmanager import run_pipeline
    from snnc.passes.pipeline import conversion_pipeline, resolve_bn

    o = Options.build(options, **overrides)
    o = o.replace(encoder=resolve_encoder(o.encoder, o.target), bn=resolve_bn(o))
    if progress:
        progress("import")
    source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    if isinstance(model, Graph):  # an ANN-form IR, already imported
        from snnc.compiler.core.blocks import annotate_skips
        from snnc.compiler.core.verify import verify

        source = f"graph:{model.name}"
        ann = annotate_skips(verify(model))
    else:
        ann = import_ann(str(model) if isinstance(model, os.PathLike) else model,
                         example_input=example_input, input_shape=input_shape)
    from snnc.compiler.core.limits import check_compile, check_forward

    try:
        check_compile(ann, o.timesteps, source)
        snn = run_pipeline(ann, conversion_pipeline(o), progress=progress)
        check_forward(snn, o.timesteps, 1, source)  # an accepted model's module runs
    except SnncError as err:  # every refusal names the model it is about
        if not str(err).startswith(source):
            err.args = (f"{source}: {err}", *err.args[1:])
        raise
    return Compiled(ann=ann, graph=snn, options=o, source=source)


@dataclass
class Compiled:
    """The result of `compile`: the ANN-form and SNN-form graphs and how they were made."""

    ann: Graph
    graph: Graph
    options: Options
    source: str = ""
    _module: Any = field(default=None, repr=False)

    def to_torch(self):
        """The trainable PyTorch module for the SNN graph (built once, then reused)."""
        if self._module is None:
            from snnc.backends.pytorch import build_module

            self._module = build_module(self.graph)
        return self._module

    def cost(self, *, data=None, samples: int = 16, **kwargs):
        """The cost model's report for the SNN graph (kwargs go to costmodel.estimate).

        `data` (a snnc.data name, a .pt/.npy file or a tensor of samples) switches to the
        measured mode: the PyTorch module (trained weights included) records the activity of
        `samples` samples (:func:`record_activity`)."""
        kwargs.setdefault("target", self.options.target)
        if data is not None:
            kwargs["rates"] = record_activity(self.graph, data, samples=samples,
                                              module=self._module)
        return cost_report(self.graph, ann=self.ann, **kwargs)

    def emit(self, kinds: Sequence[str], directory: str | Path) -> list[Path]:
        """Write the backends' artifacts (`torch`, `lava`, `nir`) into `directory`."""
        directory = Path(directory)
        written: list[Path] = []
        for kind in kinds:
            if kind not in EMITTERS:
                raise SnncError(f"--emit {kind!r} is not one of {', '.join(EMITTERS)}.")
            if kind == "torch":
                from snnc.backends.pytorch import save_module

                save_module(self.to_torch(), self.graph, directory)
                written += [directory / "model.safetensors", directory / "module.json"]
            elif kind == "lava":
                from snnc.backends.lava import export as lava_export

                written.append(Path(lava_export(self.graph, directory / "lava")))
            elif kind == "nir":
                from snnc.backends.nir import export as nir_export

                written.append(Path(nir_export(self.graph, directory / "model.nir")))
        return written

    def save(self, directory: str | Path, *, emit: Sequence[str] = ("torch",),
             cost: bool = True, plot: bool = False, extra: dict | None = None) -> Path:
        """Write the output directory atomically: everything or nothing (docs/design.md)."""
        from snnc.compiler.core.serialize import dumps, save_params
        from snnc.compiler.core.text import print_ir

        directory = Path(directory)

        def fill(tmp: Path) -> None:
            files: list[Path] = []
            (tmp / "graph.snnc").write_text(print_ir(self.graph))
            (tmp / "graph.json").write_text(dumps(self.graph))
            (tmp / "ann.json").write_text(dumps(self.ann))
            save_params(self.graph, tmp / "graph.safetensors")
            save_params(self.ann, tmp / "ann.safetensors")
            files += [tmp / n for n in ("graph.snnc", "graph.json", "ann.json",
                                        "graph.safetensors", "ann.safetensors")]
            files += self.emit(emit, tmp)
            if cost:
                files += _write_cost(self, tmp, plot)
            manifest = {
                "format": "snnc-output", "version": 1, "source": self.source,
                "source_sha256": _sha256(self.source), "options": self.options.as_dict(),
                "emit": list(emit), "files": sorted(str(f.relative_to(tmp)) for f in files),
                "versions": _versions(), **(extra or {}),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

        write_atomically(directory, fill)
        return directory


def record_activity(graph: Graph, data, *, samples: int = 16, module=None,
                    source: str = "calibration", batch_size: int = 16):
    """Measured-mode activity of SNN `graph` on `data`: the PyTorch backend records every
    synaptic input (backends/pytorch/activity.py) and the result is the cost model's
    :class:`~snnc.costmodel.Activity` (docs/costmodel.md "Measured mode").

    `data`: a snnc.data dataset name, a .pt/.npy file of samples, or a tensor [N, ...]
    ([T, N, ...] for event frames); `module`: a trained SNNModule (default: built from
    `graph`'s parameters); `source`: "calibration" or "measured" (after training).
    """
    from snnc.backends.pytorch.activity import calibration_samples
    from snnc.backends.pytorch.activity import record_activity as record
    from snnc.costmodel import Activity

    if isinstance(data, (str, os.PathLike)):
        x, what = calibration_samples(str(data), graph, samples)
    else:
        x, what = data, f"{len(data)} given samples"
    rec = record(graph, x, module=module, batch_size=batch_size, note=what)
    return Activity(source, rec.rates, None, rec.note, inputs=rec.inputs, samples=rec.samples,
                    timesteps=rec.timesteps)


def cost_report(graph: Graph, target="generic", **kwargs):
    """The cost model's report of `graph` on `target` (kwargs go to costmodel.estimate),
    with the network as the legalize-graded pass lowers it for a binary-only target (or the
    pass's refusal as a violation): the cost model itself runs no pass."""
    from snnc.compiler.targets import load_target
    from snnc.costmodel import estimate

    t = load_target(target)
    return estimate(graph, t, lowered=_lowered(graph, t), **kwargs)


def cost_sweep(graph: Graph, target="generic", **kwargs) -> list:
    """[(rate, report)] of `graph` on `target` at a range of one-rate priors (the
    rate-sensitivity sweep of `--plot`), lowered as in :func:`cost_report`."""
    from snnc.compiler.targets import load_target
    from snnc.costmodel import sweep

    t = load_target(target)
    return sweep(graph, target=t, lowered=_lowered(graph, t), **kwargs)


def _lowered(graph: Graph, t):
    """`graph` after legalize-graded for binary-only target `t`, its refusal, or None."""
    from snnc.compiler.core.errors import ConstraintViolation
    from snnc.compiler.core.ir import Form

    if graph.form is not Form.SNN or t.graded_spikes or graph.attrs.get("legalized"):
        return None
    from snnc.passes.legalize_graded import legalize_graded

    try:
        return legalize_graded(graph, target=t.name)
    except ConstraintViolation as err:
        return str(err)


def _write_cost(c: Compiled, tmp: Path, plot: bool) -> list[Path]:
    report = c.cost()
    (tmp / "cost.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    (tmp / "cost.md").write_text(report.to_markdown())
    out = [tmp / "cost.json", tmp / "cost.md"]
    if plot:
        report.plot(tmp / "cost.png", sweep=cost_sweep(c.graph, c.options.target))
        out.append(tmp / "cost.png")
    return out


def _sha256(path: str) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("snnc", "torch", "onnx", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_atomically(directory: Path, fill: Callable[[Path], None]) -> None:
    """Build `directory` in a temporary sibling and move it into place only when `fill`
    succeeded: a failure leaves no half-written directory (and an old one untouched)."""
    directory = Path(directory).absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                dir=directory.parent))
    try:
        fill(tmp)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(directory: str | Path) -> Compiled:
    """Rebuild a `Compiled` from an output directory written by `Compiled.save`/`snnc compile`."""
    from snnc.compiler.core.serialize import load_params, loads

    d = Path(directory)
    manifest_path = d / "manifest.json"
    if not manifest_path.is_file():
        raise ImportFailed(f"{d}: not an snnc output directory (no manifest.json). Create one "
                           f"with `snnc compile MODEL -o {d}`.")
    try:
        manifest = json.loads(manifest_path.read_text())
        options = Options.from_dict(manifest["options"])
        graph = loads((d / "graph.json").read_text(), params=load_params(d / "graph.safetensors"))
        ann = loads((d / "ann.json").read_text(), params=load_params(d / "ann.safetensors"))
    except (KeyError, TypeError, ValueError, FileNotFoundError) as err:
        raise ImportFailed(f"{d}: the output directory is incomplete or damaged ({err}). "
                           f"Recompile the model.") from None
    c = Compiled(ann=ann, graph=graph, options=options, source=manifest.get("source", ""))
    if (d / "module.json").is_file():
        from snnc.backends.pytorch import load_module

        c._module = load_module(d)
    return c
