"""Preparing a search: the ANN, its accuracy, the parent SNN trained once, the space.

:func:`prepare` is what ``snnc search`` runs before the first evaluation. It is deterministic
for a given seed and thread count, so a resumed search rebuilds the same parent.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from snnc.compiler import SnncError
from snnc.search.evaluate import (SCHEDULES, EvalSettings, SkipEvaluator, _source_name, _split,
                                  accuracy, check_parent_train, data_for, fit, space_for, split_sizes)


def _module_and_graph(model: Any, s: EvalSettings):
    """(nn.Module or None, ANN-form graph) for an nn.Module, ``zoo:NAME``, an ONNX path, or
    ``single-block`` (paper 1's single-block network, search/nets.py; ``single-block:s2`` with
    a stride-2 stem)."""
    from snnc.compiler import import_ann

    if isinstance(model, str) and model in ("single-block", "single-block:s2"):
        from snnc.search.nets import SingleBlockNet

        return SingleBlockNet(8, stem_stride=2 if model.endswith("s2") else 1), None
    if isinstance(model, str) and model.startswith("zoo:"):
        from snnc import models

        net = models.get(model[4:], num_classes=10, in_channels=1, input_size=28)
        return net, None
    if isinstance(model, torch.nn.Module):
        return model, None
    if isinstance(model, (str, Path)):
        return None, import_ann(str(model), input_shape=s.input_shape)
    raise SnncError(f"snnc search: cannot use a model of type {type(model).__name__}; give an "
                    ".onnx path, zoo:NAME or an nn.Module")


def _input_shape(net: torch.nn.Module, s: EvalSettings) -> tuple[int, ...]:
    if s.input_shape is not None:
        return tuple(s.input_shape)
    shape = getattr(net, "input_shape", None)
    if shape is not None:
        return tuple(shape)
    return (1, 28, 28)


def resolve_data(s: EvalSettings) -> EvalSettings:
    """`s` with its data ready to send to workers and its split sizes fixed: a torch Dataset or
    DataLoader is read once into a snnc.data Dataset (picklable tensors); train/val left None
    fit the dataset's training split (evaluate.split_sizes)."""
    from snnc.data import Dataset, load_dataset
    from snnc.data.torchdata import is_torch_data

    data = s.data
    if is_torch_data(data):
        data = load_dataset(data, "train")
    if s.train is not None and s.val is not None and s.parent_train is None:
        return replace(s, data=data)
    full = data if isinstance(data, Dataset) else load_dataset(data, "train")
    train, val = split_sizes(len(full), s.train, s.val, _source_name(data))
    check_parent_train(len(full), train, val, s.parent_train, _source_name(data))
    return replace(s, data=data, train=train, val=val)


def prepare(model: Any, settings: EvalSettings, *, ann_epochs: int = 0, seed: int = 0,
            blocks: tuple[int, ...] | None = None, kinds=("S2S", "S2M", "V2V"),
            fractions=(0.25, 0.5, 1.0), log=print) -> SkipEvaluator:
    """Train (optionally) and import the ANN, convert it, train the parent SNN once.

    `ann_epochs` > 0 first trains an nn.Module / zoo model on the parent's samples (Adam at
    3x the settings' lr, constant; a model given as ONNX is used with its own weights). The
    parent is trained with the settings' lr and ``schedule``. Returns the evaluator; its
    ``info`` holds the ANN and parent accuracies and the times each step took.
    """
    from snnc.compiler import compile as snnc_compile
    from snnc.compiler import import_ann, run_ann, to_torch

    from snnc.data.device import resolve_device

    if settings.schedule not in SCHEDULES:
        raise SnncError(f"snnc search: unknown lr schedule '{settings.schedule}'; use one of "
                        f"{', '.join(SCHEDULES)}")
    dev = resolve_device(settings.device)  # a bad --device fails before the data is read
    s = resolve_data(settings)
    info: dict[str, Any] = {"train": s.train, "val": s.val, "device": str(dev),
                            "parent_train": s.parent_train or s.train}
    start = None if s.parent_train is None else max(s.train, s.parent_train)
    torch.manual_seed(seed)
    net, ann = _module_and_graph(model, s)
    t0 = time.perf_counter()
    if net is not None:
        shape = _input_shape(net, s)
        s = replace(s, input_shape=shape)
        xt, yt, xv, yv = _split(s.data, s.parent_train or s.train, s.val,
                                shape[-1] if len(shape) == 3 else None,
                                shape[0] if len(shape) == 3 else 1, start)
        if len(shape) == 1:
            xt, xv = xt.flatten(1), xv.flatten(1)
        if ann_epochs:
            fit(net.to(dev), xt, yt, ann_epochs, s.batch_size, s.lr * 3, seed, dev)
        net.to(dev).eval()
        ann_acc = accuracy(net, xv, yv, device=dev)
        ann = import_ann(net.cpu(), input_shape=shape)
    else:
        xt, yt, xv, yv = data_for(ann, s, parent=True)
        ann_acc = accuracy(lambda x: run_ann(ann, x), xv, yv)
    info["ann_s"] = time.perf_counter() - t0
    log(f"ANN '{ann.name}': validation accuracy {100 * ann_acc:.2f}% ({s.val} samples; "
        f"parent on {info['parent_train']}, fine-tuning on {s.train}; {dev})")
    t0 = time.perf_counter()
    snn = snnc_compile(ann, s.options).graph
    module = to_torch(snn).to(dev)
    xt, yt, xv, yv = data_for(snn, s, parent=True)
    conv_acc = accuracy(module.eval(), xv, yv, device=dev)
    fit(module, xt, yt, s.parent_epochs, s.batch_size, s.lr, seed, dev,
        cosine=s.schedule == "cosine")
    parent = module.to_graph()
    parent_acc = accuracy(module, xv, yv, device=dev)
    space, ids = space_for(parent, blocks=blocks, kinds=tuple(kinds),
                           fractions=tuple(fractions))
    info.update(parent_s=time.perf_counter() - t0, ann_acc=ann_acc, converted_acc=conv_acc,
                parent_acc=parent_acc, blocks=[b.name for b in space.blocks],
                space_size=str(space.size))
    log(f"parent SNN: {100 * conv_acc:.2f}% after conversion, {100 * parent_acc:.2f}% after "
        f"{s.parent_epochs} epoch(s) ({info['parent_s']:.0f} s); searching "
        f"{len(space.blocks)} block(s), {space.n_vars} entries, {space.size} candidates")
    ev = SkipEvaluator(parent, space, ids, ann_acc, s, info=info)
    if s.limits_target is not None:
        from snnc.compiler import cost_report

        ev.parent_violations = tuple(cost_report(parent, s.limits_target).violations)
    return ev
