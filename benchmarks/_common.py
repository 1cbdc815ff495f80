"""Helpers the benchmark scripts share (not a benchmark itself)."""

from __future__ import annotations

import time
from pathlib import Path


def best_of(fn, repeat: int) -> float:
    """The smallest wall time of `repeat` calls of `fn`."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def medians(fns: dict, repeat: int) -> dict:
    """{name: (median wall seconds, median CPU seconds of this process)} of `repeat` calls of
    each function, interleaved (one call of each per round: the machine is shared)."""
    import statistics

    wall: dict = {k: [] for k in fns}
    cpu: dict = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def export_densenet(path: Path, size: int, exporter: str = "torchscript") -> None:
    """densenet121 from the zoo (seed 0), exported by torch's TorchScript ONNX exporter, or
    with exporter="dynamo" by its dynamo exporter with its defaults (torch 2.13's default
    exporter: the weights in a data file beside `path`, `path.name + ".data"`)."""
    import contextlib
    import io
    import logging
    import warnings

    import torch

    from snnc import models

    torch.manual_seed(0)
    net = models.get("densenet121", num_classes=1000, input_size=size).eval()
    quiet = logging.getLogger("torch.onnx")  # the dynamo exporter logs skipped ops' names
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, size, size),), str(path),
                          dynamo=exporter == "dynamo")
    quiet.setLevel(level)
