"""The compiler's subcommands: `snnc inspect`, `snnc compile`, `snnc passes`, `snnc targets`."""

from __future__ import annotations

from pathlib import Path

import click

from snnc.compiler.core.errors import SnncError

_SHAPE_HELP = "Input shape without the batch, e.g. 3,32,32 (needed when the model has none)."


def _shape(ctx, param, value):
    if value is None:
        return None
    try:
        dims = tuple(int(v) for v in value.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a shape like 3,32,32") from None
    if not dims or any(d <= 0 for d in dims):
        raise click.BadParameter(f"{value!r} is not a shape like 3,32,32")
    return dims


def model_argument(f):
    return click.argument("model", metavar="MODEL")(f)


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def conversion_options(f):
    """The compile options (snnc.compiler.core.options.Options, one click option per field, handed
    to the command as `options`) plus --input-shape: shared by `compile` and `inspect --snn`."""
    from snnc.compiler.core.options import cli_options

    f = click.option("--input-shape", callback=_shape, default=None, help=_SHAPE_HELP)(f)
    return cli_options()(f)


def _compile(model: str, options, input_shape=None, progress=None):
    from snnc.compiler.api import compile as snnc_compile

    return snnc_compile(model, options, input_shape=input_shape, progress=progress)


def _check_model_path(model: str) -> None:
    if model.startswith("zoo:"):
        return
    p = Path(model)
    if not p.exists():
        raise SnncError(f"{model}: no such file. Give an ONNX file, an snnc output directory or "
                        f"a zoo model (zoo:resnet20; `python -m snnc.models` lists them).")


@click.command("inspect")
@model_argument
@click.option("--snn", is_flag=True, help="Show the SNN form (after the conversion passes).")
@click.option("--json", "as_json", is_flag=True, help="Print the IR as JSON instead of text.")
@click.option("--check", is_flag=True,
              help="Interpret the ANN-form IR and compare it with the source model "
                   "(onnxruntime or torch) within the tolerance of docs/design.md 'The IR'.")
@conversion_options
def inspect_cmd(model, snn, as_json, check, options, input_shape):
    """Print MODEL's IR, its blocks with adjacency matrices and every skip edge.

    MODEL is an ONNX file, an snnc output directory, a zoo model (zoo:resnet20) or a lava-dl
    netx file (.net, shown as its SNN-form IR).
    """
    from snnc.compiler.core.blocks import find_blocks
    from snnc.compiler.core.serialize import dumps
    from snnc.compiler.core.text import print_ir

    _check_model_path(model)
    if Path(model).suffix == ".net":  # a lava-dl netx file: already an SNN
        from snnc.compiler.frontends.netx import read_netx

        if check:
            raise SnncError(f"{model}: --check compares an ANN with its source; a netx file "
                            f"holds an SNN (use `snnc inspect {model}` or `snnc cost`)")
        g = read_netx(model)
    elif Path(model).is_dir():
        from snnc.compiler.api import load

        c = load(model)
        g = c.graph if snn or not check else c.ann
        if g is None:
            raise SnncError(f"{model}: holds no ANN form (ann.json; written from a module "
                            f"alone, e.g. a search's best/), so --check has nothing to compare. "
                            f"Check the original model instead.")
    elif snn:
        g = _compile(model, options, input_shape).graph
    else:
        from snnc.compiler.api import import_ann

        g = import_ann(model, input_shape=input_shape)
    if as_json:
        click.echo(dumps(g))
        return
    click.echo(print_ir(g), nl=False)
    click.echo(describe_skips(g, find_blocks(g)), nl=False)
    click.echo(describe_quantization(g), nl=False)
    if check:
        report = check_source(g, model)
        click.echo(str(report))
        if not report.ok:
            raise SnncError(f"{model}: the ANN-form IR does not reproduce the source model "
                            f"within tolerance ({report}). Please report this as a bug.")


def check_source(g, model: str):
    """Interpret the ANN-form `g` on seeded random inputs and compare with its source model
    (onnxruntime for an ONNX file, torch for a zoo model) within the tolerance of
    docs/design.md "The IR"."""
    import torch

    from snnc.compiler.compare import check_equivalence

    if g.form.value != "ann":
        raise SnncError(f"{model}: --check compares the ANN-form IR with its source; drop --snn.")
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(*n.shape, generator=gen) for n in g.input_nodes()]
    if model.startswith("zoo:"):
        from snnc.compiler.api import zoo_module

        reference = zoo_module(model[4:])
    else:
        reference = model
    return check_equivalence(g, reference, xs)


