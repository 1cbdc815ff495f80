"""The machinery every experiment shares: scales, runs, the resumable results.json, the runner.

An experiment module (one per claim, docs/results.md) defines

* ``NAME``, ``CITES`` (the paper's table / figure), ``CLAIM`` (one sentence) and ``PAPER`` (the
  paper's own figures, quoted for the results page);
* ``runs(scale) -> list[Run]``: what to train, one entry per (variant, seed);
* ``execute(run, scale, workdir) -> dict``: train and measure one run (a fresh process may
  run it: everything it needs is in its arguments);
* ``summarize(records, scale) -> dict``: per-variant mean / std and the verdict;
* ``plot(records, summary, out, scale) -> list[Path]``.

:func:`run_experiment` writes ``OUT/results.json`` after every finished run (atomically), so an
interrupted experiment resumes where it stopped: a run whose key is in results.json is never
redone. Working files (checkpoints, trained directories) go to the ``work`` folder inside OUT,
which ignores itself in git.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from snnc.compiler import SnncError

SCHEMA = 1

# name -> module under snnc.experiments (one module per claim of docs/results.md)
EXPERIMENTS = {
    "ann-scale": "ann_scale",
    "residual-modes": "residual_modes",
    "bn-modes": "bn_modes",
    "encoding": "encoding",
    "latency": "latency",
    "skip-density": "skip_density",
    "search-vs-base": "search_vs_base",
    "bo-vs-rs": "bo_vs_rs",
}


@dataclass(frozen=True)
class Scale:
    """How big every run of an experiment is (docs/results.md states it beside each table).

    The S-ResNet is paper 2's CIFAR topology (snnc.models.sresnet): ``blocks`` basic blocks per
    stage (6n + 2 layers), ``base`` filters in stage 1, its ``stem`` ("cifar": paper 2's 3x3
    stride-1 first conv; "cifar-s2": the same with stride 2) on ``input_size`` x ``input_size``
    Fashion-MNIST images (28: as stored; 32: zero-padded).
    ``train`` + ``val`` images come from the training split (the validation ones a seeded
    draw among them, used to keep the best epoch); ``test`` images of the test split are read
    once, after training."""

    name: str
    data: str = "fashion-mnist"
    blocks: int = 1
    base: int = 8
    stem: str = "cifar"
    input_size: int = 32
    timesteps: int = 4
    train: int = 20000
    val: int = 5000
    test: int = 10000
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3
    seeds: int = 3
    cost_target: str = "loihi1"  # a target with energy constants (docs/costmodel.md)

    def short(self) -> str:
        s2 = ", stride-2 stem" if self.stem == "cifar-s2" else ""
        return (f"scale {self.name}: S-ResNet{6 * self.blocks + 2}-{self.base}{s2}, {self.data} "
                f"{self.train} imgs, {self.epochs} ep, T={self.timesteps}")

    def describe(self) -> str:
        s2 = ", 3x3 stride-2 stem" if self.stem == "cifar-s2" else ""
        return (f"S-ResNet{6 * self.blocks + 2} (n={self.blocks}, {self.base} base filters{s2}), "
                f"{self.data} {self.input_size}x{self.input_size}, {self.train} training + "
                f"{self.val} validation images, "
                f"{self.test} test images, {self.epochs} epoch(s), T={self.timesteps}, "
                f"batch {self.batch_size}, Adam lr {self.lr} (cosine)")

    def sresnet(self):
        """The scale's S-ResNet ANN (untrained; seed torch before calling)."""
        from snnc.models.sresnet import sresnet

        return sresnet(self.blocks, self.base, num_classes=10, in_channels=1,
                       input_size=self.input_size, stem=self.stem)


FULL = Scale("full", base=16, stem="cifar-s2", input_size=28, train=55000, val=5000,
             epochs=3)

SCALES = {
    # CI: seconds, one seed; checks the plumbing (schema, plots), never the accuracy.
    "smoke": Scale("smoke", blocks=1, base=4, timesteps=2, train=96, val=32, test=64, epochs=1,
                   batch_size=32, seeds=1),
    # docs/results.md "Scales": the ANN of this net reaches 90.27 % (ann-scale), and an
    # experiment fits its budget on an idle 2-core machine (measured throughput).
    "full": FULL,
    # full's network, T and batch on 1,000 + 500 images, 1 epoch, 1,000 test images, 1 seed:
    # measures what a full run costs (its cpu_s, scaled by the image count) in minutes.
    "probe": replace(FULL, name="probe", train=1000, val=500, test=1000, epochs=1, seeds=1),
}


