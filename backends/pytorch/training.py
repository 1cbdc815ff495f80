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
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from snnc.backends.pytorch import checkpoints
from snnc.backends.pytorch.io import load_module, save_module
from snnc.backends.pytorch.module import SNNModule
from snnc.compiler.core.errors import SnncError


@dataclass
class TrainResult:
    """What a run produced: the final test accuracy (the test split's only use), per-epoch
    history (loss and accuracy on the training batches and the validation split), firing
    rates, files, which weights were kept (`weights`), the validation accuracy of those
    weights, what BN recalibration did (`bn`) and the device."""

    accuracy: float
    history: list[dict] = field(default_factory=list)
    rates: dict[str, list[float]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    weights: str = "last epoch"
    val_accuracy: float | None = None
    bn: dict = field(default_factory=dict)
    device: str = "cpu"


def _batches(module: SNNModule, ds, batch_size: int, shuffle_seed: int | None, device=None):
    n = len(ds)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed)) \
        if shuffle_seed is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x = ds.x[idx]
        if x.dim() == 5:  # events [B, T, 2, H, W] -> [T, B, 2, H, W]
            x = x.transpose(0, 1).contiguous()
        y = ds.y[idx]
        yield (x, y) if device is None else (x.to(device), y.to(device))


def _dataset_for(module: SNNModule, data, split: str, limit: int | None):
    """`split` of `data` (a name, DataSpec, torch Dataset/DataLoader or snnc.data Dataset)
    shaped for the module's input node."""
    from snnc.data import load_dataset
    from snnc.data.files import DataSpec
    from snnc.data.torchdata import describe, is_torch_data

    shape = module.graph.input_nodes()[0].shape
    enc = [n for n in module.graph.nodes if n.op == "encoder"]
    events = bool(enc) and enc[0].attrs.get("kind") == "events"
    if isinstance(data, (str, Path)):
        data = DataSpec(str(data))
    name = data.source if isinstance(data, DataSpec) else (
        describe(data) if is_torch_data(data) else getattr(data, "name", str(data)))
    if events and isinstance(data, DataSpec) and data.source in ("digits", "mnist",
                                                                 "fashion-mnist"):
        data = replace(data, source=data.source + "-events")
    size = shape[-1] if len(shape) == 4 else None
    ds = load_dataset(data, split, limit=limit, size=size,
                      channels=shape[1] if len(shape) == 4 else 1, timesteps=module.timesteps)
    want = tuple(shape[1:])
    got = tuple(ds.x.shape[2:] if ds.x.dim() == 5 else ds.x.shape[1:])
    if len(shape) == 2:
        ds = type(ds)(ds.name, ds.x.flatten(1 if ds.x.dim() == 4 else 2), ds.y, ds.classes)
        got = tuple(ds.x.shape[-1:])
    if got != want:
        raise SnncError(f"dataset '{name}' gives samples of shape {list(got)} but graph "
                        f"'{module.graph.name}' takes {list(want)} (its input node). Compile the "
                        f"model for that input size, or pick a matching dataset.")
    return ds


def _device_of(module) -> torch.device:
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def evaluate(module: SNNModule, ds, batch_size: int = 256, *, split: str = "test",
             device=None) -> float:
    """Top-1 accuracy of `module` on `ds` (eval mode, no gradients): a snnc.data Dataset, or
    a name / DataSpec / torch Dataset / DataLoader (its `split`). `device`: where to run
    (default: where the module is; "auto" | "cpu" | "cuda" moves it there)."""
    return _score(module, ds, batch_size, split=split, device=device)[1]


