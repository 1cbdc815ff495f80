"""`snnc eval DIR --data D`: the accuracy of a compiled net, ANN and SNN, against T, with
per-layer firing rates; changes nothing in DIR (docs/pytorch-backend.md "Evaluation").
`--backend lava` runs Lava's Loihi 2 simulator instead, in the Lava environment, and reports
its agreement with the PyTorch model (docs/lava.md "Evaluating in the simulator")."""

from __future__ import annotations

import click

from snnc.data.options import data_options, device_option


def _timesteps_list(ctx, param, value):
    if value is None:
        return None
    try:
        ts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list like 1,2,4,8") from None
    if not ts or min(ts) < 1:
        raise click.BadParameter(f"{value!r}: give positive integers like 1,2,4,8")
    return ts


@click.command("eval")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@data_options()
@click.option("-T", "--timesteps", callback=_timesteps_list, default=None, metavar="T1,T2,...",
              help="accuracy against T (default: the compiled T)")
@click.option("--limit", type=int, default=None, help="evaluate the first N test samples")
@click.option("--batch-size", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object to stdout")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="write the accuracy-against-T plot to this PNG (never inside DIRECTORY "
                   "unless you name it)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
@device_option()
@click.option("--backend", type=click.Choice(["pytorch", "lava"]), default="pytorch",
              show_default=True,
              help="lava: run Lava's Loihi 2 simulator on the test split (--limit samples, "
                   "default 100) in the Lava environment ($SNNC_LAVA_PYTHON or .venv-lava, "
                   "scripts/setup-lava.sh) with an estimated time and a progress bar, and "
                   "report its agreement with the PyTorch model")
@click.pass_context
def eval_cmd(ctx, directory, data, timesteps, limit, batch_size, as_json, plot, threads, device,
             backend):
    """Accuracy of the compiled net in DIRECTORY: the ANN's, the SNN's at the compiled T (and
    at each T of --timesteps), per-layer firing rates. Changes nothing in DIRECTORY."""
    import json

    if backend == "lava":
        ctx.exit(_eval_lava(ctx, directory, data, limit, as_json))

    import torch
    from rich.console import Console

    from snnc.compiler.api import load

    if threads:
        torch.set_num_threads(threads)
    c = load(directory)
    res = c.evaluate(data, timesteps=timesteps, limit=limit, batch_size=batch_size,
                     device=device)
    if plot:
        from snnc.backends.pytorch.plots import accuracy_plot

        accuracy_plot(res, plot, title=f"{c.graph.name} ({c.options.target}, "
                                       f"residual {c.options.residual})")
    if as_json:
        out = dict(res, by_timesteps={str(k): v for k, v in res["by_timesteps"].items()})
        click.echo(json.dumps(out, indent=1))
        return
    console = Console(width=max(120, Console().width))
    console.print(accuracy_table(res))
    if res["rates"]:
        console.print(rates_summary(res["rates"]))
    if plot:
        console.print(f"wrote {plot}")


def _eval_lava(ctx, directory, data, limit, as_json) -> int:
    """`snnc eval DIR --backend lava`: `python -m snnc.backends.lava.evaluate` in the Lava
    environment (backends/lava/evaluate.py `lava_python`); its exit code."""
    from click.core import ParameterSource

    from snnc.backends.lava.evaluate import run_in_lava_env
    from snnc.compiler.core.errors import SnncError

    given = [f"--{p.replace('_', '-')}" for p in ("timesteps", "plot", "batch_size", "threads",
                                                  "device")
             if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE]
    if given:
        raise SnncError(f"{', '.join(given)}: not used with --backend lava (the simulator runs "
                        f"the compiled T, one sample at a time, on the CPU); drop them.")
    argv = [str(directory), "--data", data.source, "--limit", str(100 if limit is None else limit)]
    if data.keys:
        argv += ["--keys", ",".join(data.keys)]
    if data.layout:
        argv += ["--layout", data.layout]
    if data.mean is not None:
        argv += ["--mean", ",".join(map(str, data.mean)), "--std", ",".join(map(str, data.std))]
    if as_json:
        argv.append("--json")
    return run_in_lava_env(argv)


def accuracy_table(res: dict):
    """A rich table: ANN accuracy, then SNN accuracy for every T evaluated."""
    from rich.table import Table

    t = Table(title=f"accuracy on {res['samples']} test samples")
    t.add_column("network")
    t.add_column("T", justify="right")
    t.add_column("accuracy", justify="right")
    t.add_column("drop vs ANN", justify="right")
    ann = res["ann_accuracy"]
    if ann is not None:
        t.add_row("ANN", "-", f"{ann:.4f}", "")
    for k, v in res["by_timesteps"].items():
        mark = " (compiled T)" if k == res["timesteps"] else ""
        t.add_row("SNN" + mark, str(k), f"{v:.4f}",
                  "" if ann is None else f"{100 * (ann - v):+.2f} pt")
    return t


def rates_summary(rates: dict):
    """A rich table of mean firing rates per lif layer (spikes per neuron per step)."""
    from rich.table import Table

    t = Table(title="firing rates (mean over neurons, samples and steps)")
    t.add_column("layer")
    t.add_column("rate", justify="right")
    for k, v in rates.items():
        t.add_row(k, f"{v:.4f}")
    return t
