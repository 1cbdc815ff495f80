"""Skip-connection searches for the paper-1 experiments (search-vs-base, bo-vs-rs), run with
snnc.search's own pieces: ``prepare`` (the ANN trained and measured, the parent SNN converted and
trained once), the journalled search loop ``run_search`` (BO or random search, weight sharing,
``finetune_epochs`` of fine-tuning per candidate, resumable), and the evaluator itself for the
base network and for the candidate-noise measurement.

One preparation per search seed serves every search of that seed, so BO and random search of a
seed start from the same ANN and parent and fine-tune and score candidates identically (paper 1
trained its random-search candidates from scratch; here both use weight sharing, the protocol
of docs/search.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from snnc.experiments.core import Scale


@dataclass(frozen=True)
class SearchScale:
    """The search settings of a scale (docs/results.md): fine-tuning images (the first
    ``train`` of the training split; validation: the next ``val``), evaluations per search,
    candidates per round, random evaluations before the GP, fine-tuning epochs, and the
    fine-tuning seeds per candidate of the noise measurement."""

    train: int
    val: int
    budget: int
    batch: int
    n_init: int
    finetune_epochs: int = 1
    noise_candidates: int = 3
    noise_seeds: int = 3
    parent_train: int | None = None  # ANN and parent samples (None: the fine-tuning ones)


# (experiment, scale) -> settings. Full: the ANN and the parent trained on the scale's 55,000
# training images (the ANN reaches the scale's >= 90 %), each candidate fine-tuned on the first
# 5,000 of them and scored on the 5,000 after them (images 55,000-59,999: seen by no training);
# bo-vs-rs 40 evaluations per search, search-vs-base 12.
SMOKE = SearchScale(train=96, val=48, budget=4, batch=2, n_init=2, noise_candidates=1,
                    noise_seeds=2)
SEARCH_SCALES = {
    ("bo-vs-rs", "smoke"): SMOKE,
    ("search-vs-base", "smoke"): SMOKE,
    ("bo-vs-rs", "full"): SearchScale(train=5000, val=5000, budget=40, batch=4, n_init=8,
                                      parent_train=55000),
    ("search-vs-base", "full"): SearchScale(train=5000, val=5000, budget=12, batch=4,
                                            n_init=4, parent_train=55000),
    # timing: 1,000 fine-tuning + 500 validation images, 2 evaluations per search
    ("bo-vs-rs", "probe"): SearchScale(train=1000, val=500, budget=2, batch=2, n_init=2,
                                       noise_candidates=1, noise_seeds=2),
    ("search-vs-base", "probe"): SearchScale(train=1000, val=500, budget=2, batch=2, n_init=2),
}


def search_scale(experiment: str, scale: Scale) -> SearchScale:
    """The search settings of `experiment` at `scale` (SnncError for a scale it lacks)."""
    from snnc.compiler import SnncError

    key = (experiment, scale.name)
    if key not in SEARCH_SCALES:
        raise SnncError(f"experiment {experiment} has no search settings for scale "
                        f"'{scale.name}'; known: {sorted(SEARCH_SCALES)}")
    return SEARCH_SCALES[key]


def protocol(experiment: str, scale: Scale) -> dict:
    """The search settings and evaluation settings of `experiment` at `scale` (results.json's
    ``protocol``: a resumed experiment must have the same)."""
    ss = search_scale(experiment, scale)
    return {"search_scale": asdict(ss), "settings": asdict(settings_of(scale, ss))}


def settings_of(scale: Scale, ss: SearchScale):
    """The search's EvalSettings at `scale`: S2S parent, direct encoding, the scale's T."""
    from snnc.compiler import Options
    from snnc.search.evaluate import EvalSettings

    return EvalSettings(data=scale.data, train=ss.train, val=ss.val,
                        parent_train=ss.parent_train,
                        options=Options(timesteps=scale.timesteps, encoder="direct",
                                        residual="s2s", semantics="paper"),
                        parent_epochs=scale.epochs, finetune_epochs=ss.finetune_epochs,
                        batch_size=scale.batch_size, lr=scale.lr, cost_target=scale.cost_target,
                        device="cpu")


def prepare_seed(scale: Scale, ss: SearchScale, seed: int):
    """(evaluator, trained ANN module) of search seed `seed`: the scale's S-ResNet ANN trained
    for ``scale.epochs`` on the parent's images (``ss.parent_train``, else the fine-tuning
    ones) with Adam at 3x the scale's lr (as ``snnc search --ann-epochs`` trains) and the
    cosine schedule set at every step (at the full scale this reaches the scale's >= 90 %,
    docs/results.md), then converted and the parent SNN trained on the same images."""
    import torch

    from snnc.data import load_dataset
    from snnc.search.evaluate import fit
    from snnc.search.prepare import prepare

    torch.manual_seed(seed)
    net = scale.sresnet()
    ds = load_dataset(scale.data, "train", limit=ss.parent_train or ss.train,
                      size=scale.input_size, channels=1)
    fit(net, ds.x, ds.y, scale.epochs, scale.batch_size, 3 * scale.lr, seed, cosine=True)
    ev = prepare(net.eval(), settings_of(scale, ss), seed=seed, log=lambda m: None)
    return ev, net


def base_levels(ev):
    """The parent's own skip configuration as search levels (its identity / projection ASC
    edges as S2S, the kind the parent was lowered with)."""
    from snnc.compiler import find_blocks
    from snnc.search.space import BlockChoice

    found = find_blocks(ev.parent)
    choices = []
    for bid in ev.block_ids:
        m = found[bid].matrix
        kinds = {(int(i), int(j)): "S2S" for i, j in zip(*(m == 2).nonzero())}
        fracs = {(int(i), int(j)): 1.0 for i, j in zip(*(m == 1).nonzero())}
        choices.append(BlockChoice(m, kinds, fracs))
    return ev.space.encode(choices)


def search_once(ev, scale: Scale, ss: SearchScale, seed: int, method: str, out: Path,
                threads: int = 1):
    """Run (or resume) one search of `method` into ``out/journal.jsonl``; returns its ok
    evaluations in eval-id order."""
    from snnc.search.executors import make_executor
    from snnc.search.loop import SearchConfig, run_search
    from snnc.search.plots import evals_of

    cfg = SearchConfig(method=method, budget=ss.budget, batch=ss.batch, seed=seed,
                       n_init=ss.n_init)
    out.mkdir(parents=True, exist_ok=True)
    ex = make_executor("local", ev, workers=1, threads=threads)
    try:
        run_search(ev.space, ex, cfg, out, resume=True, accept=ev.feasible,
                   header_extra={"experiment_scale": asdict(scale),
                                 "search_scale": asdict(ss), "prepare": ev.info})
    finally:
        ex.close()
    return evals_of(out / "journal.jsonl")


def _test_set(scale: Scale, shape):
    from snnc.data import load_dataset

    return load_dataset(scale.data, "test", limit=scale.test, size=shape[-1], channels=shape[1])


def ann_test_accuracy(net, ev, scale: Scale) -> float:
    """The trained ANN's accuracy on the scale's test images (read once, at the end)."""
    from snnc.search.evaluate import accuracy

    te = _test_set(scale, ev.parent.input_nodes()[0].shape)
    return accuracy(net.eval(), te.x, te.y)


def test_accuracy(ev, levels, seed: int, scale: Scale) -> dict:
    """Candidate `levels` fine-tuned as in the search (same seed: the journalled module), then
    measured once on the scale's test images: accuracy and per-layer firing rates."""
    from snnc.search.evaluate import accuracy
    from snnc.search.executors import seed_everything

    seed_everything(seed)
    module, res = ev.run(tuple(levels), seed)
    te = _test_set(scale, ev.parent.input_nodes()[0].shape)
    module.reset_rates()
    module.record_rates = True
    acc = accuracy(module, te.x, te.y)
    module.record_rates = False
    rates = {k: float(v.mean()) for k, v in module.rates().items()}
    return {"val_accuracy": res["snn_acc"], "test_accuracy": acc, "rates": rates,
            "mean_rate": sum(rates.values()) / max(1, len(rates)),
            "energy_uj": res["energy_uj"], "sops": res["cost"]["totals"].get("sops")}
