"""Training loop behind `snnc train`: BPTT with surrogate gradients, checkpoints, resume.

Loss: cross-entropy on the readout's u_T / T (paper 2 eq. 19). Optimiser SGD (momentum) or
Adam, LR schedule cosine | step | none. After every epoch the weights, the optimiser state
and the history go to OUT/checkpoints/epoch-<k>.safetensors and then train_state.json (the
commit point, written atomically): a run killed at any moment resumes after its last finished
epoch, with the same data order (the shuffle of epoch k is seeded with seed + k). Where runs
read and write, and what they may overwrite: snnc.backends.pytorch.checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from snnc.backends.pytorch import checkpoints
from snnc.backends.pytorch.io import load_module, save_module
from snnc.backends.pytorch.module import SNNModule
from snnc.compiler.core.errors import SnncError


@dataclass
class TrainResult:
    """What a run produced: final test accuracy, per-epoch history, firing rates, files."""

    accuracy: float
    history: list[dict] = field(default_factory=list)
    rates: dict[str, list[float]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _batches(module: SNNModule, ds, batch_size: int, shuffle_seed: int | None):
    n = len(ds)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed)) \
        if shuffle_seed is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x = ds.x[idx]
        if x.dim() == 5:  # events [B, T, 2, H, W] -> [T, B, 2, H, W]
            x = x.transpose(0, 1).contiguous()
        yield x, ds.y[idx]


def _dataset_for(module: SNNModule, data: str, split: str, limit: int | None):
    from snnc.data import load_dataset

    shape = module.graph.input_nodes()[0].shape
    enc = [n for n in module.graph.nodes if n.op == "encoder"]
    events = bool(enc) and enc[0].attrs.get("kind") == "events"
    if events and not data.endswith("-events") and data in ("digits", "mnist", "fashion-mnist"):
        data = data + "-events"
    size = shape[-1] if len(shape) == 4 else None
    ds = load_dataset(data, split, limit=limit, size=size,
                      channels=shape[1] if len(shape) == 4 else 1, timesteps=module.timesteps)
    want = tuple(shape[1:])
    got = tuple(ds.x.shape[2:] if ds.x.dim() == 5 else ds.x.shape[1:])
    if len(shape) == 2:
        ds = type(ds)(ds.name, ds.x.flatten(1 if ds.x.dim() == 4 else 2), ds.y, ds.classes)
        got = tuple(ds.x.shape[-1:])
    if got != want:
        raise SnncError(f"dataset '{data}' gives samples of shape {list(got)} but graph "
                        f"'{module.graph.name}' takes {list(want)} (its input node). Compile the "
                        f"model for that input size, or pick a matching dataset.")
    return ds


def evaluate(module: SNNModule, ds, batch_size: int = 256) -> float:
    """Top-1 accuracy of `module` on dataset `ds` (eval mode, no gradients)."""
    module.eval()
    correct = 0
    with torch.no_grad():
        for x, y in _batches(module, ds, batch_size, None):
            correct += (module(x).argmax(-1) == y).sum().item()
    return correct / max(len(ds), 1)


def recalibrate_bn(module: SNNModule, ds, batch_size: int, batches: int, seed: int) -> int:
    """Recompute every batchnorm/bntt running statistic as the plain average over `batches`
    training batches with the final weights ("precise BN"); returns the batches used.

    The running averages kept during training lag behind weights that moved fast (short runs
    with Adam): their eval accuracy can sit near chance while batch statistics do well."""
    norms = [m for m in module.layers.values() if hasattr(m, "running_mean")]
    if not norms or batches <= 0:
        return 0
    saved = [m.momentum for m in norms]
    module.train()
    used = 0
    with torch.no_grad():
        for k, (x, _) in enumerate(_batches(module, ds, batch_size, seed)):
            if k >= batches:
                break
            for m in norms:
                m.momentum = 1.0 / (k + 1)  # cumulative average; k = 0 overwrites
            module(x)
            used += 1
    for m, mom in zip(norms, saved):
        m.momentum = mom
    return used


def _optimizer(module, name, lr, momentum, weight_decay):
    if name == "sgd":
        return torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    raise SnncError(f"unknown optimiser '{name}': use sgd or adam")


def _scheduler(opt, name, epochs):
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(epochs // 3, 1), gamma=0.1)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    raise SnncError(f"unknown LR schedule '{name}': use cosine, step or none")


def train(dir_or_module, data: str = "digits", epochs: int = 1, *, timesteps: int | None = None,
          batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
          momentum: float = 0.9, weight_decay: float = 0.0, schedule: str = "cosine",
          limit: int | None = None, test_limit: int | None = None, out: str | Path | None = None,
          resume: bool = True, force: bool = False, seed: int = 0, progress: bool = True,
          max_steps: int | None = None, recalibrate: int = 8, render=None) -> TrainResult:
    """Train an SNN module (or the one in output directory `dir_or_module`) on dataset `data`.

    A directory's trained weights go to `out` (default: the directory itself), a new output
    directory whose cost report, ``lava/`` and ``model.nir`` are regenerated from them, with
    checkpoints in ``<out>/checkpoints``; a rerun resumes after the last finished epoch (unless
    `resume` is False). A directory already holding trained weights is trained again only with
    `force` (see snnc.backends.pytorch.checkpoints). A module with `out` is first written there.
    `render` regenerates the derived files (`snnc.compiler.train` passes the API's; without it
    they are removed from the trained directory).
    Returns the final test accuracy, the history and per-layer, per-step firing rates (also in
    ``<out>/train_report.json`` and ``rates.png``). After the last epoch the normalisation
    statistics are recomputed over `recalibrate` training batches (0 keeps the running
    averages; see :func:`recalibrate_bn`)."""
    from snnc.compiler.core import outdir

    if isinstance(dir_or_module, (str, Path)):
        directory = Path(dir_or_module)
        module = load_module(directory)
    else:
        module, directory = dir_or_module, None
        if out is not None:
            directory = Path(out)
            ck = directory / checkpoints.CHECKPOINTS / checkpoints.STATE
            if not (resume and outdir.is_output_dir(directory) and ck.is_file()):
                save_module(module, None, directory, force=force)
            out = None
    if timesteps is not None:
        module.timesteps = int(timesteps)
    config = {"data": data, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "optimizer": optimizer, "momentum": momentum, "weight_decay": weight_decay,
              "schedule": schedule, "timesteps": module.timesteps, "limit": limit,
              "test_limit": test_limit, "seed": seed}
    if directory is None:
        return _fit(module, None, config, progress, max_steps, recalibrate)
    target = Path(out) if out is not None else directory
    with checkpoints.run_lock(target):
        run = checkpoints.open_run(directory, out, config, resume=resume, force=force)
        for note in run.notes:
            print(f"snnc: {note}", flush=True)
        if out is not None or isinstance(dir_or_module, (str, Path)):
            module = _reload(module, run)
        res = _fit(module, run, config, progress, max_steps, recalibrate)
        res.files = checkpoints.commit(run, module, res, config, render)
    return res


def _reload(module: SNNModule, run) -> SNNModule:
    """The module of the run's output directory (the copy of DIR, or DIR), same time steps."""
    m = load_module(run.out)
    m.timesteps = module.timesteps
    return m


