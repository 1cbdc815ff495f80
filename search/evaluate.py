"""Evaluating a candidate with weight sharing (paper 1 sec. III-B).

    ctx = prepare(model, data="fashion-mnist", settings=EvalSettings(...))   # once
    ctx.evaluator(levels, seed)                                              # per candidate

:func:`prepare` imports the ANN, measures its accuracy on the validation split, converts it to
an SNN (the conversion pipeline), and trains that *parent* SNN once, starting from the ANN's
weights, for ``parent_epochs``. Each candidate then writes every searched block's adjacency
matrix, residual kinds and DSC fractions into the trained parent with
:func:`snnc.compiler.core.blocks.set_block`: it inherits every parameter of the parent; new DSC
input channels and new projections start at zero, so the inherited function is unchanged except
where a new identity skip (ASC without projection) adds its source's value. The candidate is
fine-tuned for ``finetune_epochs`` epochs and scored on the validation split:

    drop = 100 * (ANN accuracy - SNN accuracy)      (percentage points, validation split)

The validation split is the ``val`` samples after the first ``train`` samples of the dataset's
*train* split (after the first ``parent_train`` when that is larger); the test split is never
read. ``parent_train`` (default: ``train``) is how many of the first samples the ANN (when
:func:`prepare` trains it) and the parent are trained on, so a parent can learn from the whole
split while each candidate is fine-tuned on a subset. Left as None, ``train``/``val`` fit the dataset
(:func:`split_sizes`: 2,000 + 1,000, or 2/3 + 1/3 of a smaller training split). Modules and
batches go to ``device`` (docs/pytorch-backend.md "Devices"), resolved where the evaluation runs:
a Ray task that reserved a GPU sees it through ``auto``. Every evaluation also returns per-layer
firing rates and the cost model's report for ``target`` under those rates (energy in
microjoules) and the device it ran on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from snnc.compiler import Graph, Options, SnncError
from snnc.search.space import BlockSpace, SearchSpace

KIND_NAMES = {"S2S": "s2s", "S2M": "s2m", "V2V": "v2v"}


@dataclass(frozen=True)
class EvalSettings:
    """How the parent is trained and candidates fine-tuned and scored."""

    data: Any = "fashion-mnist"  # a name, a DataSpec, a snnc.data Dataset (see prepare)
    train: int | None = None  # None: fit the dataset (split_sizes)
    val: int | None = None
    # samples the ANN (ann_epochs) and the parent are trained on: the first parent_train;
    # None: the fine-tuning ones. Validation comes after max(train, parent_train).
    parent_train: int | None = None
    # How the parent is compiled (residual, target, T, encoder, ...): the compile options.
    options: Options = field(default_factory=lambda: Options(timesteps=4, encoder="direct"))
    parent_epochs: int = 2
    finetune_epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    # lr schedule of the parent's training and each candidate's fine-tuning: "cosine" (as
    # `snnc train`'s default, set before every step, annealed to 0 over the run's epochs) or
    # "none" (constant lr)
    schedule: str = "cosine"
    cost_target: str = "loihi1"
    limits_target: str | None = None
    input_shape: tuple[int, ...] | None = None
    device: str = "auto"  # cpu | cuda | cuda:N | auto, resolved in the process that trains


DEFAULT_TRAIN, DEFAULT_VAL = 2000, 1000


SCHEDULES = ("cosine", "none")


def split_sizes(available: int, train: int | None, val: int | None,
                source: str = "the dataset") -> tuple[int, int]:
    """(train, val) sample counts from a training split of `available` samples: explicit values
    are checked (SnncError when they need more than there is); a value left None takes its
    default (2,000 / 1,000) capped to what the other leaves, and both None on a split smaller
    than 3,000 give 2/3 for fine-tuning and 1/3 for validation."""
    if train is not None and val is not None:
        if train < 1 or val < 1 or train + val > available:
            raise SnncError(f"{source} has {available} training samples; --train {train} plus "
                            f"--val {val} need {train + val}. Lower them (each at least 1), or "
                            f"leave them out: the defaults fit the dataset.")
        return train, val
    if train is None and val is None:
        if available < 3:
            raise SnncError(f"{source} has {available} training samples; a search needs at "
                            f"least 3 (fine-tuning and validation).")
        if available >= DEFAULT_TRAIN + DEFAULT_VAL:
            return DEFAULT_TRAIN, DEFAULT_VAL
        val = max(1, available // 3)
        return available - val, val
    given, name = (train, "--train") if val is None else (val, "--val")
    if not 1 <= given < available:
        raise SnncError(f"{source} has {available} training samples; {name} {given} leaves "
                        f"none for the other split. Give {name} below {available}.")
    rest = min(available - given, DEFAULT_VAL if val is None else DEFAULT_TRAIN)
    return (given, rest) if val is None else (rest, given)


def _source_name(data) -> str:
    src = getattr(data, "source", None) or getattr(data, "name", None) or str(data)
    return f"dataset '{src}'"


def check_parent_train(available: int, train: int, val: int, parent_train: int | None,
                       source: str = "the dataset") -> None:
    """SnncError unless the parent's samples plus the validation ones fit `available`."""
    if parent_train is None:
        return
    if parent_train < 1 or max(train, parent_train) + val > available:
        raise SnncError(f"{source} has {available} training samples; --parent-train "
                        f"{parent_train} plus --val {val} need {max(train, parent_train) + val} "
                        f"(validation comes after the parent's samples). Lower them.")