@dataclass(frozen=True)
class Run:
    """One training run: a variant of the experiment and a seed."""

    variant: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.variant}/seed{self.seed}"


def experiment_module(name: str):
    """The module of experiment `name` (SnncError listing the known names)."""
    if name not in EXPERIMENTS:
        raise SnncError(f"no experiment named '{name}'. Known: {', '.join(EXPERIMENTS)} "
                        f"(docs/results.md).")
    return importlib.import_module(f"snnc.experiments.{EXPERIMENTS[name]}")


def get_scale(scale: str | Scale, seeds: int | None = None) -> Scale:
    if isinstance(scale, str):
        if scale not in SCALES:
            raise SnncError(f"--scale {scale!r}: choose one of {', '.join(SCALES)}.")
        scale = SCALES[scale]
    if seeds is not None:
        if seeds < 1:
            raise SnncError(f"--seeds {seeds}: give at least 1.")
        scale = replace(scale, seeds=seeds)
    return scale


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def protocol_of(mod, scale: Scale) -> dict:
    """What, beyond the scale, decides an experiment's runs (its module's ``protocol(scale)``,
    e.g. a search's settings), as JSON data; {} for a module without one."""
    fn = getattr(mod, "protocol", None)
    return {} if fn is None else json.loads(json.dumps(fn(scale), default=_jsonable,
                                                       sort_keys=True))


def _load_results(path: Path, name: str, scale: Scale, resume: bool,
                  protocol: dict | None = None) -> dict:
    if not path.is_file():
        return {}
    if not resume:
        raise SnncError(f"{path} exists: pass --resume to continue that experiment (finished "
                        f"runs are kept), or choose another -o directory.")
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SnncError(f"{path}: not valid JSON ({e}); move it away to start over.") from None
    if old.get("experiment") != name or old.get("scale", {}).get("name") != scale.name:
        raise SnncError(f"{path} holds experiment '{old.get('experiment')}' at scale "
                        f"'{old.get('scale', {}).get('name')}', not '{name}' at '{scale.name}'; "
                        f"use another -o directory.")
    if old.get("scale") != asdict(scale):
        raise SnncError(f"{path} was run with other scale settings ({old.get('scale')}); "
                        f"resuming would mix them. Use another -o directory.")
    if old.get("protocol", {}) != (protocol or {}):
        raise SnncError(f"{path} was run with another protocol ({old.get('protocol', {})}, now "
                        f"{protocol}); resuming would mix them. Use another -o directory.")
    return {r["key"]: r for r in old.get("runs", [])}


