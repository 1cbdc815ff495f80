"""The compile options: one keyword-only dataclass, the single description of what `compile`
can be asked to do (docs/options.md).

    from snnc.compiler.core.options import Options
    o = Options(residual="s2m", target="loihi2", timesteps=4)   # validated on construction
    o.replace(timesteps=8)                                       # a validated copy

Each field carries its command-line spec (`opt(...)`): `cli_options()` turns the fields into the
click options of `snnc compile`, `inspect`, `cost` and `search` and hands the command one
`options=Options(...)`; `conversion_pipeline(options)` reads it; `Compiled.save` records
`as_dict()` in manifest.json and `load` reads it back with `from_dict`.

Adding an option means adding one field here with its `opt(...)` spec (and, where it is not a
plain choice or range, a check in `_CHECKS`): the CLI, the API, the manifest and the pipeline's
argument then all carry it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snnc.compiler.core.dataspec import FORMAT, DataSpec, data_options
from snnc.compiler.core.errors import SnncError

RESIDUAL_MODES = ("s2s", "s2m", "v2v")
ENCODERS = ("auto", "direct", "poisson", "events")
BN_MODES = ("bntt", "shared", "fold")


@dataclass(frozen=True)
class CliSpec:
    """How one option appears on the command line (click is imported only by `cli_options`).

    `decls`: the flags ("--residual", "-T/--timesteps" as two strings, or "--bntt/--no-bntt" for
    an on/off flag); empty = not on the command line. `choices`: allowed values (also checked
    for Python callers). `range`: (lo, hi) inclusive bounds, None for an open side. `multiple`:
    repeatable, collected into a tuple.
    """

    decls: tuple[str, ...] = ()
    help: str = ""
    choices: tuple[Any, ...] | None = None
    type: type | None = None
    range: tuple[float | None, float | None] | None = None
    multiple: bool = False
    metavar: str | None = None
    data: bool = False  # a data source: snnc.data.options.data_options (--keys, --layout, ...)


def opt(default: Any, *decls: str, help: str = "", choices: Iterable[Any] | None = None,
        type: type | None = None, range: tuple | None = None, multiple: bool = False,
        metavar: str | None = None, data: bool = False) -> Any:
    """A dataclass field of `Options` with its CLI spec (see `CliSpec`)."""
    spec = CliSpec(tuple(decls), help, tuple(choices) if choices is not None else None, type,
                   range, multiple, metavar, data)
    return field(default=default, metadata={"cli": spec})


@dataclass(frozen=True, kw_only=True)
class Options:
    """Everything that decides what `compile` produces (recorded in manifest.json).

    Keyword-only; validated on construction (a bad value is an SnncError naming the flag).
    """

    residual: str = opt("s2s", "--residual", choices=RESIDUAL_MODES,
                        help="How ASC skips become spiking residuals (paper 2).")
    target: str = opt("generic", "--target",
                      help="Target name (`snnc targets`) or a target YAML file.")
    timesteps: int | str = opt(8, "-T", "--timesteps", type=str, metavar="N|auto",
                               help="Time steps T, or auto: the shortest input-to-readout delay "
                                    "depth plus --window (docs/passes.md \"Delay depth\").")
    window: int = opt(8, "--window", type=int, range=(1, None),
                      help="Integration steps after the delay depth for --timesteps auto.")
    leak: float = opt(0.874, "--leak", type=float, range=(0.0, 1.0),  # paper 2 sec. 3.5
                      help="LIF leak factor lambda (paper 2 eq. 3).")
    threshold: float = opt(1.0, "--threshold", type=float, help="LIF threshold U_th.")
    encoder: str = opt("auto", "--encoder", choices=ENCODERS,
                       help="Input encoding; auto = the target file's encoder_default "
                            "(direct, or poisson on binary-only chips).")
    bn: str = opt("auto", "--bn", choices=("auto",) + BN_MODES,
                  help="Batch norm while training (docs/passes.md \"Batch-norm modes\"): bntt "
                       "= per-step statistics and affine (paper 2), shared = one BN shared "
                       "over time steps, fold = folded into the weights; auto = the target "
                       "file's bn_default under target semantics (shared on loihi2: trained "
                       "folded into the quantised weights and deployed folded; fold on nir; "
                       "docs/lava.md \"Deployable default\"), bntt otherwise.")
    bntt: bool | None = opt(None, "--bntt/--no-bntt", type=bool,
                            help="Older spelling: --bntt = --bn bntt, --no-bntt = --bn fold.")
    semantics: str = opt("target", "--semantics", choices=("target", "paper"),
                         help="Train the target's own neuron (target) or paper 2's (paper).")
    reset: str | None = opt(None, "--reset", choices=("subtract", "zero"),
                            help="LIF reset (default: the semantics' own: subtract for the "
                                 "paper's neuron, the target file's under target semantics).")
    boost: bool = opt(False, "--boost/--no-boost", type=bool,
                      help="Boosting (voting) output layer, paper 2 sec. 3.2.3.")
    passes: tuple[str, ...] = opt((), "--pass", multiple=True, metavar="SPEC",
                                  help="Extra pass after the pipeline: NAME{k=v} or "
                                       "module:function{k=v}.")
    pass_options: tuple[str, ...] = opt((), "--pass-option", multiple=True,
                                        metavar="PASS.KEY=VALUE",
                                        help="An option of a pass inside the pipeline, e.g. "
                                             "quantize.on_clip=error or quantize.exp=1.")
    # Conversion (docs/passes.md "Conversion"): calibration data, percentile, sample count.
    normalize: Any = opt(None, "--normalize", metavar="DATA", data=True,
                         help="Data-based normalisation for ANN-to-SNN conversion: "
                              "calibrate weights and thresholds on DATA's training images "
                              "(anything --data takes, read with --keys/--layout/--mean/"
                              "--std); use with --leak 1.")
    percentile: float = opt(99.9, "--percentile", type=float, range=(0.0, 100.0),
                            help="Activation percentile for --normalize (Rueckauer et al. "
                                 "2017; 100 = the maximum, Diehl et al. 2015).")
    calibration_samples: int = opt(1000, "--calibration-samples", type=int, range=(1, None),
                                   help="Training images --normalize calibrates on.")
    init_membrane: float | None = opt(None, "--init-membrane", type=float, range=(0.0, 1.0),
                                      metavar="F",
                                      help="With --normalize: every lif starts at F x its "
                                           "threshold (Bu et al. 2022; default 0.5 for a "
                                           "neuron that resets by subtraction, 0 for one that "
                                           "resets to zero).")
    calibrate_rates: int | None = opt(None, "--calibrate-rates", type=int, range=(0, None),
                                      metavar="N",
                                      help="With --normalize: N rounds of layer-wise threshold "
                                           "calibration with the SNN's own neuron (after Li et "
                                           "al. 2021; default 3 for a neuron that resets to "
                                           "zero, 0 for one that resets by subtraction).")
    calibrate_bias: int | None = opt(None, "--calibrate-bias", type=int, range=(0, None),
                                     metavar="N",
                                     help="With --normalize: N rounds of per-channel bias "
                                          "correction with the SNN's own neuron, after the "
                                          "threshold rounds, then the classifier's bias per "
                                          "class (Li et al. 2021; default 4 for a "
                                          "neuron that resets to zero, 0 for one that resets by "
                                          "subtraction).")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _convert(f, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            spec: CliSpec = f.metadata["cli"]
            _check_field(f.name, spec, value)
        for check in _CHECKS:
            check(self)

    def replace(self, **changes: Any) -> Options:
        """A validated copy with `changes` (unknown names are an SnncError)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready {name: value} (tuples as lists, a DataSpec as its dict), as recorded in
        manifest.json."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Options:
        """Options from a manifest's record; names this version does not know are dropped
        (a manifest written by a newer snnc), missing ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _from_plain(v) if cls.__dataclass_fields__[k].metadata["cli"].data
                      else v for k, v in data.items() if k in names})

    @classmethod
    def build(cls, options: Options | None = None, **overrides: Any) -> Options:
        """`options` (default: the defaults) with `overrides` applied, validated."""
        base = options if options is not None else cls()
        return base.replace(**overrides) if overrides else base


def option_names() -> tuple[str, ...]:
    """The names of the compile options, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(Options))


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, DataSpec):
        return {k: _plain(x) for k, x in dataclasses.asdict(v).items()}
    return v