@functools.lru_cache(maxsize=4)
def _split(data, n_train: int, n_val: int, size: int | None, channels: int,
           val_start: int | None = None):
    """(x_train, y_train, x_val, y_val): the first n_train train-split samples and the n_val
    from `val_start` on (default: right after them)."""
    from snnc.data import load_dataset

    start = n_train if val_start is None else val_start
    ds = load_dataset(data, "train", limit=start + n_val, size=size, channels=channels)
    split_sizes(len(ds), n_train, n_val, _source_name(data))
    check_parent_train(len(ds), n_train, n_val, None if val_start is None else start,
                       _source_name(data))
    return ds.x[:n_train], ds.y[:n_train], ds.x[start:start + n_val], ds.y[start:start + n_val]


def data_for(g: Graph, s: EvalSettings, parent: bool = False):
    """The train / validation tensors shaped for graph `g`'s input node: the fine-tuning
    samples, or with `parent` the parent's (``parent_train``)."""
    n = s.parent_train if parent and s.parent_train is not None else s.train
    start = None if s.parent_train is None else max(s.train, s.parent_train)
    shape = g.input_nodes()[0].shape
    if len(shape) == 4:
        return _split(s.data, n, s.val, shape[-1], shape[1], start)
    xt, yt, xv, yv = _split(s.data, n, s.val, None, 1, start)
    return xt.flatten(1), yt, xv.flatten(1), yv


