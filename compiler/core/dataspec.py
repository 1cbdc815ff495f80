"""Where data comes from and how to read it (docs/pytorch-backend.md "Data"): the DataSpec that
`--data`, `--calibrate` and `--normalize` produce, and the click decorator that makes it.

In the IR core because a compile option (`Options.normalize`, compiler/core/options.py) holds
one; snnc.data reads the files it names (snnc.data.load_dataset) and re-exports both
(snnc.data.files.DataSpec, snnc.data.options.data_options). click is imported only by the
decorators.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from snnc.compiler.core.errors import SnncError

LAYOUTS = ("NCHW", "NHWC")
FORMAT = ("keys", "layout", "mean", "std")  # how a data file is read: DataSpec's fields
DATA_HELP = ("digits | mnist | fashion-mnist (add -events for simulated event frames), an .npz "
             "(x/y or x_train/y_train/x_test/y_test), a directory of IDX files, or an "
             "ImageFolder directory")


@dataclass(frozen=True)
class DataSpec:
    """Where data comes from and how to read it: one object from the CLI to the loaders.

    `source`: a built-in name (``digits``, ``mnist``, ``fashion-mnist``, ``...-events``), an
    ``.npz``, a directory of IDX files or an ImageFolder directory. `keys`: the npz arrays to
    read, ``(x, y)`` or ``(x_train, y_train, x_test, y_test)``. `layout`: ``NCHW`` | ``NHWC`` |
    None (detect). `mean`/`std`: per-channel normalisation applied after scaling to [0, 1]."""

    source: str
    keys: tuple[str, ...] | None = None
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.keys is not None and len(self.keys) not in (2, 4):
            raise SnncError(f"--keys {','.join(self.keys)}: give two names (images,labels) or "
                            f"four (x_train,y_train,x_test,y_test).")
        if self.layout is not None and self.layout.upper() not in LAYOUTS:
            raise SnncError(f"--layout {self.layout}: use NCHW or NHWC.")
        if (self.mean is None) != (self.std is None):
            raise SnncError("--mean and --std go together: give both (one value per channel, "
                            "or one for all).")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise SnncError(f"--std {self.std}: every value must be positive.")

    @classmethod
    def of(cls, data) -> DataSpec:
        """`data` as a DataSpec (a string or path becomes its `source`)."""
        return data if isinstance(data, DataSpec) else cls(str(data))



def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    import click

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


def _remember(ctx, param, value):
    ctx.meta[f"snnc.data.{param.name}"] = value
    return value


def format_options(fn):
    """Add --keys, --layout, --mean and --std once per command. They are not handed to the
    command: every data flag of the command reads them (`data_options`)."""
    import click

    if any(getattr(p, "name", None) == "keys" for p in getattr(fn, "__click_params__", ())):
        return fn
    for opt in reversed((
            click.option("--keys", default=None, expose_value=False, callback=_remember,
                         help="npz array names: IMAGES,LABELS or XTR,YTR,XTE,YTE"),
            click.option("--layout", type=click.Choice(LAYOUTS, case_sensitive=False),
                         default=None, expose_value=False, callback=_remember,
                         help="image layout of an npz (default: detected)"),
            click.option("--mean", default=None, expose_value=False, callback=_remember,
                         help="per-channel mean to subtract, e.g. 0.5"),
            click.option("--std", default=None, expose_value=False, callback=_remember,
                         help="per-channel std to divide by, e.g. 0.25"))):
        fn = opt(fn)
    return fn


def data_options(required: bool = True, default: str | None = None, flag: str = "--data",
                 help: str | None = None, name: str = "data"):
    """Add `flag` (--data) and, once per command, --keys, --layout, --mean and --std; the
    command receives `name` (`data`): a DataSpec, or None when the flag is optional and
    absent. Every data flag of a command (`snnc cost`'s --calibrate and --normalize, `snnc
    search`'s --data and --normalize) reads its files with the same four options, so that
    one DataSpec describes the data wherever it is read."""
    import click

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            source = kwargs[name]
            meta = click.get_current_context().meta
            kwargs[name] = None if source is None else spec_from(
                source, *(meta.get(f"snnc.data.{k}") for k in FORMAT))
            return fn(*args, **kwargs)

        return click.option(flag, name, required=required, default=default,
                            show_default=default is not None, metavar="DATA",
                            help=help or DATA_HELP)(format_options(inner))

    return wrap
