"""`snnc cost MODEL --target T --residual R [--rate r | --calibrate DATA] [--format ...]`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from snnc.compiler.errors import SnncError


def _graph(model: str, residual: str, target: str, timesteps: int):
    p = Path(model)
    if p.is_dir():
        from snnc.costmodel import load_compiled

        if not (p / "graph.json").is_file():
            raise SnncError(f"{model}: not a snnc output directory (no graph.json); run "
                            f"`snnc compile` first or pass an ONNX file")
        return load_compiled(p), None
    from snnc.compiler.api import compile as snnc_compile

    c = snnc_compile(model, residual=residual, target=target, timesteps=timesteps)
    return c.graph, c.ann


@click.command("cost")
@click.argument("model")
@click.option("--target", default="generic", show_default=True, help="Target name or YAML file.")
@click.option("--residual", default="s2s", show_default=True,
              type=click.Choice(["s2s", "s2m", "v2v"]))
@click.option("-T", "--timesteps", default=8, show_default=True, type=int)
@click.option("--rate", type=float, default=None, help="Firing-rate prior (one rate).")
@click.option("--calibrate", "data", default=None,
              help="A .pt/.npy tensor of input samples: rates measured by the PyTorch backend.")
@click.option("--format", "fmt", default="table", type=click.Choice(["table", "json", "md"]))
@click.option("--plot", "plot", default=None, help="Write a PNG (breakdown + rate sweep).")
@click.option("--allow-unconfirmed", is_flag=True,
              help="Show energy built on unconfirmed constants as a labelled band.")
def cost_cmd(model, target, residual, timesteps, rate, data, fmt, plot, allow_unconfirmed):
    """Estimate MACs, SOPs, graded edges, cores, energy and latency of MODEL on a target.

    MODEL is an ONNX file, a zoo name (zoo:resnet20) or a `snnc compile` output directory.
    """
    from snnc.costmodel import calibrate, estimate, sweep

    g, ann = _graph(model, residual, target, timesteps)
    rates = rate
    if data is not None:
        rates = calibrate(g, _load_samples(data))
    rep = estimate(g, target=target, rates=rates, ann=ann, allow_unconfirmed=allow_unconfirmed)
    if fmt == "json":
        click.echo(json.dumps(rep.to_json(), indent=1))
    elif fmt == "md":
        click.echo(rep.to_markdown())
    else:
        rep.table()
    if plot:
        rep.plot(plot, sweep=sweep(g, target=target, ann=ann))


def _load_samples(path: str):
    import torch

    p = Path(path)
    if not p.is_file():
        raise SnncError(f"--calibrate {path}: no such file; give a .pt or .npy tensor of input "
                        f"samples shaped [N, C, H, W]")
    if p.suffix == ".npy":
        import numpy as np

        return torch.from_numpy(np.load(p)).float()
    return torch.load(p, weights_only=True).float()
