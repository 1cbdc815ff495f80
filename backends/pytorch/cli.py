"""`snnc train DIR --data NAME|PATH`: train a compiled SNN (docs/design.md "Interfaces")."""

from __future__ import annotations

import click


@click.command("train")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data", required=True,
              help="digits | mnist | fashion-mnist (add -events for simulated event frames), "
                   "a directory of IDX files, or an .npz")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("-T", "--timesteps", type=int, default=None, help="override the compiled T")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step", "none"]), default="cosine",
              show_default=True)
@click.option("--limit", type=int, default=None, help="train on the first N samples")
@click.option("--test-limit", type=int, default=None, help="test on the first N samples")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="start over instead of resuming")
@click.option("--recalibrate-bn", "recalibrate", type=int, default=8, show_default=True,
              help="recompute BN/BNTT statistics over N training batches after the last epoch "
                   "(0: keep the running averages)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
def train_cmd(directory, data, epochs, timesteps, batch_size, lr, optimizer, momentum,
              weight_decay, schedule, limit, test_limit, seed, no_resume, recalibrate, threads):
    """Train the SNN in DIRECTORY (written by `snnc compile`) with BPTT and surrogate gradients.

    Checkpoints after every epoch (DIR/checkpoints); rerunning resumes after the last finished
    epoch. Writes the trained weights to DIR/model.safetensors, DIR/train_report.json and
    DIR/rates.png, and prints the accuracy and a firing-rate table."""
    import torch
    from rich.console import Console

    from snnc.backends.pytorch.plots import rates_table
    from snnc.backends.pytorch.training import train

    if threads:
        torch.set_num_threads(threads)
    res = train(directory, data=data, epochs=epochs, timesteps=timesteps, batch_size=batch_size,
                lr=lr, optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                schedule=schedule, limit=limit, test_limit=test_limit, seed=seed,
                resume=not no_resume, recalibrate=recalibrate)
    console = Console(width=max(160, Console().width))
    console.print(rates_table(res.rates))
    console.print(f"test accuracy: {res.accuracy:.4f}")
    for f in res.files:
        console.print(f"wrote {f}")