def describe_skips(g, blocks) -> str:
    """Blocks with their adjacency matrices, then every skip edge (kind, hops, payload)."""
    lines = [f"\n# {len(blocks)} block(s)"]
    for b in blocks:
        lines.append(f"block {b.index} {b.name}: input %{b.input} -> output %{b.output}, "
                     f"layers {', '.join('%' + n for n in b.layers)}")
        m = b.matrix
        lines.append("  adjacency (row = source, col = destination; 0 none, 1 DSC, 2 ASC):")
        for row in m:
            lines.append("    " + " ".join(str(int(v)) for v in row))
    skips = g.skip_edges()
    lines.append(f"\n# {len(skips)} skip edge(s)")
    for e in skips:
        extra = f" via %{e.projection}" if e.projection else ""
        pay = f" payload={e.payload}" if e.payload else ""
        attrs = "".join(f" {k}={v}" for k, v in e.attrs.items())
        lines.append(f"  {e.kind.value:3s} %{e.src} -> %{e.dst} port {e.port} hops={e.hops}"
                     f"{extra}{pay}{attrs}")
    return "\n".join(lines) + "\n"


def describe_quantization(g) -> str:
    """The quantize pass's per-layer record (docs/passes.md "Quantisation"): exponent, step,
    levels used, relative L2 error; layers under 16 levels are flagged."""
    rows = [n for n in g.nodes if "weight_exp" in n.attrs]
    if not rows:
        return ""
    lines = [f"\n# quantisation ({g.attrs.get('weight_bits', '?')}-bit mantissa; scale = the "
             f"neuron's power-of-two scale, exp = the layer's grid exponent)",
             f"  {'layer':28s} {'scale':>8s} {'exp':>4s} {'step':>10s} {'levels':>7s} "
             f"{'rel L2 err':>10s}"]
    for n in rows:
        a = n.attrs
        lv, err = a.get("weight_levels"), a.get("weight_qerr")
        flag = "  WARNING: fewer than 16 levels" if lv is not None and lv < 16 else ""
        flag += f"  CLIPPED {a['clipped']}" if a.get("clipped") else ""
        lines.append(f"  {n.name:28s} {a.get('neuron_scale', 1.0):>8.4g} {a['weight_exp']:>4d} "
                     f"{a['weight_step']:>10.4g} "
                     f"{'-' if lv is None else lv:>7} {'-' if err is None else err:>10}{flag}")
    return "\n".join(lines) + "\n"


@click.command("compile")
@model_argument
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Output directory (default ./<model-stem>.snnc/).")
@click.option("--emit", default="torch", show_default=True,
              help="Comma-separated backends to emit: torch, lava, nir.")
@click.option("--cost/--no-cost", default=True, show_default=True,
              help="Write the cost model's report (cost.json, cost.md).")
@click.option("--plot/--no-plot", default=False, show_default=True,
              help="Also draw cost.png (per-layer breakdown and rate sweep; about 1 s more).")
@click.option("--force", is_flag=True,
              help="Replace an output directory that holds trained weights.")
