"""The data options every command that reads data shares (`train`, `eval`, `search`, `cost
--calibrate`, `compile --normalize`): one click decorator producing one DataSpec (defined with
DataSpec in snnc.compiler.core.dataspec, which the compile options use too); and ``--device``
for the commands that run a network (docs/pytorch-backend.md "Devices")."""

from __future__ import annotations

import click

from snnc.compiler.core.dataspec import DATA_HELP, FORMAT, data_options, spec_from

__all__ = ["DATA_HELP", "FORMAT", "data_options", "spec_from", "device_option"]


def device_option():
    """Add ``--device cpu|cuda|auto`` (also cuda:N); the command receives `device` (a string,
    resolved by snnc.data.device.resolve_device where the work runs)."""
    return click.option("--device", default="auto", show_default=True, metavar="cpu|cuda|auto",
                        help="where the network runs: cpu, cuda (cuda:N) or auto (a CUDA GPU "
                             "when torch sees one, else the CPU)")