def _execute_in_process(modname: str, run: Run, scale: Scale, workdir: str, threads: int):
    """Worker entry point (a spawned process runs it): one run, timed."""
    import torch

    torch.set_num_threads(threads)
    mod = importlib.import_module(modname)
    t0, c0 = time.perf_counter(), time.process_time()
    rec = mod.execute(run, scale, Path(workdir))
    rec.update(key=run.key, variant=run.variant, seed=run.seed, settings=run.settings,
               wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
               finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return rec


def command_line(name: str, scale: Scale, out: Path) -> str:
    return (f"snnc experiment {name} --scale {scale.name} --seeds {scale.seeds} -o {out}"
            + (" --resume" if scale.name != "smoke" else ""))


def run_experiment(name: str, *, scale: str | Scale = "smoke", seeds: int | None = None,
                   out: str | Path | None = None, resume: bool = False, jobs: int = 1,
                   threads: int = 1, progress: bool = True,
                   log: Callable[[str], None] = print) -> dict:
    """Run (or resume) experiment `name` and write ``OUT/results.json`` and its plots.

    `jobs` > 1 trains that many runs at once in spawned processes (each with `threads` torch
    threads); results.json is rewritten after every finished run. Returns the results dict."""
    mod = experiment_module(name)
    sc = get_scale(scale, seeds)
    out = Path(out if out is not None else Path("results") / name)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    (work / ".gitignore").write_text("*\n")
    path = out / "results.json"
    shared = out.parent / "_trained"  # trainings identical across experiments, done once
    protocol = protocol_of(mod, sc)
    done = _load_results(path, name, sc, resume, protocol)
    runs = mod.runs(sc)
    todo = [r for r in runs if r.key not in done]
    if done:
        log(f"resuming {path}: {len(runs) - len(todo)} of {len(runs)} run(s) already finished")
    results = {"schema": SCHEMA, "experiment": name, "cites": mod.CITES, "claim": mod.CLAIM,
               "paper": mod.PAPER, "scale": asdict(sc), "scale_text": sc.describe(),
               "command": command_line(name, sc, out), "runs": []}
    if protocol:
        results["protocol"] = protocol

    def save() -> None:
        results["runs"] = [done[r.key] for r in runs if r.key in done]
        results["wall_s_total"] = sum(r.get("wall_s", 0.0) for r in results["runs"])
        results["cpu_s_total"] = sum(r.get("cpu_s", 0.0) for r in results["runs"])
        _write_json(path, results)

    from tqdm import tqdm

    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc=name, unit="run",
               disable=not progress)
    modname = mod.__name__
    train_key = getattr(mod, "train_key", None)
    if train_key is not None:
        shared.mkdir(exist_ok=True)
        (shared / ".gitignore").write_text("*\n")

    def workdir(r: Run) -> str:
        """Where run `r` trains: its key's folder in OUT's work folder, or, for a module that
        names what determines its training (``train_key``), a folder named by that digest in
        the ``_trained`` folder beside OUT: an S2S / BNTT / direct run is the same training in
        residual-modes, bn-modes, encoding and latency, and a second experiment measures the
        first one's trained net instead of retraining it (run the experiments one after
        another, not at once, for this to hold)."""
        if train_key is None:
            return str(work / r.key)
        return str(shared / train_key(r, sc))
    if jobs <= 1 or len(todo) <= 1:
        import torch

        old = torch.get_num_threads()
        try:
            for r in todo:
                bar.set_postfix_str(r.key)
                done[r.key] = _execute_in_process(modname, r, sc, workdir(r), threads)
                save()
                bar.update(1)
        finally:
            torch.set_num_threads(old)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_execute_in_process, modname, r, sc, workdir(r), threads): r
                    for r in todo}
            for f in as_completed(futs):
                r = futs[f]
                done[r.key] = f.result()
                save()
                bar.update(1)
                bar.set_postfix_str(f"last: {r.key}")
    bar.close()
    save()
    results["summary"] = mod.summarize(results["runs"], sc)
    results["plots"] = [str(Path(p).name) for p in mod.plot(results["runs"], results["summary"],
                                                             out, sc)]
    _write_json(path, results)
    log(f"wrote {path} and {', '.join(results['plots'])} in {out}/")
    return results


# -- statistics and verdicts shared by the experiments ------------------------------------------

def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def by_variant(records: list[dict], key: Callable[[dict], float]) -> dict[str, dict]:
    """{variant: {"mean", "std", "n", "values"}} of `key(record)` over the seeds."""
    groups: dict[str, list[float]] = {}
    for r in records:
        groups.setdefault(r["variant"], []).append(key(r))
    out = {}
    for v, vals in groups.items():
        m, s = mean_std(vals)
        out[v] = {"mean": m, "std": s, "n": len(vals), "values": vals}
    return out


def compare(a: dict, b: dict, *, at_least: bool = False) -> str:
    """Verdict on the claim "a > b" (or "a >= b" with `at_least`) from two {"mean", "std", "n"}
    rows: "reproduced" when the means differ in the claimed direction by more than the larger
    seed std (for ">=": when a is not below b by more than that), "reversed" when they differ the
    other way by more than it, else "not reproduced" (the difference is within the seed noise).
    With a single seed the std is 0 and only the sign counts."""
    noise = max(a["std"], b["std"])
    d = a["mean"] - b["mean"]
    if at_least:
        return "reproduced" if d >= -noise else "reversed"
    if d > noise:
        return "reproduced"
    if d < -noise:
        return "reversed"
    return "not reproduced"