def _score(module, ds, batch_size: int = 256, *, split: str = "test", device=None):
    """(mean cross-entropy loss, top-1 accuracy) of `module` on `ds` (see evaluate)."""
    from snnc.data import Dataset
    from snnc.data.device import resolve_device

    if not isinstance(ds, Dataset):
        ds = _dataset_for(module, ds, split, None)
    dev = _device_of(module) if device is None else resolve_device(device)
    module.to(dev).eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in _batches(module, ds, batch_size, None, dev):
            logits = module(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
    n = max(len(ds), 1)
    return loss / n, correct / n


def split_val(ds, n_val: int | None, seed: int):
    """(train part, validation part or None): `n_val` samples of training split `ds` drawn by
    a permutation seeded with `seed` (class-sorted data still gives every class), both kept
    in the dataset's order."""
    if not n_val:
        return ds, None
    if not 0 < n_val < len(ds):
        raise SnncError(f"--val {n_val}: dataset '{ds.name}' has {len(ds)} training samples "
                        f"(after --limit); give --val between 1 and {len(ds) - 1}.")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    part = lambda i: type(ds)(ds.name, ds.x[i], ds.y[i], ds.classes)  # noqa: E731
    return part(train_idx), part(val_idx)


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
        for k, (x, _) in enumerate(_batches(module, ds, batch_size, seed, _device_of(module))):
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


def cosine_step(opt, progress: float, epochs: int) -> None:
    """Set every group's learning rate to the cosine schedule at `progress` epochs of
    `epochs` (checkpoints' ``_schedule_lr``, the one formula; lr0: the group's initial lr,
    kept as ``initial_lr`` as torch's schedulers keep it). Called before every optimiser step,
    so a one-epoch fine-tuning anneals to 0 as well; at epoch boundaries it equals
    CosineAnnealingLR(T_max=epochs), which resumes a checkpoint."""
    for g in opt.param_groups:
        g["lr"] = checkpoints._schedule_lr("cosine", g.setdefault("initial_lr", g["lr"]),
                                           epochs, min(progress, epochs))


def _scheduler(opt, name, epochs):
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(epochs // 3, 1), gamma=0.1)
    if name == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    raise SnncError(f"unknown LR schedule '{name}': use cosine, step or none")


def _data_record(data):
    """`data` as JSON for the report and the resume check: its source name, or a dict when
    --keys/--layout/--mean/--std were given."""
    from dataclasses import asdict

    from snnc.data.files import DataSpec
    from snnc.data.torchdata import describe, is_torch_data

    if data is None:
        return None
    if is_torch_data(data):
        return describe(data)
    spec = DataSpec.of(data) if isinstance(data, (str, Path, DataSpec)) else None
    if spec is None:
        return getattr(data, "name", type(data).__name__)
    if spec.keys is spec.layout is spec.mean is None:
        return spec.source
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}


def finetune_note(module: SNNModule) -> str | None:
    """A note for fine-tuning a converted net (graph attr `normalized`) whose batch norm was
    folded (no bntt/batchnorm node): measured on tests/trained at T=8 (docs/passes.md
    "Fine-tuning a converted net"), surrogate-gradient training from the normalised weights
    alone is slow (the first layers barely fire at short T and their gradients vanish), while
    identity BNTT layers (`--bn bntt`, the default on generic) renormalise every layer's input
    per step and train several times faster. None when that does not apply."""
    g = module.graph
    if "normalized" not in g.attrs or g.by_op("bntt") or g.by_op("batchnorm"):
        return None
    return ("note: fine-tuning a converted net (--normalize) with batch norm folded (--bn "
            "fold); at short T it trains far slower than with per-step BNTT: compile with "
            "--bn bntt (the default on generic) unless the target needs BN folded "
            "(docs/passes.md \"Fine-tuning a converted net\")")


def train(dir_or_module, data="digits", epochs: int = 1, *, timesteps: int | None = None,
          batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
          momentum: float = 0.9, weight_decay: float = 0.0, schedule: str = "cosine",
          limit: int | None = None, test_limit: int | None = None, out: str | Path | None = None,
          resume: bool = True, force: bool = False, seed: int = 0, progress: bool = True,
          max_steps: int | None = None, recalibrate: int = 8, render=None,
          val: int | None = None, device="auto", test_data=None) -> TrainResult:
    """Train an SNN module (or the one in output directory `dir_or_module`) on `data`: a
    dataset name, a snnc.data DataSpec, or a torch Dataset / DataLoader yielding (x, y)
    (docs/pytorch-backend.md "Data"); `test_data` (default: `data`'s test split) is read only
    for the final test accuracy. `val` holds that many training samples out as a validation
    split: the history logs its loss/accuracy per epoch and the weights of the epoch with the
    best validation accuracy are kept. `device`: "auto" | "cpu" | "cuda" ("Devices").

    A directory's trained weights go to `out` (default: the directory itself), a new output
    directory whose cost report, ``lava/`` and ``model.nir`` are regenerated from them, with
    checkpoints in ``<out>/checkpoints``; a rerun resumes after the last finished epoch (unless
    `resume` is False). A directory already holding trained weights is trained again only with
    `force` (see snnc.backends.pytorch.checkpoints). A module with `out` is first written there.
    `render` regenerates the derived files (`snnc.compiler.train` passes the API's; without it
    they are removed from the trained directory).
    Returns the final test accuracy, the history and per-layer, per-step firing rates (also in
    ``<out>/train_report.json``, ``rates.png`` and ``curves.png``). After the last epoch the
    normalisation statistics are recomputed over `recalibrate` training batches and kept only
    if that does not lower the validation accuracy (see :func:`recalibrate_checked`)."""
    from snnc.compiler.core import outdir
    from snnc.data.device import resolve_device

    dev = resolve_device(device)  # a bad --device fails before anything is written
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
    config = {"data": _data_record(data), "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "optimizer": optimizer, "momentum": momentum,
              "weight_decay": weight_decay, "schedule": schedule,
              "timesteps": module.timesteps, "limit": limit, "test_limit": test_limit,
              "seed": seed, "val": val, "test_data": _data_record(test_data)}
    sources = (data, data if test_data is None else test_data, dev)
    note = finetune_note(module)
    if note and progress:
        print(f"snnc: {note}", flush=True)
    if directory is None:
        return _fit(module, None, config, sources, progress, max_steps, recalibrate)
    target = Path(out) if out is not None else directory
    with checkpoints.run_lock(target):
        run = checkpoints.open_run(directory, out, config, resume=resume, force=force)
        for note in run.notes:
            print(f"snnc: {note}", flush=True)
        if out is not None or isinstance(dir_or_module, (str, Path)):
            module = _reload(module, run)
        res = _fit(module, run, config, sources, progress, max_steps, recalibrate)
        res.files = checkpoints.commit(run, module, res, config, render)
    return res


def _reload(module: SNNModule, run) -> SNNModule:
    """The module of the run's output directory (the copy of DIR, or DIR), same time steps."""
    m = load_module(run.out)
    m.timesteps = module.timesteps
    return m


def _fit(module: SNNModule, run, config: dict, sources, progress: bool,
         max_steps: int | None, recalibrate: int) -> TrainResult:
    from snnc.backends.pytorch.fit import fit

    return fit(module, run, config, sources, progress, max_steps, recalibrate)
