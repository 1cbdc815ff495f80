"""`snnc train DIR [-o OUT] --data NAME|PATH`: train a compiled SNN (docs/outputs.md,
docs/pytorch-backend.md "Training"). In the CLI layer: it regenerates the derived files through
the API (`snnc.compiler.api.train`)."""

from __future__ import annotations

import click

from snnc.data.options import data_options, device_option


@click.command("train")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@data_options()
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
@click.option("--val", type=int, default=None,
              help="hold N training samples out for validation: logged per epoch, and the "
                   "best epoch's weights are kept")
@device_option()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="start over instead of resuming")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="write the trained directory here (a new output directory; default: "
                   "DIRECTORY itself)")
@click.option("--force", is_flag=True,
              help="allow replacing trained weights (training a trained directory again)")
@click.option("--recalibrate-bn", "recalibrate", type=int, default=8, show_default=True,
              help="recompute BN/BNTT statistics over N training batches after the last epoch, "
                   "kept only if the validation accuracy does not drop (0: off)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
def train_cmd(directory, data, epochs, timesteps, batch_size, lr, optimizer, momentum,
              weight_decay, schedule, limit, test_limit, val, device, seed, no_resume, output,
              force, recalibrate, threads):
    """Train the SNN in DIRECTORY (written by `snnc compile`) with BPTT and surrogate gradients.

    Writes the trained directory to OUT (-o; default DIRECTORY itself, atomically): the
    trained weights in graph.safetensors, the cost report, lava/ and model.nir regenerated
    from them, train_report.json (per-epoch loss/accuracy), rates.png and curves.png. With
    --val N the best validation epoch's weights are kept (else the last epoch's); the test
    split is read only for the final accuracy. Checkpoints after every epoch
    (OUT/checkpoints); rerunning resumes after the last finished epoch. A directory that
    already holds trained weights is trained again only with --force. Prints the accuracy and
    a firing-rate table."""
    import torch
    from rich.console import Console

    from snnc.backends.pytorch.plots import rates_table
    from snnc.compiler.api import train

    if threads:
        torch.set_num_threads(threads)
    res = train(directory, data=data, epochs=epochs, timesteps=timesteps, batch_size=batch_size,
                lr=lr, optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                schedule=schedule, limit=limit, test_limit=test_limit, seed=seed,
                resume=not no_resume, recalibrate=recalibrate, out=output, force=force,
                val=val, device=device)
    console = Console(width=max(160, Console().width))
    console.print(rates_table(res.rates))
    console.print(f"weights kept: {res.weights}; device: {res.device}")
    if res.val_accuracy is not None:
        console.print(f"validation accuracy: {res.val_accuracy:.4f}")
    console.print(f"test accuracy: {res.accuracy:.4f}")
    for f in res.files:
        console.print(f"wrote {f}")
