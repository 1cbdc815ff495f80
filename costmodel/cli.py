"""`snnc cost MODEL|DIR --target T [--rate r | --rate NAME=r ... | --calibrate DATA] ...`.

MODEL is an ONNX file or a zoo name (``zoo:resnet20``): it is compiled for the target first
(as `snnc compile` would). DIR is a `snnc compile` output directory: its SNN graph is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from snnc.compiler.core.errors import ConstraintViolation, SnncError
from snnc.compiler.core.options import cli_options


def _graph(model: str, options):
    """(snn graph, ann graph or None, notes) of MODEL|DIR (see the module doc)."""
    p = Path(model)
    if p.is_dir():
        from snnc.costmodel import load_compiled

        if not (p / "graph.json").is_file():
            raise SnncError(f"{model}: not a snnc output directory (no graph.json); run "
                            f"`snnc compile` first or pass an ONNX file or zoo:NAME")
        ann = None
        if (p / "ann.json").is_file():
            ann = load_compiled(p, graph="ann")
        return load_compiled(p), ann, []
    if not model.startswith("zoo:") and not p.is_file():
        raise SnncError(f"{model}: no such file or directory; pass an ONNX file, zoo:NAME or a "
                        f"`snnc compile` output directory")
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import resolve_encoder

    target = options.target
    options = options.replace(encoder=resolve_encoder(options.encoder, target))
    try:
        c = snnc_compile(model, options)
        return c.graph, c.ann, []
    except ConstraintViolation:  # e.g. a direct encoder on a binary-only target
        from snnc.compiler.api import import_ann
        from snnc.compiler.core.passmanager import run_pipeline
        from snnc.passes.pipeline import conversion_pipeline

        specs = [s for s in conversion_pipeline(options) if s.name != "legalize-graded"]
        ann = import_ann(model)
        note = (f"{target} refuses this network as compiled (see the violations); the "
                f"counts are those of the network before legalisation")
        return run_pipeline(ann, specs), ann, [note]


def parse_rates(values: tuple[str, ...]):
    """`--rate` values -> None, a float, or {name: rate, "*": default} (per-layer rates)."""
    if not values:
        return None
    out: dict[str, float] = {}
    for v in values:
        name, sep, r = v.rpartition("=")
        key = name.strip() if sep else "*"
        try:
            out[key] = float(r)
        except ValueError:
            raise SnncError(f"--rate {v!r}: give a firing rate (--rate 0.1) or a layer's rate "
                            f"(--rate NAME=0.1, NAME a lif node of the SNN graph)") from None
    return out["*"] if list(out) == ["*"] else out


@click.command("cost")
@click.argument("model")
@cli_options()
@click.option("--rate", "rates", multiple=True, metavar="R|NAME=R",
              help="Firing-rate prior: one rate, or NAME=R for a lif layer (repeatable; "
                   "a bare R is the default of the others). Default prior: 0.1.")
@click.option("--calibrate", "data", default=None, metavar="DATA",
              help="Measure rates with the PyTorch backend on DATA: a snnc.data name (digits, "
                   "mnist, fashion-mnist, NAME-events) or a .pt/.npy tensor [N, C, H, W].")
@click.option("--samples", default=16, show_default=True, help="Samples used by --calibrate.")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json", "md"]))
@click.option("--plot", "plot", default=None, metavar="FILE",
              help="Write a PNG: per-layer breakdown and the rate-sensitivity sweep.")
@click.option("--allow-unconfirmed", is_flag=True,
              help="Show energy built on unconfirmed constants as a labelled band.")
def cost_cmd(model, options, rates, data, samples, fmt, plot, allow_unconfirmed):
    """Estimate MACs, SOPs, graded edges, cores, energy and latency of MODEL on a target.

    MODEL is an ONNX file, a zoo name (zoo:resnet20) or a `snnc compile` output directory.
    """
    from snnc.costmodel import calibrate, estimate, sweep

    if rates and data:
        raise SnncError("--rate and --calibrate both set the activity; give one of them")
    target = options.target
    g, ann, notes = _graph(model, options)
    act = parse_rates(rates)
    if data is not None:
        from snnc.costmodel.calibration import calibration_samples

        x, what = calibration_samples(data, g, samples)
        act = calibrate(g, x, note=what)
    rep = estimate(g, target=target, rates=act, ann=ann, allow_unconfirmed=allow_unconfirmed)
    rep.notes.extend(notes)
    if fmt == "json":
        click.echo(json.dumps(rep.to_json(), indent=1))
    elif fmt == "md":
        click.echo(rep.to_markdown())
    else:
        rep.table()
    if plot:
        rep.plot(plot, sweep=sweep(g, target=target, ann=ann,
                                   allow_unconfirmed=allow_unconfirmed))
        click.echo(f"wrote {plot}", err=True)