@conversion_options
@click.pass_context
def compile_cmd(ctx, model, output, emit, cost, plot, force, options, input_shape):
    """Compile MODEL into an SNN and write the output directory.

    MODEL is an ONNX file, a zoo model (zoo:resnet20) or an snnc output directory (recompiled
    from its stored ANN form; options not given keep the directory's). The directory
    (docs/outputs.md) holds manifest.json, graph.json + graph.safetensors (the SNN and the
    PyTorch module's weights), ann.json + ann.safetensors, graph.snnc, the cost report and
    whatever --emit asks for; it is written atomically. A non-empty folder snnc did not write
    is never replaced, nor one holding trained weights without --force.
    """
    from click.core import ParameterSource

    from snnc.compiler.core import outdir
    from snnc.compiler.core.options import Options, option_names

    _check_model_path(model)
    kinds = [k.strip() for k in emit.split(",") if k.strip()]
    src = Path(model)
    if src.is_dir():
        stored = Options.from_dict(outdir.read(src).manifest.get("options") or {})
        given = {k: getattr(options, k) for k in option_names()
                 if ctx.get_parameter_source(k) not in (None, ParameterSource.DEFAULT)}
        options = stored.replace(**given) if given else stored
        stem = src.resolve().name.removesuffix(".snnc")
    else:
        stem = model[4:] if model.startswith("zoo:") else src.stem
    out = Path(output) if output else Path(f"{stem}.snnc")
    sources = [] if model.startswith("zoo:") else [model]
    outdir.guard_path(out, sources)  # refuse before compiling (checked again under the lock)
    outdir.guard_contents(out, force=force)
    console = _stderr()
    with console.status("compiling") as status:
        c = _compile(model, options, input_shape,
                     progress=lambda name: status.update(f"pass {name}"))
        status.update("writing " + str(out))
        c.save(out, emit=kinds, cost=cost, plot=plot, force=force, sources=sources)
    if options.bn == "auto" and c.ann is not None and c.ann.by_op("batchnorm"):
        why = (f"the {c.options.target} default: a Loihi neuron holds no per-step statistics; "
               f"--bn bntt trains BNTT, which --emit lava refuses")
        if c.options.bn == "fold":
            console.print(f"batch norm folded into weights and biases ({why})")
        elif c.options.bn == "shared" and c.graph.attrs.get("arithmetic") == "lava-fixed":
            console.print(f"batch norm shared over time steps, trained folded into the "
                          f"quantised weights and biases and deployed folded ({why}; --bn "
                          f"fold folds it before training)")
    n_lif = len(c.graph.by_op("lif"))
    console.print(f"[green]compiled[/] {model} -> {out}/ ({len(c.graph.nodes)} nodes, {n_lif} "
                  f"LIF layers, {len(c.graph.skip_edges())} skip edges, "
                  f"residual={c.options.residual}, target={c.options.target}, "
                  f"T={c.options.timesteps})")
    for line in compile_notes(c):
        console.print(line)


def compile_notes(c) -> list[str]:
    """What the user should know about a compiled net: auto T, normalisation, delay depth and
    the quantiser's coarse layers (the warnings are also logged by the passes)."""
    d = c.delay_depth()
    notes = []
    if c.auto_timesteps:
        notes.append(f"--timesteps auto: T = {c.options.timesteps} (shortest delay depth "
                     f"{d.shortest} + window {c.options.window})")
    if "normalized" in c.graph.attrs:
        lams = [n.attrs["lambda"] for n in c.graph.by_op("lif") if "lambda" in n.attrs]
        data = getattr(c.options.normalize, "source", c.options.normalize)
        notes.append(f"normalised on {data} ({c.options.calibration_samples} "
                     f"images, percentile {c.graph.attrs['normalized']}): {len(lams)} layer "
                     f"scales in [{min(lams, default=0):.3g}, {max(lams, default=0):.3g}]")
    if d.delay:
        notes.append(f"delay depth: shortest {d.shortest}, longest {d.longest} steps "
                     f"(T={c.options.timesteps})")
    return notes


@click.command("export")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--emit", required=True, help="Comma-separated backends to emit: lava, nir.")
def export_cmd(directory, emit):
    """Re-emit backends into output DIRECTORY from its current (possibly trained) weights.

    Adds or regenerates lava/ and model.nir in place, atomically; every other file stays as
    it is, and the manifest lists the new files with their sha256.
    """
    from snnc.compiler.api import load

    kinds = [k.strip() for k in emit.split(",") if k.strip()]
    c = load(directory)
    c.emit(kinds)
    _stderr().print(f"[green]exported[/] {', '.join(kinds)} -> {directory}/ (from "
                    f"{'trained' if c.trained else 'compiled'} weights)")


@click.command("passes")
@click.option("--verbose", "-v", is_flag=True, help="Print each pass's full contract.")
def passes_cmd(verbose):
    """List the registered passes with their contracts."""
    from snnc.compiler.core.passmanager import describe
    from snnc.passes import load_builtin_passes


    for name, fn in sorted(load_builtin_passes().items()):
        text = describe(fn)
        if verbose:
            click.echo(f"{name}\n" + "\n".join("  " + ln for ln in text.splitlines()) + "\n")
        else:
            doc = (fn.__doc__ or "").strip().splitlines()
            click.echo(f"{name:22s} {doc[0] if doc else ''}")
            click.echo(f"{'':22s} {text.splitlines()[0]}")


@click.command("targets")
def targets_cmd():
    """List the known targets (files in snnc/compiler/targets and $SNNC_TARGETS)."""
    from snnc.compiler.targets import available_targets, load_target

    for name in available_targets():
        t = load_target(name)
        click.echo(f"{name:16s} {getattr(t, 'description', '')}")
