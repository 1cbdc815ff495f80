"""snnc.experiments: the seed papers' claims rerun with snnc (docs/results.md).

    from snnc.experiments import run_experiment
    res = run_experiment("residual-modes", scale="smoke", out="results/residual-modes")
    res["summary"]["verdicts"]

One module per claim (``residual_modes``: paper 2 Table 2 / Fig. 3, ``bn_modes``: Table 5,
``encoding``: Table 4, ``latency``: Table 16 / sec. 5.2, ``skip_density``: paper 1 Fig. 1,
``search_vs_base``: paper 1 Table 1, ``bo_vs_rs``: paper 1 Fig. 3); ``core`` holds the scales,
the resumable results.json and the runner, ``snnrun`` one training run through snnc's API,
``searchrun`` the searches through snnc.search, ``paper2`` and ``plots`` the shared summaries
and figures. The top layer (docs/architecture.md): it uses the public API, the search,
the data and the models, and nothing imports it but the `snnc experiment` command.
"""

from snnc.experiments.core import EXPERIMENTS, SCALES, Run, Scale, run_experiment

__all__ = ["run_experiment", "EXPERIMENTS", "SCALES", "Scale", "Run"]
