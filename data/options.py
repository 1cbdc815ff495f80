"""The data options every command that reads data shares (`train`, `eval`, `search`, `cost
--calibrate`, `compile --normalize`): one click decorator producing one DataSpec; and
``--device`` for the commands that run a network (docs/pytorch-backend.md "Devices")."""

from __future__ import annotations

import functools

import click

from snnc.data.files import DataSpec


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give comma-separated numbers", param_hint=name)


def spec_from(data: str, keys: str | None = None, layout: str | None = None,
              mean: str | None = None, std: str | None = None) -> DataSpec:
    """The DataSpec for the CLI's --data/--keys/--layout/--mean/--std values."""
    return DataSpec(data, tuple(keys.split(",")) if keys else None,
                    layout.upper() if layout else None,
                    _floats(mean, "--mean"), _floats(std, "--std"))


DATA_HELP = ("digits | mnist | fashion-mnist (add -events for simulated event frames), an .npz "
             "(x/y or x_train/y_train/x_test/y_test), a directory of IDX files, or an "
             "ImageFolder directory")


def data_options(required: bool = True, default: str | None = None, flag: str = "--data",
                 help: str | None = None):
    """Add `flag` (--data), --keys, --layout, --mean and --std; the command receives `data` (a
    DataSpec, or None when the flag is optional and absent). `snnc cost` names its flag
    --calibrate."""

    def wrap(fn):
        @click.option(flag, "data_source", required=required, default=default,
                      show_default=default is not None, metavar="DATA",
                      help=help or DATA_HELP)
        @click.option("--keys", default=None,
                      help="npz array names: IMAGES,LABELS or XTR,YTR,XTE,YTE")
        @click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False),
                      default=None, help="image layout of an npz (default: detected)")
        @click.option("--mean", default=None, help="per-channel mean to subtract, e.g. 0.5")
        @click.option("--std", default=None, help="per-channel std to divide by, e.g. 0.25")
        @functools.wraps(fn)
        def inner(*args, data_source, keys, layout, mean, std, **kwargs):
            kwargs["data"] = (None if data_source is None
                              else spec_from(data_source, keys, layout, mean, std))
            return fn(*args, **kwargs)

        return inner

    return wrap


def device_option():
    """Add ``--device cpu|cuda|auto`` (also cuda:N); the command receives `device` (a string,
    resolved by snnc.data.device.resolve_device where the work runs)."""
    return click.option("--device", default="auto", show_default=True, metavar="cpu|cuda|auto",
                        help="where the network runs: cpu, cuda (cuda:N) or auto (a CUDA GPU "
                             "when torch sees one, else the CPU)")
