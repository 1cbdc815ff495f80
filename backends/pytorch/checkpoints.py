"""Training runs in an output directory (docs/outputs.md, docs/pytorch-backend.md "Training").

A run trains the weights of directory DIR and writes them to OUT (`-o`; default DIR itself).
Its checkpoints live in ``OUT/checkpoints`` (``epoch-<k>.safetensors`` and the commit point
``train_state.json``, which records the epoch file's sha256 and the run's settings). The run
holds OUT's writer lock from start to end. OUT first becomes a copy of DIR (unless it is DIR);
at the end it is replaced atomically by the trained directory, whose derived files (cost,
``lava/``, ``model.nir``) are regenerated from the trained weights.

Rules: a directory that holds trained weights is trained again only with ``force``; a run
resumes after its last finished epoch unless ``resume`` is False; a resumed run must use the
checkpoint's settings (`COMPARED`) except a larger ``epochs``, which re-plans the schedule.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from snnc.compiler.core import outdir
from snnc.compiler.core.atomic import locked, stage, write_file
from snnc.compiler.core.errors import SnncError

CHECKPOINTS = outdir.CHECKPOINTS
STATE = "train_state.json"
BEST = "best.safetensors"  # the weights of the best validation epoch so far (--val)
# settings a resumed run must share with its checkpoint (flag names for the messages)
COMPARED = {"data": "--data", "limit": "--limit", "test_limit": "--test-limit",
            "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
            "momentum": "--momentum", "weight_decay": "--weight-decay",
            "schedule": "--schedule", "seed": "--seed", "timesteps": "-T/--timesteps",
            "val": "--val", "test_data": "test_data"}


@dataclass
class Run:
    """Where a training run reads and writes, and the checkpoint it resumes from."""

    source: outdir.OutputDir
    out: Path
    state: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ck(self) -> Path:
        return self.out / CHECKPOINTS


def read_state(ck: Path) -> dict | None:
    """The checkpoint's train_state.json, after checking its epoch file's sha256."""
    st = ck / STATE
    if not st.is_file():
        return None
    try:
        state = json.loads(st.read_text())
        f = ck / state["checkpoint"]
        ok = f.is_file() and outdir.sha256_file(f) == state.get("sha256")
    except (ValueError, KeyError, TypeError, OSError):
        ok = False
    if not ok:
        raise SnncError(f"{st}: the checkpoint is damaged or does not match its epoch file; "
                        f"rerun with --no-resume to start over.")
    return state


def _schedule_lr(name: str, lr: float, epochs: int, epoch: int) -> float:
    if name == "cosine":
        return lr * (1 + math.cos(math.pi * epoch / max(epochs, 1))) / 2
    if name == "step":
        return lr * 0.1 ** (epoch // max(epochs // 3, 1))
    return lr


def _diff(old: dict, new: dict) -> list[str]:
    return [f"{flag} {new.get(k)!r} (checkpoint: {old.get(k)!r})"
            for k, flag in COMPARED.items() if old.get(k) != new.get(k)]


def open_run(directory, out, config: dict, *, resume: bool, force: bool) -> Run:
    """Check what a run of `config` may do with `directory` and `out` (see the module doc);
    the caller holds `out`'s lock. Returns the Run (its `state` set when resuming)."""
    src = outdir.read(directory)
    target = Path(out) if out is not None else src.path
    in_place = target.resolve() == src.path.resolve()
    if not in_place:
        outdir.guard_path(target, [src.path])
        outdir.guard_contents(target, force=True)  # trained weights: decided below
    existing = src if in_place else (outdir.read(target) if outdir.is_output_dir(target)
                                     else None)
    trained = existing.trained if existing is not None else None
    run = Run(src, target)
    config["start_sha256"] = src.files["graph.safetensors"]
    state = read_state(run.ck) if resume and existing is not None else None
    if state is not None:
        old = state["config"]
        if not in_place and old.get("start_sha256") != config["start_sha256"]:
            raise SnncError(f"{target}: its checkpoint started from other weights than "
                            f"{src.path} holds now; rerun with --no-resume (and --force) to "
                            f"start over, or give another -o.")
        changed = _diff(old, config)
        if changed:
            raise SnncError(f"{run.ck / STATE}: the interrupted run used other settings; "
                            f"changed: {'; '.join(changed)}. Rerun with the checkpoint's "
                            f"settings to resume, or --no-resume to start over.")
        done, planned, want = state["epoch"], old["epochs"], config["epochs"]
        if want < done:
            raise SnncError(f"{run.ck / STATE}: the run has finished {done} epochs; --epochs "
                            f"{want} is fewer. Give --epochs >= {done}, or --no-resume.")
        if trained and want == done:
            if not force:
                raise SnncError(f"{target}: already trained for {done} epoch(s) with these "
                                f"settings. Give --epochs > {done} to continue the run, "
                                f"--force to train again from the trained weights, or -o NEW.")
            state = None
        elif want != planned:
            lr, sched = config["lr"], config["schedule"]
            run.notes.append(
                f"continuing the run after epoch {done} with --epochs {want} (planned "
                f"{planned}): the {sched} schedule is re-planned over {want} epochs; epoch "
                f"{done + 1} uses lr {_schedule_lr(sched, lr, want, done):.3g} (the old plan: "
                f"{_schedule_lr(sched, lr, planned, done):.3g})")
    elif trained and not force:
        raise SnncError(f"{target}: holds trained weights ({trained.get('epochs')} epoch(s)); "
                        f"training again would replace them. Add --force, or write a new "
                        f"directory with -o NEW.")
    run.state = state
    if state is None:
        if not in_place:  # OUT starts as a copy of DIR (its weights, without checkpoints)
            outdir.rewrite(src, target, checkpoints=False, force=True)
        _clear(run.ck)
    return run


