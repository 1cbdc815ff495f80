"""`snnc cost MODEL|DIR|FILE.net --target T [--rate R | --rate NAME=R ... | --calibrate DATA]`.

MODEL (an ONNX file or ``zoo:NAME``) is compiled with the public compile API, exactly as
`snnc compile` would. DIR (a `snnc compile` output) is loaded with its own target, time steps
and residual mode; a `--target`, `-T` or `--residual` that differs recompiles its stored ANN
form with that option (and says so). FILE.net is a lava-dl netx file (counts and Loihi 2
cores of its layers). The activity is either priors (estimate mode) or recorded on data by the
PyTorch backend (measured mode); docs/costmodel.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.options import cli_options
from snnc.data.options import DATA_HELP, data_options


def _given(names) -> set[str]:
    """The option names the user gave on the command line (not defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return set()
    return {n for n in names if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE}


def _compiled(model: str, options, given: set[str]):
    """(Compiled, notes) of MODEL or DIR (see the module doc); `given`: option names set on
    the command line (for DIR, the others keep the directory's values)."""
    from snnc.compiler.api import compile as snnc_compile
    from snnc.compiler.api import load

    p = Path(model)
    if p.is_dir():
        c = load(p)
        o = c.options
        changed = {k: getattr(options, k) for k in given
                   if getattr(options, k) != getattr(o, k)}
        if not changed:
            return c, []
        if "target" in changed and "encoder" not in given:
            changed["encoder"] = "auto"
        what = ", ".join(f"{k}={v}" for k, v in changed.items())
        return snnc_compile(c.ann, o, **changed), [
            f"{model} was compiled with {o.target}, T={o.timesteps}, {o.residual}; recompiled "
            f"here from its stored ANN form with {what} (trained weights are not used)"]
    if not model.startswith("zoo:") and not p.is_file():
        raise SnncError(f"{model}: no such file or directory; pass an ONNX file, zoo:NAME, a "
                        f"lava-dl .net file or a `snnc compile` output directory")
    return snnc_compile(model, options), []


def parse_rates(values: tuple[str, ...], g=None):
    """`--rate` values -> None, a float, or {name: rate, "*": default}; with graph `g`, every
    NAME must be a lif or spiking-encoder node of it (else SnncError naming the layer)."""
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
    if g is not None:
        layers = [n.name for n in g.nodes if n.op == "lif" or (
            n.op == "encoder" and n.attrs.get("kind", "direct") != "direct")]
        bad = [k for k in out if k != "*" and k not in layers]
        if bad:
            raise SnncError(f"--rate {bad[0]}=...: graph '{g.name}' has no lif layer "
                            f"'{bad[0]}'; its layers are {', '.join(layers[:8])}"
                            f"{' ...' if len(layers) > 8 else ''} (`snnc inspect MODEL --snn`)")
    if list(out) == ["*"]:
        return out["*"]
    out.setdefault("*", 0.1)  # the default prior for the layers not named
    return out


@click.command("cost")
@click.argument("model")
@cli_options()
@click.option("--rate", "rates", multiple=True, metavar="R|NAME=R",
              help="Estimate mode: a firing-rate prior, or NAME=R for a lif layer (repeatable;"
                   " a bare R is the default of the others, else 0.1).")
@data_options(required=False, flag="--calibrate",
              help="Measured mode: record every synaptic input on DATA (its test split): "
                   + DATA_HELP + "; or a .pt/.npy tensor [N, ...].")
@click.option("--samples", default=16, show_default=True, help="Samples used by --calibrate.")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json", "md"]))
@click.option("--plot", "plot", default=None, metavar="FILE",
              help="Write a PNG: per-layer breakdown and the rate-sensitivity sweep.")
@click.option("--allow-unconfirmed", is_flag=True,
              help="Show energy built on unconfirmed constants as a labelled band.")
@click.option("--skip-layers", default=0, show_default=True, type=click.IntRange(0),
              help="FILE.net only: leave out the first layers, as lava-dl's "
                   "netx.hdf5.Network(skip_layers=N) does.")
def cost_cmd(model, options, rates, data, samples, fmt, plot, allow_unconfirmed, skip_layers):
    """Estimate MACs, SOPs, graded edges, cores, energy and latency of MODEL on a target.

    MODEL is an ONNX file, a zoo name (zoo:resnet20) or a `snnc compile` output directory (its
    own target, T and residual mode unless given here; a trained directory is measured on its
    training data unless --rate or --calibrate is given).
    """
    from snnc.compiler.api import cost_report, cost_sweep, record_activity
    from snnc.compiler.core.options import option_names

    if rates and data:
        raise SnncError("--rate and --calibrate both set the activity; give one of them")
    if model.endswith(".net"):
        _netx(model, options, rates, data, skip_layers, fmt, allow_unconfirmed)
        return
    c, notes = _compiled(model, options, _given(option_names()))
    g = c.graph
    act = parse_rates(rates, g)
    trained = c.trained if Path(model).is_dir() and not notes else None
    if data is None and not rates and trained and (trained.get("config") or {}).get("data"):
        data = trained["config"]["data"]  # a trained directory: measured on its own data
        notes.append(f"measured mode on {data} (the directory's training data; --rate R "
                     f"gives the estimate mode)")
    if data is not None:
        act = record_activity(g, data, samples=samples, module=c._module,
                              source="measured" if trained else "calibration")
    t = c.options.target
    rep = cost_report(g, t, rates=act, ann=c.ann, allow_unconfirmed=allow_unconfirmed)
    rep.notes.extend(notes)
    _print(rep, fmt)
    if plot:
        rep.plot(plot, sweep=cost_sweep(g, t, ann=c.ann, allow_unconfirmed=allow_unconfirmed))
        click.echo(f"wrote {plot}", err=True)


def _netx(model, options, rates, data, skip_layers, fmt, allow_unconfirmed) -> None:
    """`snnc cost FILE.net`: the netx network's counts and cores (default target loihi2)."""
    from snnc.compiler.api import cost_report
    from snnc.compiler.frontends.netx import read_netx
    from snnc.compiler.core.options import option_names

    if data is not None:
        raise SnncError(f"{model}: --calibrate needs the PyTorch backend to run the network; a "
                        f"netx file is priced in estimate mode (--rate)")
    if not Path(model).is_file():
        raise SnncError(f"{model}: no such file; give a lava-dl netx .net file")
    given = _given(option_names())
    g = read_netx(model, skip_layers=skip_layers,
                  timesteps=options.timesteps if "timesteps" in given else 16)
    target = options.target if "target" in given else "loihi2"
    rep = cost_report(g, target, rates=parse_rates(rates, g),
                      allow_unconfirmed=allow_unconfirmed)
    _print(rep, fmt)


def _print(rep, fmt: str) -> None:
    if fmt == "json":
        click.echo(rep.dumps())
    elif fmt == "md":
        click.echo(rep.to_markdown())
    else:
        rep.table()