def _from_plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return DataSpec(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})
    return v


def _check_names(names: Iterable[str]) -> None:
    known = option_names()
    bad = [n for n in names if n not in known]
    if bad:
        raise SnncError(f"unknown compile option(s) {', '.join(map(repr, bad))}; the options "
                        f"are: {', '.join(known)}.")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _convert(f: dataclasses.Field, value: Any) -> Any:
    spec: CliSpec = f.metadata["cli"]
    if spec.multiple:
        if isinstance(value, str):
            value = (value,)
        return tuple(value)
    if spec.type is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value  # a number for a number-or-word option (timesteps: N | auto)
    if value is None or spec.type is None or isinstance(value, spec.type):
        if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if spec.type is bool:
            if value in (0, 1):
                return bool(value)
            raise ValueError
        if spec.type is int and (isinstance(value, bool) or float(value) != int(value)):
            raise ValueError
        return spec.type(value)
    except (TypeError, ValueError):
        raise SnncError(f"option {f.name}={value!r} ({_flag(f.name)}): expected "
                        f"{spec.type.__name__}.") from None


def _check_field(name: str, spec: CliSpec, value: Any) -> None:
    if spec.choices is not None and value is not None and value not in spec.choices:
        raise SnncError(f"option {name}={value!r} is not one of "
                        f"{', '.join(map(str, spec.choices))} ({_flag(name)} on the command "
                        f"line).")
    if spec.range is not None and value is not None:
        lo, hi = spec.range
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            where = (f"at least {lo}" if hi is None else f"in [{lo}, {hi}]")
            raise SnncError(f"option {name} ({_flag(name)}) must be {where} (got {value}).")


