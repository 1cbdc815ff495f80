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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnc.compiler.core.errors import ImportFailed, SnncError
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.options import Options

__all__ = ["compile", "load", "train", "Compiled", "Options", "import_ann", "resolve_encoder"]


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
    """The ANN-form IR of `model` (path, nn.Module or ``zoo:NAME``), skip edges annotated.

    The front end's graph and the annotated one are verified once, together, at the end
    (`_annotated`): the verifier's full check of the graph that comes out."""
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
    from snnc.compiler.core.ir import deferred_verify

    with deferred_verify():
        g = import_model(model, example_input=example_input, input_shape=input_shape)
    return _annotated(g)


def _annotated(g: Graph) -> Graph:
    """`annotate_skips(g)`, verified, for a front end's graph `g` built unverified: one full
    check of the result instead of one of `g` and another (of the changed nodes) of the
    result. Should annotating fail, `g` is verified first, so a broken import is reported by
    the verifier, as when the front end's `build()` checked it."""
    from snnc.compiler.core.blocks import annotate_skips
    from snnc.compiler.core.verify import verify

    try:
        out = annotate_skips(g)
    except Exception:
        verify(g)
        raise
    return verify(out)


def compile(model: Any, options: Options | None = None, *, example_input=None,
            input_shape=None, progress: Callable[[str], None] | None = None,
            **overrides: Any) -> Compiled:
    """Compile `model` (ONNX path, nn.Module, ``zoo:NAME`` or an ANN-form Graph) into an SNN.

    `options` (snnc.compiler.core.options.Options, default: the defaults) with keyword `overrides`
    (``compile(m, residual="s2m", timesteps=4)``; any Options field) says what to produce.
    `encoder="auto"` picks `direct` for targets with graded input and `poisson` for binary-only
    chips (see `resolve_encoder`). `passes` are extra `--pass` specs (``NAME{k=v}`` or
    ``module:function``) run after the conversion pipeline; `pass_options` (``PASS.KEY=VALUE``)
    set options of the pipeline's own passes. `normalize` (what `--data` takes: a dataset name
    or path, a snnc.data.DataSpec naming its keys/layout/mean/std, a torch Dataset or
    DataLoader; or a tensor of images [N, ...]) calibrates weights and thresholds on its first
    `calibration_samples` training images at `percentile` (docs/passes.md "Conversion").
    `timesteps="auto"` picks the shortest input-to-readout delay depth plus `window`
    (compiler/core/delays.py); a T at or below that depth logs a warning. Raises SnncError
    subclasses for bad input.
    """
    from snnc.compiler.core.dataspec import DataSpec
    from snnc.compiler.core.passmanager import run_pipeline
    from snnc.passes.pipeline import conversion_pipeline, resolve_bn

    calib = overrides.get("normalize")
    if calib is not None and not isinstance(calib, (str, os.PathLike, DataSpec)):
        overrides["normalize"] = f"<{type(calib).__name__}>"  # recorded; the data stays here
    elif calib is not None:
        calib = None  # read from the options below, as a manifest's record is
    o = Options.build(options, **overrides)
    if calib is None and o.normalize is not None:
        calib = o.normalize
    o = o.replace(encoder=resolve_encoder(o.encoder, o.target), bn=resolve_bn(o))
    if progress:
        progress("import")
    source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    if _is_nir(model):  # a NIR graph is already spiking: imported into SNN form, no passes
        from snnc.compiler.core.verify import verify
        from snnc.compiler.frontends.nir import read_nir

        snn = verify(read_nir(model, timesteps=o.timesteps))
        o = o.replace(target=snn.attrs.get("target", o.target))
        return Compiled(ann=None, graph=snn, options=o, source=source)
    from_dir = isinstance(model, (str, os.PathLike)) and Path(model).is_dir()
    if from_dir:
        from snnc.compiler.core import outdir

        model = outdir.read(model).ann()  # recompile from the stored ANN form
        if model is None:
            raise ImportFailed(f"{source}: holds no ANN form (ann.json; it was written from a "
                               f"module alone), so it cannot be recompiled. Compile the "
                               f"original model instead.")
    if isinstance(model, Graph):  # an ANN-form IR, already imported
        from snnc.compiler.core.blocks import annotate_skips
        from snnc.compiler.core.verify import verify

        if not from_dir:
            source = f"graph:{model.name}"
        ann = annotate_skips(verify(model))
    else:
        ann = import_ann(str(model) if isinstance(model, os.PathLike) else model,
                         example_input=example_input, input_shape=input_shape)
    auto = o.timesteps == "auto"
    if auto:  # the depth depends on the structure only: find it on a weightless run
        from snnc.compiler.core.delays import delay_depth

        probe = run_pipeline(ann.with_params(None), conversion_pipeline(o, timesteps=1))
        o = o.replace(timesteps=delay_depth(probe).shortest + o.window)
    scales = x_calib = None
    if calib is not None:
        if progress:
            progress("calibrate")
        x_calib = _calibration_images(ann, calib, o)
        scales = _calibrate(ann, x_calib, o)
    from snnc.compiler.core.limits import check_compile, check_forward

    try:
        check_compile(ann, o.timesteps, source)
        snn = run_pipeline(ann, conversion_pipeline(o, scales=scales), progress=progress)
        rounds = _rate_rounds(snn, o) if x_calib is not None else 0
        if rounds:
            from snnc.backends.pytorch.calibrate import RATE_SAMPLES, calibrate_thresholds

            if progress:
                progress("calibrate-rates")
            snn = calibrate_thresholds(snn, ann, x_calib[:RATE_SAMPLES], iterations=rounds)
        rounds = _bias_rounds(snn, o) if x_calib is not None else 0
        if rounds:
            from snnc.backends.pytorch.calibrate import RATE_SAMPLES, calibrate_biases

            if progress:
                progress("calibrate-bias")
            snn = calibrate_biases(snn, ann, x_calib[:RATE_SAMPLES], iterations=rounds)
            from snnc.backends.pytorch.calibrate import CLASSIFIER_SAMPLES, calibrate_classifier

            snn = calibrate_classifier(snn, ann, x_calib[:CLASSIFIER_SAMPLES])
        check_forward(snn, o.timesteps, 1, source)  # an accepted model's module runs
    except SnncError as err:  # every refusal names the model it is about
        if not str(err).startswith(source):
            err.args = (f"{source}: {err}", *err.args[1:])
        raise
    c = Compiled(ann=ann, graph=snn, options=o, source=source, auto_timesteps=auto)
    warn = c.delay_depth().warning(o.timesteps, snn.name)
    if warn:
        import logging

        logging.getLogger("snnc.compiler").warning("%s", warn)
    return c


