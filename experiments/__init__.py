"""snnc.experiments: the seed papers' claims rerun with snnc (docs/results.md).

    from snnc.experiments import run_experiment
    res = run_experiment("residual-modes", scale="smoke", out="results/residual-modes")
    res["summary"]["verdicts"]

One module per claim (``residual_modes``: paper 2 Table 2 / Fig. 3, ``bn_modes``: Table 5,
``encoding``: Table 4, ``latency``: Table 16 / sec. 5.2); ``core`` holds the scales, the
resumable results.json and the runner, ``snnrun`` one S-ResNet training run through snnc's API,
``plots`` the figures. The top layer (docs/architecture.md): it uses the public API, the search,
the data and the models, and nothing imports it but the `snnc experiment` command.
"""

from snnc.experiments.core import EXPERIMENTS, SCALES, Run, Scale, run_experiment

__all__ = ["run_experiment", "EXPERIMENTS", "SCALES", "Scale", "Run"]