def _clear(ck: Path) -> None:
    st = ck / STATE
    if st.exists():
        st.unlink()  # the commit point first: a kill now leaves no resumable state
    for p in ck.glob("*epoch-*.safetensors*"):
        p.unlink()
    if (ck / BEST).exists():
        (ck / BEST).unlink()


@contextlib.contextmanager
def run_lock(path: Path):
    """The writer lock of the run's output directory, held for the whole run."""
    with locked(path):
        yield


def save(ck: Path, epoch: int, module, opt, history, config) -> None:
    """Checkpoint after `epoch`: weights and optimiser state, then train_state.json (the commit
    point, written atomically), then older epoch files are removed."""
    from safetensors.torch import save_file

    ck.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.contiguous() for k, v in sorted(module.graph_params().items())}
    groups = [dict(group) for group in opt.state_dict()["param_groups"]]
    for pid, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{pid}.{k}"] = torch.as_tensor(v).detach().to("cpu", copy=True
                                                                       ).contiguous()
    name = f"epoch-{epoch}.safetensors"
    write_file(ck / name, lambda p: save_file(tensors, p))
    state = {"epoch": epoch, "checkpoint": name, "sha256": outdir.sha256_file(ck / name),
             "param_groups": groups, "history": history, "config": config}
    write_file(ck / STATE, lambda p: Path(p).write_text(json.dumps(state, indent=1) + "\n"))
    for old in ck.glob("epoch-*.safetensors"):
        if old.name != name:
            old.unlink()


def save_best(ck: Path, state: dict[str, torch.Tensor]) -> None:
    """Write the best epoch's weights (the module's state on the CPU) atomically."""
    from safetensors.torch import save_file

    ck.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in sorted(state.items())}
    write_file(ck / BEST, lambda p: save_file(tensors, p))


def load_best(ck: Path) -> dict[str, torch.Tensor] | None:
    """The best epoch's weights saved by :func:`save_best`, or None."""
    from safetensors.torch import load_file

    return load_file(str(ck / BEST)) if (ck / BEST).is_file() else None


def restore(ck: Path, state: dict, module, opt, make_scheduler):
    """Load the checkpoint's weights and optimiser state; the scheduler is rebuilt for the
    run's (possibly larger) epochs and stepped to the checkpoint's epoch. Returns it."""
    from safetensors.torch import load_file

    tensors = load_file(str(ck / state["checkpoint"]))
    module.layers.load_state_dict({k[6:]: v for k, v in tensors.items()
                                   if k.startswith("model.")})
    opt_state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, key = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    for group in opt.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    sched = make_scheduler(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping without optimizer.step: a replay
        for _ in range(state["epoch"]):
            sched.step()
    return sched


def commit(run: Run, module, result, config: dict, render=None) -> list[str]:
    """Replace the run's output directory with the trained one; returns the files written.

    `render` (snnc.compiler.api.render) regenerates the cost report, `lava/` and `model.nir`
    from the trained weights; without it they are removed (and said so)."""
    from snnc.backends.pytorch.io import module_graph
    from snnc.backends.pytorch.plots import plot_rates

    stage("train:commit")
    graph = module_graph(module)
    rates = {k: float(sum(v) / len(v)) for k, v in result.rates.items() if v}
    if rates:  # the measured per-layer rates; their mean for nodes that recorded none
        rates["*"] = sum(rates.values()) / len(rates)
    d = outdir.read(run.out)
    with tempfile.TemporaryDirectory(prefix="snnc-train-") as tmp:
        report = Path(tmp) / "train_report.json"
        from dataclasses import asdict

        report.write_text(json.dumps(asdict(result) | {"config": config}, indent=1) + "\n")
        carry = {"train_report.json": report}
        if result.rates:
            carry["rates.png"] = plot_rates(result.rates, Path(tmp) / "rates.png")
        if result.history:
            from snnc.backends.pytorch.plots import plot_curves

            carry["curves.png"] = plot_curves(result.history, Path(tmp) / "curves.png")
        trained = {"epochs": result.history[-1]["epoch"] if result.history else 0,
                   "accuracy": result.accuracy, "config": config}
        outdir.rewrite(d, graph=graph, trained=trained, carry=carry, cost_rates=rates or None,
                       force=True, render=render)
    dropped = [f for f in d.files if f not in outdir.read(run.out, verify=False).files
               and f.split("/")[0] not in ("train_report.json", "rates.png", "curves.png")]
    if dropped:
        print(f"snnc: removed {', '.join(dropped)} from {run.out}: they were made from the "
              f"old weights (regenerate them with `snnc export {run.out} --emit ...`)",
              flush=True)
    names = ["graph.safetensors", "train_report.json", "rates.png", "curves.png",
             "manifest.json"]
    return [str(run.out / n) for n in names if (run.out / n).is_file()]
