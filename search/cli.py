"""`snnc search MODEL --data D ...`: the skip-connection search from the command line.

Registered by snnc.compiler.cli as the `search` subcommand (click command `search_cmd`).
"""

from __future__ import annotations

import click

from snnc.compiler import cli_options
from snnc.data.options import data_options, device_option
from snnc.search.loop import OBJECTIVES, SearchConfig


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


@click.command("search")
@click.argument("model")
@data_options(required=False, default="fashion-mnist")
@click.option("--budget", default=50, show_default=True, help="number of evaluations")
@click.option("--batch", "batch", default=4, show_default=True, help="candidates per round (k)")
@click.option("--method", type=click.Choice(["bo", "random"]), default="bo", show_default=True)
@click.option("--objective", type=click.Choice(OBJECTIVES), default="drop", show_default=True)
@click.option("--energy-weight", default=1.0, show_default=True,
              help="drop+energy: percentage points per microjoule")
@click.option("--cost-target", default="loihi1", show_default=True,
              help="target whose energy model prices candidates")
@click.option("--max-energy", type=float, default=None, help="reject candidates above (uJ)")
@click.option("--max-cores", type=int, default=None, help="reject candidates above")
@click.option("--kinds", default="s2s,s2m,v2v", show_default=True,
              help="residual kinds an ASC edge may take")
@click.option("--fractions", default="0.25,0.5,1.0", show_default=True,
              help="channel fractions a DSC edge may take")
@click.option("--blocks", default=None, help="indices of the blocks to search (default: all)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True)
@click.option("--address", default=None, help="Ray cluster address (ray executor)")
@click.option("--workers", default=1, show_default=True, help="local: processes (1 = inline)")
@click.option("--threads", default=1, show_default=True, help="torch threads per evaluation")
@click.option("--cpus-per-task", default=1.0, show_default=True)
@click.option("--gpus-per-task", default=0.0, show_default=True)
@click.option("--retries", default=1, show_default=True, help="retries of a failed evaluation")
@click.option("--seed", default=0, show_default=True)
@click.option("--init", "n_init", default=8, show_default=True,
              help="random evaluations before the GP takes over")
@cli_options(defaults={"timesteps": 4, "encoder": "direct"})
@click.option("--train", "n_train", type=int, default=None,
              help="training samples for fine-tuning [default: 2000, or 2/3 of a training "
                   "split under 3000]")
@click.option("--val", "n_val", type=int, default=None,
              help="validation samples, after the training ones [default: 1000, or 1/3 of a "
                   "training split under 3000]")
@click.option("--parent-train", "n_parent", type=int, default=None,
              help="samples the ANN (--ann-epochs) and the parent are trained on: the first "
                   "N of the training split; validation then follows them [default: --train]")
@device_option()
@click.option("--ann-epochs", default=0, show_default=True,
              help="train an nn.Module / zoo model first (ONNX keeps its weights)")
@click.option("--parent-epochs", default=2, show_default=True)
@click.option("--finetune-epochs", default=1, show_default=True, help="n of paper 1")
@click.option("--schedule", type=click.Choice(["cosine", "none"]), default="cosine",
              show_default=True,
              help="lr schedule of the parent's training and of each fine-tuning (cosine: as "
                   "snnc train's, annealed to 0 over the run; none: constant)")
@click.option("-o", "--out", default=None, help="output directory (default ./<model>.search)")
@click.option("--resume", is_flag=True, help="continue the search journalled in -o")
def search_cmd(model, data, budget, batch, method, objective, energy_weight,
               cost_target, max_energy, max_cores, kinds, fractions, blocks, executor, address,
               workers, threads, cpus_per_task, gpus_per_task, retries, seed, n_init,
               options, n_train, n_val, n_parent, device, ann_epochs, parent_epochs,
               finetune_epochs, schedule, out, resume):
    """Search the skip connections of MODEL's blocks (paper 1): BO or random search.

    The compile options (--target, -T, --encoder, ...) say how the parent SNN is compiled;
    --target's hard limits also constrain the search. --device says where the ANN, the parent
    and every candidate are trained (auto: a GPU when torch sees one; with --gpus-per-task the
    worker's reserved GPU)."""
    from pathlib import Path

    from snnc.search.api import search
    from snnc.search.evaluate import EvalSettings
    from snnc.search.progress import LiveProgress

    out = out or f"./{Path(model).stem.replace(':', '_')}.search"
    cfg = SearchConfig(method=method, budget=budget, batch=batch, seed=seed,
                       objective=objective, energy_weight=energy_weight, n_init=n_init)
    from snnc.compiler import load_target

    target = options.target
    s = EvalSettings(data=data, train=n_train, val=n_val, parent_train=n_parent,
                     options=options, device=device,
                     parent_epochs=parent_epochs, finetune_epochs=finetune_epochs,
                     schedule=schedule,
                     cost_target=cost_target,
                     limits_target=target if load_target(target).limits else None)
    with LiveProgress(budget) as live:
        res = search(model, data=data, out=out, config=cfg, settings=s, executor=executor,
                     workers=workers, threads=threads, retries=retries, address=address,
                     cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, resume=resume,
                     ann_epochs=ann_epochs,
                     blocks=None if blocks is None else tuple(int(b) for b in blocks.split(",")),
                     kinds=tuple(k.strip().upper() for k in kinds.split(",")),
                     fractions=_floats(fractions), max_energy_uj=max_energy,
                     max_cores=max_cores, progress=live.update, log=live.log)
    b = res.best
    click.echo(f"best: eval {b['eval_id']}: drop {b['drop']:.2f} pp "
               f"(SNN {100 * b['snn_acc']:.2f}% vs ANN {100 * b['ann_acc']:.2f}%)"
               + (f", {b['energy_uj']:.3g} uJ" if b.get("energy_uj") is not None else "")
               + f"\n  {b['describe']}\nwrote {res.out}/ (journal.jsonl, best/, plots)")
