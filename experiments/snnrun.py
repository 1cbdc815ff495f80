"""One training run of paper 2's S-ResNet with snnc: compile, train, measure (the `execute` of
the paper-2 experiments, snnc.experiments.core).

Everything goes through snnc's public API: ``compile`` (an ``snnc.models.sresnet`` net built
from the run's seed), ``train`` (BPTT with the validation split keeping the best epoch; the test
split read once at the end, where the per-layer, per-step firing rates are recorded),
``Compiled.cost`` in measured mode (SOPs and energy on the scale's cost target from the
recorded activity of the first test images) and, when the run
asks for accuracy against T, ``Compiled.evaluate`` (the readout after every prefix of the time
steps: the last steps dropped at inference, paper 2 Table 16).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from snnc.experiments.core import Run, Scale

DEFAULTS = {"residual": "s2s", "bn": "bntt", "encoder": "direct", "leak": 0.874}
COST_SAMPLES = 64  # test images whose recorded activity gives the cost report


def options_of(run: Run, scale: Scale):
    """The compile options of `run`: paper 2's neuron on the generic target, the run's residual
    mode, batch-norm mode, encoder, leak and T."""
    from snnc.compiler import Options

    s = {**DEFAULTS, **run.settings}
    return Options(residual=s["residual"], bn=s["bn"], encoder=s["encoder"], leak=s["leak"],
                   timesteps=int(s.get("timesteps", scale.timesteps)), target="generic",
                   semantics="paper")


def build_net(run: Run, scale: Scale):
    """The ANN of `run` (seeded by the caller): the scale's S-ResNet (Scale.sresnet), or, with
    settings ``net="single-block"``, paper 1's single-block network (4 conv layers in one block,
    snnc.search.nets) on 28x28 inputs with ``scale.base`` channels."""
    if run.settings.get("net") == "single-block":
        from snnc.search.nets import SingleBlockNet

        return SingleBlockNet(scale.base, depth=4, in_channels=1, input_size=28)
    return scale.sresnet()


def density_matrix(depth: int, n_skip: int, edge: int):
    """Paper 1 sec. III-A's block with `n_skip` skips of type `edge` (1 DSC, 2 ASC) into every
    layer: layer j (vertex j of the (depth+2)-square matrix, 2 <= j <= depth) receives skips from
    the n_skip nearest earlier vertices other than its own input (j-2, j-3, ...), capped at the
    number of earlier ones (layer 2 can have one, layer 4 up to three)."""
    import numpy as np

    m = np.zeros((depth + 2, depth + 2), dtype=np.int64)
    for j in range(2, depth + 1):
        for i in range(j - 2, max(-1, j - 2 - n_skip), -1):
            m[i, j] = edge
    return m


def _with_skips(c, skips: dict, opts):
    """`c` with block 0 rewritten to paper 1's skip density (set_block): DSC edges at channel
    fraction 1, ASC edges as the run's residual kind."""
    from snnc.compiler import Compiled, find_blocks, set_block

    g = c.graph
    blk = find_blocks(g)[0]
    edge = {"DSC": 1, "ASC": 2}[skips["type"]]
    m = density_matrix(blk.d_b, int(skips["n"]), edge)
    ij = [(int(i), int(j)) for i, j in zip(*m.nonzero())]
    g = set_block(g, 0, m, kinds={e: opts.residual for e in ij} if edge == 2 else None,
                  fractions={e: 1.0 for e in ij} if edge == 1 else None)
    return Compiled(ann=c.ann, graph=g, source=c.source, options=opts)


def train_key(run: Run, scale: Scale) -> str:
    """A digest of everything that determines `run`'s training (compile options, network,
    skips, seed, the scale's data and training settings; not what is only measured afterwards,
    such as ``eval_timesteps``): two runs with one key train the same net, so the runner
    (snnc.experiments.core) trains it once and both measure it."""
    import hashlib
    from dataclasses import asdict

    sc = {k: v for k, v in asdict(scale).items() if k not in ("name", "seeds")}
    what = {"options": options_of(run, scale).as_dict(), "scale": sc, "seed": run.seed,
            "net": run.settings.get("net", "sresnet"), "skips": run.settings.get("skips")}
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def execute(run: Run, scale: Scale, workdir: Path) -> dict:
    """Train `run` in `workdir` (resumable: snnc's checkpoints) and return its record."""
    import torch

    from snnc.compiler import compile, load, train

    workdir.mkdir(parents=True, exist_ok=True)
    opts = options_of(run, scale)
    compiled, trained = workdir / "compiled", workdir / "trained"
    if not (compiled / "manifest.json").is_file():
        torch.manual_seed(run.seed)
        c = compile(build_net(run, scale), opts)
        if run.settings.get("skips"):
            c = _with_skips(c, run.settings["skips"], opts)
        c.save(compiled, force=True)
    report = trained / "train_report.json"
    timing = workdir / "train_time.json"
    if not report.is_file():  # else trained before (a resumed run, or another experiment's)
        t0, c0 = time.perf_counter(), time.process_time()
        train(compiled, data=scale.data, epochs=scale.epochs, out=trained,
              limit=scale.train + scale.val, val=scale.val, test_limit=scale.test,
              seed=run.seed, batch_size=scale.batch_size, lr=scale.lr, progress=False)
        timing.write_text(json.dumps({"wall_s": time.perf_counter() - t0,
                                      "cpu_s": time.process_time() - c0}))
    rep = json.loads(report.read_text())
    per_step = {k: [float(x) for x in v] for k, v in rep["rates"].items()}
    mean_rates = {k: sum(v) / len(v) for k, v in per_step.items()}
    c = load(trained)
    # measured mode: every synaptic input of COST_SAMPLES test images recorded (the encoder's
    # spikes too, which the per-layer rates above do not hold), exact SOPs (docs/costmodel.md)
    cost = c.cost(data=scale.data, samples=min(COST_SAMPLES, scale.test),
                  target=scale.cost_target, strict=False)
    energy = cost.energy.get("value")
    # the training's own time (wall_s / cpu_s of the record are this call's: small when the
    # net was trained by an earlier call or another experiment)
    train_time = json.loads(timing.read_text()) if timing.is_file() else None
    rec = {"options": opts.as_dict(), "train_key": workdir.name, "train_time": train_time,
           "test_accuracy": rep["accuracy"],
           "val_accuracy": rep["val_accuracy"], "weights": rep["weights"],
           "history": rep["history"], "rates_per_step": per_step, "rates": mean_rates,
           "mean_rate": sum(mean_rates.values()) / max(1, len(mean_rates)),
           "cost": {"target": cost.target, "sops": cost.totals.get("sops"),
                    "graded_sops": cost.totals.get("graded_sops"),
                    "energy_uj": None if energy is None else energy * 1e6,
                    "energy_status": cost.energy.get("status"),
                    "samples": min(COST_SAMPLES, scale.test)}}
    gammas = {}
    for n in c.graph.by_op("bntt"):  # paper 2 Fig. 3, second row: BNTT's gamma per step
        key = n.param("weight")
        if key is not None and c.graph.param(key) is not None:
            gammas[n.name] = [float(x) for x in c.graph.param(key).float().mean(1)]
    rec["bntt_gamma"] = gammas
    eval_ts = run.settings.get("eval_timesteps")
    if eval_ts:
        res = c.evaluate(scale.data, timesteps=list(eval_ts), limit=scale.test, ann=False,
                         rates=False, device="cpu")
        rec["by_timesteps"] = {str(k): float(v) for k, v in res["by_timesteps"].items()}
    return rec