def _calibration_images(ann: Graph, data: Any, o: Options):
    """The first `calibration_samples` images of the calibration data (passes/_calibrate.py)."""
    import torch

    from snnc.passes._calibrate import calibration_images

    if isinstance(data, torch.Tensor):
        return data[:o.calibration_samples]
    return calibration_images(ann, data, o.calibration_samples)


def _calibrate(ann: Graph, x, o: Options) -> dict[str, float]:
    """Activation statistics of `ann` on the calibration images (passes/_calibrate.py)."""
    from snnc.passes._calibrate import activation_scales

    return activation_scales(ann, x, percentile=o.percentile)


def _rate_rounds(snn: Graph, o: Options) -> int:
    """Rounds of `calibrate_thresholds`: `calibrate_rates`, else 3 when the SNN's neurons reset
    to zero (their rate falls below a / lambda) and 0 when they reset by subtraction."""
    if o.calibrate_rates is not None:
        return int(o.calibrate_rates)
    zero = any(n.attrs.get("reset") == "zero" for n in snn.by_op("lif"))
    return 3 if zero else 0


def _bias_rounds(snn: Graph, o: Options) -> int:
    """Rounds of `calibrate_biases` (followed, when > 0, by `calibrate_classifier`):
    `calibrate_bias`, else 4 when the SNN's neurons reset to zero (the charge lost at each
    spike grows with the rate, unevenly across channels) and 0 when they reset by
    subtraction."""
    if o.calibrate_bias is not None:
        return int(o.calibrate_bias)
    zero = any(n.attrs.get("reset") == "zero" for n in snn.by_op("lif"))
    return 4 if zero else 0


def _is_nir(model: Any) -> bool:
    """A ``.nir`` path or an in-memory ``nir.NIRGraph`` (docs/frontends.md "NIR")."""
    if isinstance(model, (str, os.PathLike)):
        return str(model).lower().endswith(".nir")
    return type(model).__name__ == "NIRGraph" and type(model).__module__.startswith("nir")


