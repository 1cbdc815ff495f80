"""The epoch loop of `snnc train` (snnc.backends.pytorch.training.train runs it): validation
split, per-epoch log, keep-best weights, checked BN recalibration, final test accuracy
(docs/pytorch-backend.md "Training").

* With ``val`` N, N training samples (a seeded draw) are held out; after every epoch their loss
  and accuracy are logged beside the training batches' and the weights of the epoch with the
  best validation accuracy are kept (also in ``checkpoints/best.safetensors``, so a resumed run
  keeps them). Without it, the last epoch's weights are kept.
* BN recalibration is kept only if it does not lower the validation accuracy (without ``val``:
  the accuracy on up to 1,024 training samples); before/after are printed and reported.
* The test split is read once, for the final test accuracy.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from snnc.backends.pytorch import checkpoints
from snnc.data.torchdata import describe, is_torch_data
from snnc.backends.pytorch.training import (
    TrainResult, _batches, _dataset_for, _optimizer, _scheduler, _score, cosine_step,
    recalibrate_bn, split_val,
)

JUDGE_SAMPLES = 1024  # training samples that judge BN recalibration when there is no --val


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def _cpu_state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.layers.state_dict().items()}


def recalibrate_checked(module, train_ds, val_ds, batch_size: int, batches: int, seed: int,
                        progress: bool = True) -> dict:
    """recalibrate_bn, kept only if the validation accuracy (or, without a validation split,
    that of the first JUDGE_SAMPLES training samples) does not drop; returns what happened."""
    norms = [m for m in module.layers.values() if hasattr(m, "running_mean")]
    if batches <= 0 or not norms:
        return {"batches": 0, "kept": False, "reason": "off" if batches <= 0 else "no BN"}
    judge, on = (val_ds, "validation") if val_ds is not None else (
        type(train_ds)(train_ds.name, train_ds.x[:JUDGE_SAMPLES], train_ds.y[:JUDGE_SAMPLES],
                       train_ds.classes), "training-sample")
    before = _score(module, judge)[1]
    saved = _cpu_state(module)
    used = recalibrate_bn(module, train_ds, batch_size, batches, seed)
    after = _score(module, judge)[1]
    kept = after >= before
    if not kept:
        module.layers.load_state_dict(saved)
    _say(progress, f"BN recalibration over {used} batches: {on} accuracy {before:.4f} -> "
                   f"{after:.4f}: {'kept' if kept else 'not kept (it lowered the accuracy)'}")
    return {"batches": used, "measured_on": on, "before": before, "after": after, "kept": kept}


def fit(module, run, config: dict, sources, progress: bool, max_steps: int | None,
        recalibrate: int) -> TrainResult:
    """Run the epochs of `config` on `module` (see the module doc); `run`: the checkpoint run
    or None; `sources`: (training data, test data, device)."""
    from tqdm import tqdm

    data, test_data, dev = sources
    epochs, batch_size, seed = config["epochs"], config["batch_size"], config["seed"]
    torch.manual_seed(seed)
    module.to(dev)
    full = _dataset_for(module, data, "train", config["limit"])
    train_ds, val_ds = split_val(full, config.get("val"), seed)
    test_ds = _dataset_for(module, test_data, "test", config["test_limit"])  # read at the end
    if test_data is data and is_torch_data(data):
        _say(progress, f"note: {describe(data)} is one split: the test accuracy is measured on "
                       f"the training samples; pass test_data= for a separate test set")
    opt = _optimizer(module, config["optimizer"], config["lr"], config["momentum"],
                     config["weight_decay"])
    start, history, best_state = 0, [], None
    if run is not None and run.state is not None:
        sched = checkpoints.restore(run.ck, run.state, module, opt,
                                    lambda o: _scheduler(o, config["schedule"], epochs))
        start, history = run.state["epoch"], run.state["history"]
        best_state = checkpoints.load_best(run.ck) if val_ds is not None else None
    else:
        sched = _scheduler(opt, config["schedule"], epochs)
    scored = [h for h in history if h.get("val_acc") is not None]
    best = max(scored, key=lambda h: h["val_acc"]) if scored else None
    for epoch in range(start, epochs):
        module.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        n_steps = -(-len(train_ds) // batch_size)
        bar = tqdm(_batches(module, train_ds, batch_size, seed + epoch, dev),
                   disable=not progress, total=n_steps, desc=f"epoch {epoch + 1}/{epochs}")
        for step, (x, y) in enumerate(bar):
            if max_steps is not None and step >= max_steps:
                break
            if config["schedule"] == "cosine":  # annealed within each epoch, not only between
                cosine_step(opt, epoch + step / n_steps, epochs)
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
        h = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
             "train_acc": correct / max(seen, 1), "val_loss": None, "val_acc": None}
        line = f"epoch {epoch + 1}/{epochs}: loss {h['loss']:.4f}  accuracy {h['train_acc']:.4f}"
        if val_ds is not None:
            h["val_loss"], h["val_acc"] = _score(module, val_ds)
            line += f"  | validation loss {h['val_loss']:.4f}  accuracy {h['val_acc']:.4f}"
            if best is None or h["val_acc"] > best["val_acc"]:
                best, best_state = h, _cpu_state(module)
                line += "  (best)"
                if run is not None:
                    checkpoints.save_best(run.ck, best_state)
        h["seconds"] = time.perf_counter() - t0
        h["samples_per_s"] = seen / h["seconds"]
        history.append(h)
        _say(progress, line)
        if run is not None:
            checkpoints.save(run.ck, epoch + 1, module, opt, history, config)
    weights = "last epoch (no validation split: give --val N to keep the best epoch)"
    val_acc = None
    if val_ds is not None and best is not None:
        if best_state is not None and best["epoch"] != history[-1]["epoch"]:
            module.layers.load_state_dict(best_state)
        weights = f"epoch {best['epoch']} (best validation accuracy)"
        val_acc = best["val_acc"]
        _say(progress, f"kept the weights of epoch {best['epoch']} of {len(history)} (best "
                       f"validation accuracy {val_acc:.4f})")
    bn = recalibrate_checked(module, train_ds, val_ds, batch_size, recalibrate, seed, progress)
    config["recalibrated_batches"] = bn["batches"] if bn.get("kept") else 0
    if val_ds is not None and bn.get("kept"):
        val_acc = bn["after"]
    module.reset_rates()
    module.record_rates = True
    acc = _score(module, test_ds)[1]
    module.record_rates = False
    rates = {k: v.tolist() for k, v in module.rates().items()}
    return TrainResult(acc, history, rates, weights=weights, val_accuracy=val_acc, bn=bn,
                       device=str(dev))