def accuracy(fn, x: torch.Tensor, y: torch.Tensor, batch: int = 250,
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of `fn` (logits) on (x, y), without gradients; batches go to `device`."""
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            pred = fn(x[i:i + batch].to(device)).argmax(-1).cpu()
            correct += int((pred == y[i:i + batch]).sum())
    return correct / max(1, len(y))


def fit(module: torch.nn.Module, x, y, epochs: int, batch: int, lr: float, seed: int,
        device: torch.device | str = "cpu", *, cosine: bool = False,
        on_epoch: Callable[[int, float], None] | None = None) -> float:
    """Adam on cross-entropy for `epochs` epochs, batches shuffled by `seed` (on the CPU, so the
    order is the same on every device) and moved to `device`; returns the last epoch's loss.
    `cosine`: the lr follows `snnc train`'s cosine, set before every step
    (snnc.compiler.cosine_step); `on_epoch(epoch, loss)` is called after each epoch with the
    module in eval mode (e.g. to score a validation split)."""
    from snnc.compiler import cosine_step

    opt = torch.optim.Adam(module.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    loss_sum = 0.0
    module.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        loss_sum = 0.0
        for i in range(0, len(y), batch):
            if cosine:
                cosine_step(opt, epoch + i / len(y), epochs)
            idx = order[i:i + batch]
            loss = F.cross_entropy(module(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
        if on_epoch is not None:
            module.eval()
            on_epoch(epoch, loss_sum / max(1, len(y)))
            module.train()
    module.eval()
    return loss_sum / max(1, len(y))


@dataclass
class SkipEvaluator:
    """Picklable evaluator: the trained parent SNN, the ANN's accuracy, the searched blocks.

    ``evaluator(levels, seed)`` returns drop, accuracies, energy_uj, rates, cost and the final
    fine-tuning loss (see the module docstring).
    """

    parent: Graph
    space: SearchSpace
    block_ids: tuple[int, ...]
    ann_acc: float
    settings: EvalSettings
    parent_violations: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def build(self, levels) -> Graph:
        """The parent with every searched block rewritten as `levels` says (verified)."""
        from snnc.compiler import find_blocks, set_block

        g = self.parent
        for bid, choice in zip(self.block_ids, self.space.decode(levels)):
            kinds = {ij: KIND_NAMES[k] for ij, k in choice.kinds.items()}
            g = set_block(g, bid, choice.matrix, kinds=kinds, fractions=choice.fractions,
                          blocks=find_blocks(g))
        return g

    def cost(self, g: Graph, rates: dict[str, float] | float | None):
        """The cost model's report of `g` on the cost target under `rates`; its energy is kept
        for ranking even when the target refuses part of the graph (e.g. a direct encoder on
        loihi1): the violations are in the report (strict=False, docs/costmodel.md)."""
        from snnc.compiler import cost_report

        return cost_report(g, self.settings.cost_target, rates=rates, strict=False)

    def feasible(self, levels) -> bool:
        """Check before training: the candidate builds (set_block accepts it); with a
        `limits_target`, it adds no violation of that target the parent did not have; and, at
        the cost model's prior rate, it respects `max_energy_uj` / `max_cores`."""
        try:
            g = self.build(levels)
        except SnncError:
            return False
        lim = self.info.get("limits", {})
        if self.settings.limits_target is not None:
            from snnc.compiler import cost_report

            rep = cost_report(g, self.settings.limits_target)
            if set(rep.violations) - set(self.parent_violations):
                return False
        if lim.get("max_cores") is None and lim.get("max_energy_uj") is None:
            return True
        rep = self.cost(g, None)
        if lim.get("max_cores") is not None and rep.totals.get("cores", 0) > lim["max_cores"]:
            return False
        e = rep.energy.get("value")
        return not (lim.get("max_energy_uj") is not None and e is not None
                    and e * 1e6 > lim["max_energy_uj"])

    def __call__(self, levels, seed: int) -> dict[str, Any]:
        """Build, fine-tune, score one candidate (the result dict of :meth:`run`)."""
        return self.run(levels, seed)[1]

    def run(self, levels, seed: int):
        """(fine-tuned module, result dict) of one candidate."""
        from snnc.compiler import to_torch
        from snnc.data.device import resolve_device

        s = self.settings
        dev = resolve_device(s.device)  # here, in the worker: a reserved GPU is seen
        g = self.build(levels)
        module = to_torch(g).to(dev)
        xt, yt, xv, yv = data_for(g, s)
        before = accuracy(module.eval(), xv, yv, device=dev)
        loss = fit(module, xt, yt, s.finetune_epochs, s.batch_size, s.lr, seed, dev,
                   cosine=s.schedule == "cosine")
        module.reset_rates()
        module.record_rates = True
        acc = accuracy(module, xv, yv, device=dev)
        module.record_rates = False
        rates = {k: float(v.mean()) for k, v in module.rates().items()}
        rep = self.cost(module.to_graph(), rates)
        energy = rep.energy.get("value")
        mean_rate = float(np.mean(list(rates.values()))) if rates else 0.0
        return module, {"drop": 100.0 * (self.ann_acc - acc), "snn_acc": acc,
                        "ann_acc": self.ann_acc,
                "inherited_acc": before, "loss": loss, "device": str(dev),
                "energy_uj": None if energy is None else energy * 1e6,
                "rates": rates, "mean_rate": mean_rate,
                "cost": {"target": rep.target, "totals": rep.totals,
                         "energy": {k: rep.energy.get(k) for k in ("value", "band", "unit",
                                                                    "status")},
                         "violations": rep.violations}}


def space_for(g: Graph, *, blocks: tuple[int, ...] | None = None,
              kinds: tuple[str, ...] = ("S2S", "S2M", "V2V"),
              fractions: tuple[float, ...] = (0.25, 0.5, 1.0)) -> tuple[SearchSpace, tuple]:
    """The search space of `g`'s blocks (all, or the indices in `blocks`)."""
    from snnc.compiler import find_blocks

    found = find_blocks(g)
    ids = tuple(range(len(found))) if blocks is None else tuple(blocks)
    bad = [i for i in ids if not 0 <= i < len(found)]
    if bad:
        raise SnncError(f"graph '{g.name}' has {len(found)} block(s); --blocks {bad} does not "
                        f"exist. List them with `snnc inspect --blocks`.")
    ids = tuple(i for i in ids if found[i].d_b >= 1)
    if not ids:
        raise SnncError(f"graph '{g.name}' has no block to search: find_blocks found none with "
                        "a layer. Use a model with repeated conv/linear layers.")
    bs = tuple(BlockSpace(found[i].d_b, kinds=kinds, fractions=fractions, name=found[i].name)
               for i in ids)
    return SearchSpace(bs, allowed=_realisable(g, found, ids, bs)), ids


def _realisable(g: Graph, found, ids, bs) -> tuple[tuple[int, ...], ...]:
    """Per variable, the levels set_block can write on their own (e.g. V2V needs a neuron
    source; set_block refuses a V2V out of a max-pool). Probed one entry at a time on `g`."""
    from snnc.compiler import Form, set_block

    out = []
    for bid, b in zip(ids, bs):
        for i, j in b.entries:
            ok = [0]
            for lv in range(1, b.n_levels):
                choice = b.decode(tuple(lv if e == (i, j) else 0 for e in b.entries))
                m = found[bid].matrix.copy()
                m[i, j] = choice.matrix[i, j]
                kinds = {k: KIND_NAMES[v] for k, v in choice.kinds.items()}
                if g.form is not Form.SNN and choice.kinds and kinds[(i, j)] != "s2s":
                    ok.append(lv)  # kinds other than ASC are checked on the SNN form
                    continue
                try:
                    set_block(g, bid, m, kinds=kinds if g.form is Form.SNN else {},
                              fractions=choice.fractions, blocks=found)
                except SnncError:
                    continue
                ok.append(lv)
            out.append(tuple(ok))
    return tuple(out)