@dataclass
class Compiled:
    """The result of `compile` (or `load`): the ANN-form and SNN-form graphs and how they were
    made; `path` is the output directory it was loaded from or last saved to, `trained` the
    manifest's record of the last training run (docs/outputs.md)."""

    ann: Graph | None
    graph: Graph
    options: Options
    source: str = ""
    path: Path | None = None
    trained: dict | None = None
    _module: Any = field(default=None, repr=False)
    auto_timesteps: bool = False  # T came from --timesteps auto (the delay depth + window)

    def to_torch(self):
        """The trainable PyTorch module for the SNN graph (built once, then reused)."""
        if self._module is None:
            from snnc.backends.pytorch import build_module

            self._module = build_module(self.graph)
        return self._module

    def delay_depth(self):
        """Shortest and longest input-to-readout path in synaptic-delay steps
        (compiler/core/delays.py)."""
        from snnc.compiler.core.delays import delay_depth

        return delay_depth(self.graph)

    def evaluate(self, data, *, timesteps=None, limit: int | None = None,
                 batch_size: int = 200, ann: bool = True, rates: bool = True,
                 device="auto"):
        """Accuracy of the ANN and of the SNN on `data` (a dataset name or path as `--data`
        takes, a DataSpec, a torch Dataset or DataLoader, an iterable of (x, y) batches, or an
        (x, y) pair of tensors), at the compiled T or at each T of `timesteps`, the SNN on
        `device` ("auto" | "cpu" | "cuda"); changes nothing
        (backends/pytorch/evaluate.py, docs/pytorch-backend.md "Evaluation")."""
        from snnc.backends.pytorch.evaluate import evaluate

        return evaluate(self, data, timesteps=timesteps, limit=limit, batch_size=batch_size,
                        ann=ann, rates=rates, device=device)

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

    def emit(self, kinds: Sequence[str], directory: str | Path | None = None) -> Path:
        """Add the backends' artifacts (`lava`, `nir`; `torch` is always there) to the output
        directory (default `self.path`), in place and atomically, from its current weights
        (`snnc export DIR --emit ...`). The directory must hold this object's weights: after
        changing them, `save` instead. Returns the directory."""
        from snnc.compiler.core import outdir

        directory = Path(directory) if directory is not None else self.path
        if directory is None:
            raise SnncError("emit: this Compiled has no output directory yet; call "
                            "c.save(DIR, emit=[...]) first.")
        d = outdir.read(directory)
        stored = d.graph()
        if stored != self.graph or not stored.same_params(self.graph):
            raise SnncError(f"{directory}: holds other weights than this Compiled; write them "
                            f"with c.save({str(directory)!r}, force=True) instead.")
        outdir.rewrite(d, emit=kinds, render=render)
        return Path(directory)

    def save(self, directory: str | Path, *, emit: Sequence[str] = ("torch",),
             cost: bool = True, plot: bool = False, force: bool = False,
             sources: Sequence[str | Path] = (), cost_rates=None,
             cost_target: str | None = None) -> Path:
        """Write the output directory atomically (docs/outputs.md): everything or nothing.

        A directory holding trained weights is replaced only with `force`; a non-empty folder
        snnc did not write never is. `sources` are paths the output must not swallow.
        `cost_rates`/`cost_target` change the cost report's activity and target."""
        from snnc.compiler.core import outdir

        directory = Path(directory)
        module = self._module
        graph = module.to_graph() if module is not None else self.graph
        outdir.write(directory, graph, ann=self.ann, options=self.options.as_dict(),
                     source=self.source, source_sha256=_sha256(self.source), emit=emit,
                     cost=cost, plot=plot, cost_rates=cost_rates, cost_target=cost_target,
                     trained=self.trained, sources=sources, force=force, render=render)
        self.path = directory
        return directory


