"""The Python API of the skip-connection search (``snnc search`` calls it).

    from snnc.search import search
    res = search("zoo:resnet20", data="fashion-mnist", budget=50, batch=4, out="run/")
    res.best["drop"], res.best_dir          # best candidate, its compiled artifacts

Writes into `out`: ``journal.jsonl`` (every evaluation), ``best/`` (the best candidate, fine-tuned:
an ordinary output directory, docs/outputs.md, that `snnc.compiler.load`, `snnc inspect`,
`snnc cost`, `snnc export` and `snnc train` accept; its cost report is on the cost target under
the measured firing rates), ``summary.json`` and plots (``best_so_far.png``,
``gp_vs_observed.png``, ``pareto.png`` for the pareto objective).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snnc.search.evaluate import EvalSettings
from snnc.search.executors import make_executor
from snnc.search.loop import SearchConfig, run_search
from snnc.search.plots import (evals_of, pareto_front, plot_best_so_far, plot_gp_vs_observed,
                               plot_pareto)


@dataclass
class SearchResult:
    """What a search produced: the best evaluation, the Pareto set, the files written."""

    out: Path
    best: dict[str, Any]
    pareto: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def best_dir(self) -> Path:
        """Directory holding the best candidate's IR and compiled artifacts."""
        return self.out / "best"


def _has_energy(target: str) -> bool:
    """True when `target`'s file holds at least one usable energy constant."""
    from snnc.compiler import load_target

    return any(c.usable for c in load_target(target).section("energy").values())


def _settings_record(s: EvalSettings) -> dict[str, Any]:
    """The settings as journal data: in-memory data is named, not written out."""
    from dataclasses import replace

    from snnc.data import Dataset

    if isinstance(s.data, Dataset):
        s = replace(s, data=f"{s.data.name} ({len(s.data)} samples in memory)")
    return asdict(s)


def search(model: Any, *, data: Any = "fashion-mnist", out: str | Path = "search.snnc",
           config: SearchConfig | None = None, settings: EvalSettings | None = None,
           executor: str = "local", workers: int = 1, threads: int = 1, retries: int = 0,
           address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
           resume: bool = False, ann_epochs: int = 0, blocks: tuple[int, ...] | None = None,
           kinds=("S2S", "S2M", "V2V"), fractions=(0.25, 0.5, 1.0),
           max_energy_uj: float | None = None, max_cores: int | None = None,
           progress=None, log=print) -> SearchResult:
    """Run (or resume) a skip-connection search on `model` and write its reports.

    `data`: a dataset name, a snnc.data DataSpec, or a torch Dataset / DataLoader yielding
    (x, y) (ignored when `settings` is given: its ``data`` is used). Evaluations run on
    ``settings.device``; with `gpus_per_task` > 0 each Ray task reserves a GPU and ``auto``
    (the default) places its work there."""
    import torch

    from snnc.search.prepare import prepare

    cfg = config or SearchConfig()
    s = settings or EvalSettings(data=data)
    if gpus_per_task > 0 and str(s.device).lower() == "cpu":
        from snnc.compiler import SnncError

        raise SnncError(f"--gpus-per-task {gpus_per_task} reserves a GPU per evaluation but "
                        f"--device cpu keeps the work off it; use --device auto (or cuda).")
    out = Path(out)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)  # the parent is trained as the workers will fine-tune
    try:
        ev = prepare(model, s, ann_epochs=ann_epochs, seed=cfg.seed, blocks=blocks,
                     kinds=kinds, fractions=fractions, log=log)
    finally:
        torch.set_num_threads(old)
    ev.info["limits"] = {"max_energy_uj": max_energy_uj, "max_cores": max_cores}
    if cfg.objective != "drop" and not _has_energy(s.cost_target):
        from snnc.compiler import SnncError

        raise SnncError(f"--objective {cfg.objective} needs energy figures, but cost target "
                        f"'{s.cost_target}' has none; pass --cost-target loihi1 (or another "
                        "target with confirmed energy constants)")
    ex = make_executor(executor, ev, workers=workers, threads=threads, retries=retries,
                       address=address, num_cpus=cpus_per_task, num_gpus=gpus_per_task)
    try:
        state = run_search(ev.space, ex, cfg, out, resume=resume, accept=ev.feasible,
                           progress=progress,
                           header_extra={"model": str(model),
                                         "settings": _settings_record(ev.settings),
                                         "prepare": ev.info})
    finally:
        ex.close()
    return _report(ev, cfg, state, out, threads, str(model))


def _report(ev, cfg: SearchConfig, state, out: Path, threads: int,
            model: str = "") -> SearchResult:
    import torch

    from snnc.compiler import Compiled

    ok = [e for e in evals_of(out / "journal.jsonl") if e["status"] == "ok"]
    if not ok:
        from snnc.compiler import SnncError

        raise SnncError(f"{out}: no evaluation succeeded; see the 'error' field of the eval "
                        "records in journal.jsonl")
    best = min(ok, key=lambda e: e["objective"])
    front = []
    if all(e.get("energy_uj") is not None for e in ok):
        front = [ok[i] for i in pareto_front([(e["drop"], e["energy_uj"]) for e in ok])]
    # rebuild the best candidate: same seed, same thread count -> the journalled numbers
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from snnc.search.executors import seed_everything

        seed_everything(best["seed"])
        module, res = ev.run(tuple(best["levels"]), best["seed"])
    finally:
        torch.set_num_threads(old)
    bd = out / "best"
    s = ev.settings
    best_c = Compiled(ann=None, graph=module.to_graph(), source=model, options=s.options,
                      trained={"epochs": s.finetune_epochs, "accuracy": res["snn_acc"],
                               "config": {"search_eval": best["eval_id"],
                                          "data": _settings_record(s)["data"],
                                          "levels": list(best["levels"])}})
    best_c.save(bd, cost_rates=res["rates"] or None, cost_target=s.cost_target,
                force=True)  # the search owns best/
    files = [str(bd / n) for n in ("manifest.json", "graph.snnc", "graph.json",
                                   "graph.safetensors", "cost.json")]
    files.append(str(plot_best_so_far({cfg.method.upper(): [out / "journal.jsonl"]},
                                      out / "best_so_far.png")))
    gp = plot_gp_vs_observed(out / "journal.jsonl", out / "gp_vs_observed.png")
    if gp is not None:
        files.append(str(gp))
    if cfg.objective == "pareto":
        p = plot_pareto(out / "journal.jsonl", out / "pareto.png")
        if p is not None:
            files.append(str(p))
    summary = {"best": {k: best.get(k) for k in ("eval_id", "levels", "describe", "objective",
                                                 "drop", "snn_acc", "ann_acc", "energy_uj",
                                                 "mean_rate", "blocks")},
               "best_rerun_drop": res["drop"], "n_evals": len(state.evals),
               "pareto": [{k: e.get(k) for k in ("eval_id", "describe", "drop", "energy_uj")}
                          for e in front], "prepare": ev.info}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    files.append(str(out / "summary.json"))
    return SearchResult(out, best, front, files, ev.info)
