"""`snnc experiment NAME`: rerun one of the seed papers' claims (docs/results.md).

Registered by snnc.compiler.cli as the `experiment` subcommand (click command
`experiment_cmd`).
"""

from __future__ import annotations

import click

from snnc.experiments.core import EXPERIMENTS, SCALES


@click.command("experiment")
@click.argument("name", type=click.Choice(list(EXPERIMENTS)))
@click.option("--seeds", type=int, default=None,
              help="seeds per variant [default: the scale's: 1 smoke, 3 full]")
@click.option("--scale", type=click.Choice(list(SCALES)), default="smoke", show_default=True,
              help="smoke: seconds, plumbing only (CI); full: docs/results.md's scale; probe: "
                   "full's settings on 1,000 images, to time a full run")
@click.option("-o", "--out", default=None, help="output directory [default: results/NAME]")
@click.option("--resume", is_flag=True,
              help="continue the experiment in -o: finished runs are not redone")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="runs trained at once (spawned processes)")
@click.option("--threads", type=int, default=1, show_default=True,
              help="torch threads per run")
def experiment_cmd(name, seeds, scale, out, resume, jobs, threads):
    """Run experiment NAME: train its variants x seeds with snnc, write OUT/results.json
    (every run's settings, seed, accuracy, firing rates, SOPs, energy, wall and CPU time) and
    the plots, and print the verdict on the paper's claim."""
    from snnc.experiments.core import run_experiment

    res = run_experiment(name, scale=scale, seeds=seeds, out=out, resume=resume, jobs=jobs,
                         threads=threads, log=lambda m: click.echo(m, err=True))
    click.echo(f"{name} ({res['cites']}): {res['claim']}")
    metric = res["summary"].get("metric")
    for v, row in res["summary"]["variants"].items():
        if metric:  # e.g. bo-vs-rs: evaluations, not an accuracy
            click.echo(f"  {v:>16}: {metric} {row['mean']:.2f} ± {row['std']:.2f} "
                       f"({row['n']} seed(s))")
            continue
        rate = (f", mean firing rate {row['mean_rate']['mean']:.4f}" if "mean_rate" in row
                else "")  # an ANN has none
        click.echo(f"  {v:>16}: test accuracy {100 * row['mean']:.2f} ± {100 * row['std']:.2f} % "
                   f"({row['n']} seed(s)){rate}")
    for v in res["summary"]["verdicts"]:
        click.echo(f"  {v['claim']}: {v['verdict']}")