def render(graph: Graph, ann: Graph | None, d: Path, *, emit: Sequence[str], cost: bool,
           plot: bool, target: str, rates=None) -> None:
    """Write the files derived from `graph`'s weights into `d` (the output directory's
    `render` step, docs/outputs.md): `lava/`, `model.nir` and the cost report."""
    from snnc.compiler.core.atomic import stage

    for kind in emit:
        if kind == "lava":
            from snnc.backends.lava import export as lava_export

            lava_export(graph, d / "lava")
        elif kind == "nir":
            from snnc.backends.nir import export as nir_export

            nir_export(graph, d / "model.nir")
    stage("fill:artifacts")
    if cost:
        report = cost_report(graph, target=target, ann=ann, rates=rates)
        (d / "cost.json").write_text(report.dumps() + "\n")
        (d / "cost.md").write_text(report.to_markdown())
        if plot:
            report.plot(d / "cost.png", sweep=cost_sweep(graph, target))


def train(directory: str | Path, data="digits", epochs: int = 1, *,
          out: str | Path | None = None, force: bool = False, **kwargs):
    """Train the SNN of output directory `directory` into `out` (default: the directory
    itself) and regenerate every derived file from the trained weights (`snnc train DIR -o
    OUT`; docs/outputs.md). Keyword arguments go to snnc.backends.pytorch.train (epochs, lr,
    optimizer, schedule, limit, val, device, test_data, resume, ...). `data`: a dataset name,
    a snnc.data DataSpec, or a torch Dataset / DataLoader. Returns its TrainResult."""
    from snnc.backends.pytorch.training import train as train_module

    return train_module(directory, data, epochs, out=out, force=force, render=render, **kwargs)


def record_activity(graph: Graph, data, *, samples: int = 16, module=None,
                    source: str = "calibration", batch_size: int = 16):
    """Measured-mode activity of SNN `graph` on `data`: the PyTorch backend records every
    synaptic input (backends/pytorch/activity.py) and the result is the cost model's
    :class:`~snnc.costmodel.Activity` (docs/costmodel.md "Measured mode").

    `data`: what snnc.data.load_dataset reads (a name, a DataSpec, a torch Dataset or
    DataLoader), a .pt/.npy file of samples, or a tensor [N, ...] ([T, N, ...] for events);
    `module`: a trained SNNModule (default: built from `graph`'s parameters); `source`:
    "calibration" or "measured" (after training).
    """
    from snnc.backends.pytorch.activity import calibration_samples
    from snnc.backends.pytorch.activity import record_activity as record
    from snnc.costmodel import Activity

    import torch

    if not isinstance(data, torch.Tensor):  # a name, a path, a DataSpec, a torch Dataset
        x, what = calibration_samples(str(data) if isinstance(data, os.PathLike) else data,
                                      graph, samples)
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
    if "weights" not in kwargs:
        kwargs["weights"] = _deployed_weights(graph)
    return estimate(graph, t, lowered=_lowered(graph, t), **kwargs)


def _deployed_weights(graph: Graph) -> dict | None:
    """The weights the Lava lowering deploys for the layers trained with their BN folded
    (target-exact loihi2, `--bn shared`): the cost model counts their non-zeros, not the
    float weights' (backends/lava/lowering.py `folded_weights`)."""
    from snnc.compiler.core.relays import exact_loihi2

    if graph.params is None or not exact_loihi2(graph) or not graph.by_op("batchnorm"):
        return None
    from snnc.backends.lava.lowering import folded_weights

    return folded_weights(graph) or None


def cost_sweep(graph: Graph, target="generic", **kwargs) -> list:
    """[(rate, report)] of `graph` on `target` at a range of one-rate priors (the
    rate-sensitivity sweep of `--plot`), lowered as in :func:`cost_report`."""
    from snnc.compiler.targets import load_target
    from snnc.costmodel import sweep

    t = load_target(target)
    if "weights" not in kwargs:
        kwargs["weights"] = _deployed_weights(graph)
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


def _sha256(path: str) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def load(directory: str | Path) -> Compiled:
    """Rebuild a `Compiled` from an output directory (`Compiled.save`, `snnc compile`, `snnc
    train`, the search's `best/`); every file is checked against the manifest's sha256 first."""
    from snnc.compiler.core import outdir

    d = outdir.read(directory)
    try:
        options = Options.from_dict(d.manifest.get("options") or {})
    except (KeyError, TypeError, ValueError) as err:
        raise ImportFailed(f"{directory}: manifest options not understood ({err}). Recompile "
                           f"the model.") from None
    return Compiled(ann=d.ann(), graph=d.graph(), options=options,
                    source=d.manifest.get("source", ""), path=Path(directory),
                    trained=d.trained)