def _threshold_positive(o: Options) -> None:
    if o.threshold <= 0:
        raise SnncError(f"option threshold (--threshold) must be positive (got {o.threshold}).")


def _timesteps(o: Options) -> None:
    """T is a positive integer or "auto" (resolved by `compile`, compiler/core/delays.py)."""
    t = o.timesteps
    if t == "auto":
        return
    try:
        v = int(t)
        if isinstance(t, bool) or float(t) != v:
            raise ValueError
    except (TypeError, ValueError):
        raise SnncError(f"option timesteps={t!r} (-T/--timesteps): give a positive integer or "
                        f"'auto'.") from None
    if v < 1:
        raise SnncError(f"option timesteps (-T/--timesteps) must be at least 1 (got {v}).")
    object.__setattr__(o, "timesteps", v)


def _percentile_positive(o: Options) -> None:
    if o.percentile <= 0:
        raise SnncError(f"option percentile (--percentile) must lie in (0, 100] (got "
                        f"{o.percentile}).")


def _data_sources(o: Options) -> None:
    """A data option (`normalize`) is a source string, a DataSpec (a path becomes its string)
    or, from Python, data that stays in memory (a tensor, a torch Dataset or DataLoader,
    recorded by `compile` as ``<TypeName>``); a DataSpec that sets no reading option is its
    source, so that the CLI and Python record the same value."""
    import os

    for f in dataclasses.fields(o):
        v = getattr(o, f.name)
        if not f.metadata["cli"].data or v is None:
            continue
        if isinstance(v, os.PathLike):
            v = str(v)
        elif isinstance(v, DataSpec):
            if not any(getattr(v, k) is not None for k in FORMAT):
                v = v.source
        elif not isinstance(v, str):
            raise SnncError(f"option {f.name} ({_flag(f.name)}): give a dataset name or path, "
                            f"a snnc.data.DataSpec, or pass the data to compile() (got "
                            f"{type(v).__name__}).")
        object.__setattr__(o, f.name, v)


def _bn_alias(o: Options) -> None:
    """`bntt` is the older spelling of `bn` (True = bntt, False = fold): fold it into `bn` and
    clear it, so that equal settings compare and record equal."""
    if o.bntt is None:
        return
    want = "bntt" if o.bntt else "fold"
    if o.bn not in (want, "auto"):
        raise SnncError(f"options bn={o.bn!r} and bntt={o.bntt} disagree (--bn {o.bn} and "
                        f"--{'' if o.bntt else 'no-'}bntt); give only bn (--bn).")
    object.__setattr__(o, "bn", want)
    object.__setattr__(o, "bntt", None)


# Checks beyond a field's choices/range (whole-object rules); `_bn_alias` also normalises.
_CHECKS: list[Callable[[Options], None]] = [_threshold_positive, _bn_alias, _timesteps,
                                             _percentile_positive, _data_sources]


def cli_options(*, only: Iterable[str] | None = None, exclude: Iterable[str] = (),
                defaults: Mapping[str, Any] | None = None):
    """Click decorator: one click option per `Options` field (all, or `only`, minus `exclude`),
    handed to the command as a single ``options=Options(...)`` keyword.

    `defaults` overrides a field's default for this command (e.g. the search's T=4). Used by
    `snnc compile`, `inspect`, `cost` and `search`, so that every command spells an option the
    same way.
    """
    import click

    fields = [f for f in dataclasses.fields(Options) if f.metadata["cli"].decls]
    if only is not None:
        keep = set(only)
        _check_names(keep)
        fields = [f for f in fields if f.name in keep]
    skip = set(exclude)
    fields = [f for f in fields if f.name not in skip]
    defaults = dict(defaults or {})
    _check_names(defaults)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            values = {f.name: kw.pop(f.name) for f in fields if f.name in kw}
            kw["options"] = Options(**values)
            return fn(*args, **kw)

        for f in reversed(fields):
            if f.metadata["cli"].data:  # --normalize DATA: read as --data (one DataSpec)
                spec = f.metadata["cli"]
                wrapper = data_options(required=False, default=defaults.get(f.name, f.default),
                                       flag=spec.decls[0], help=spec.help,
                                       name=f.name)(wrapper)
            else:
                wrapper = _click_option(click, f, defaults.get(f.name, f.default))(wrapper)
        return wrapper

    return decorate


def _click_option(click, f: dataclasses.Field, default: Any):
    spec: CliSpec = f.metadata["cli"]
    kw: dict[str, Any] = dict(help=spec.help, default=default)
    if spec.multiple:
        kw.update(multiple=True, default=tuple(default), show_default=False)
    elif spec.choices is not None:
        kw.update(type=click.Choice([str(c) for c in spec.choices]))
    elif spec.range is not None:
        rng = click.IntRange if spec.type is int else click.FloatRange
        kw.update(type=rng(min=spec.range[0], max=spec.range[1]))
    elif spec.type is not None and spec.type is not bool:
        kw.update(type=spec.type)
    if default is not None and not spec.multiple:
        kw["show_default"] = True
    if spec.metavar:
        kw["metavar"] = spec.metavar
    return click.option(*spec.decls, f.name, **kw)