def _fit(module: SNNModule, run, config: dict, progress: bool, max_steps: int | None,
         recalibrate: int) -> TrainResult:
    from tqdm import tqdm

    epochs, batch_size, seed = config["epochs"], config["batch_size"], config["seed"]
    torch.manual_seed(seed)
    train_ds = _dataset_for(module, config["data"], "train", config["limit"])
    test_ds = _dataset_for(module, config["data"], "test", config["test_limit"])
    opt = _optimizer(module, config["optimizer"], config["lr"], config["momentum"],
                     config["weight_decay"])
    start, history = 0, []
    if run is not None and run.state is not None:
        sched = checkpoints.restore(run.ck, run.state, module, opt,
                                    lambda o: _scheduler(o, config["schedule"], epochs))
        start, history = run.state["epoch"], run.state["history"]
    else:
        sched = _scheduler(opt, config["schedule"], epochs)
    for epoch in range(start, epochs):
        module.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(_batches(module, train_ds, batch_size, seed + epoch), disable=not progress,
                   total=-(-len(train_ds) // batch_size), desc=f"epoch {epoch + 1}/{epochs}")
        for step, (x, y) in enumerate(bar):
            if max_steps is not None and step >= max_steps:
                break
            logits = module(x)
            loss = F.cross_entropy(logits, y)  # paper 2 eq. 19
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(-1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        sched.step()
        acc = evaluate(module, test_ds)
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                        "train_acc": correct / max(seen, 1), "test_acc": acc,
                        "seconds": time.perf_counter() - t0,
                        "samples_per_s": seen / (time.perf_counter() - t0)})
        if progress:
            print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}  test accuracy {acc:.4f}")
        if run is not None:
            checkpoints.save(run.ck, epoch + 1, module, opt, history, config)
    config["recalibrated_batches"] = recalibrate_bn(module, train_ds, batch_size, recalibrate,
                                                    seed)
    module.reset_rates()
    module.record_rates = True
    acc = evaluate(module, test_ds)
    module.record_rates = False
    rates = {k: v.tolist() for k, v in module.rates().items()}
    return TrainResult(acc, history, rates)
