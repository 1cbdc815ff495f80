"""Hardware targets as data: the only source of target policy (docs/targets.md).

The bottom layer of snnc: passes, backends and the cost model read targets from here (the passes
never import the cost model). Every file is validated against the schema in
``snnc.compiler.targets.schema`` (pydantic): an unknown or misspelt key is a TargetError naming
the key and the file. The pipeline records the facts a pass or backend needs in the graph's
attributes (``Target.graph_attrs``), so that a backend reads the graph, never a target name.

One YAML file per target in ``compiler/targets/`` (shipped as package data); users add targets
with ``load_target("path/to/file.yaml")`` or by putting files in a directory named by the
``SNNC_TARGETS`` environment variable (``os.pathsep``-separated list). Every constant carries
``value``, ``unit``, ``band`` ([lo, hi] or none), ``source`` and ``status``:

* ``P`` primary, ``D`` derived: used, printed with their source;
* ``T`` transcription: used, and every report says "from a transcription";
* ``S`` secondary, ``UNCONFIRMED``: never used for a joule or second figure (counts and limits
  only); energy built on them appears only as a labelled band with ``allow_unconfirmed``.

A file may hold ``variants`` (e.g. cmos45 ``fp32``/``int8``): ``load_target("cmos45:int8")``
merges the variant's sections over the base; ``load_target("cmos45")`` uses ``default_variant``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from snnc.compiler.core.errors import TargetError
from snnc.compiler.targets.schema import LAVA_FIXED, SECTIONS, STATUSES, validate

__all__ = ["Constant", "Target", "load_target", "available_targets", "STATUSES", "USABLE",
           "SECTIONS"]

USABLE = frozenset({"P", "D", "T"})  # may feed a joule or second figure
_BUILTIN = Path(__file__).parent


@dataclass(frozen=True)
class Constant:
    """One sourced number (or list/table) of a target."""

    name: str
    value: Any
    unit: str = ""
    band: tuple[float, float] | None = None
    source: str = ""
    status: str = "P"
    note: str = ""

    @property
    def usable(self) -> bool:
        """True when this constant may feed an energy or time figure (P, D or T, not null)."""
        return self.status in USABLE and self.value is not None

    @property
    def transcribed(self) -> bool:
        return self.status == "T"


@dataclass(frozen=True)
class Target:
    """A hardware target: neuron semantics, limits and per-operation costs, each sourced.

    ``constants`` maps ``"<section>.<name>"`` (sections: neuron, features, capacity, energy,
    time, power)
    to a :class:`Constant`. ``reference`` holds measured whole-network results (not constants).
    """

    name: str
    description: str
    path: str
    constants: Mapping[str, Constant]
    variant: str | None = None
    variants: tuple[str, ...] = ()
    validity: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)
    mapping: str = "none"  # core-allocation model: none | loihi | truenorth | speck | loihi2

    @property
    def full_name(self) -> str:
        return self.name if self.variant is None else f"{self.name}:{self.variant}"

    # -- lookups ----------------------------------------------------------------------------
    def get(self, key: str) -> Constant | None:
        """The constant `key` ("energy.synop"), or None when the target does not define it."""
        return self.constants.get(key)

    def value(self, key: str, default: Any = None) -> Any:
        """The value of `key` whatever its status (for counts, limits, semantics)."""
        c = self.constants.get(key)
        return default if c is None or c.value is None else c.value

    def section(self, name: str) -> dict[str, Constant]:
        pre = name + "."
        return {k[len(pre):]: c for k, c in self.constants.items() if k.startswith(pre)}

    # -- neuron semantics the passes need ---------------------------------------------------
    @property
    def reset(self) -> str:
        """`subtract` or `zero`."""
        return self.value("neuron.reset", "subtract")

    @property
    def fire(self) -> str:
        """`ge` (u >= theta, paper) or `gt` (u > theta, Loihi / snnTorch)."""
        return self.value("neuron.fire", "ge")

    @property
    def weight_bits(self) -> int | None:
        """Synaptic weight bits (None = floating point)."""
        return self.value("neuron.weight_bits")

    @property
    def state_bits(self) -> int | None:
        return self.value("neuron.state_bits")

    @property
    def decay_denominator(self) -> int | None:
        """Leak granularity: decay = d / denominator (4096 on Loihi); None = real-valued."""
        return self.value("neuron.decay_denominator")

    @property
    def synaptic_delay(self) -> int:
        """Time steps a spike takes through one layer (0 = same step, paper semantics)."""
        return int(self.value("neuron.synaptic_delay", 0))

    @property
    def graded_spikes(self) -> bool:
        return bool(self.value("neuron.graded_spikes", True))

    @property
    def graded_bits(self) -> int | None:
        """Payload bits of a graded spike (None = unbounded/float, 0 = binary only)."""
        if not self.graded_spikes:
            return 0
        return self.value("neuron.graded_bits")

    @property
    def threshold_scale(self) -> int | None:
        """Thresholds are int(theta * scale) / scale (Loihi 2: vThMant = theta * 64)."""
        return self.value("neuron.threshold_scale")

    @property
    def arithmetic(self) -> str:
        """`float`, or `lava-fixed` (Lava's bit-accurate CUBA: quantize pass, fixed-point
        PyTorch neuron) under target semantics."""
        return self.value("neuron.arithmetic", "float")

    @property
    def encoder_default(self) -> str:
        """What `--encoder auto` becomes: `direct` (graded input) or `poisson`."""
        return self.value("features.encoder_default",
                          "direct" if self.graded_spikes else "poisson")

    @property
    def bn_default(self) -> str:
        """What `--bn auto` becomes under target semantics: bntt, shared or fold."""
        return self.value("features.bn_default", "bntt")

    @property
    def maxpool(self) -> bool:
        """True when the chip runs max pooling (else the pipeline turns it into avgpool)."""
        return bool(self.value("features.maxpool", True))

    def graph_attrs(self, semantics: str) -> dict[str, Any]:
        """The facts recorded in an SNN graph's attributes by the pipeline (snn-attrs), so that
        backends read the graph, never a target name (docs/ir.md "Graph attributes").

        Under `paper` semantics the neuron is paper 2's (no delay, float arithmetic) whatever
        the target; graded spikes are the target's in both."""
        exact = semantics == "target"
        return {"synaptic_delay": self.synaptic_delay if exact else 0,
                "arithmetic": self.arithmetic if exact else "float",
                "graded_spikes": self.graded_spikes, "graded_bits": self.graded_bits}

    @functools.cached_property
    def limits(self) -> dict[str, Any]:
        """Capacity values by name (neurons_per_core, in_axons_per_core, ...); computed once."""
        return {k: c.value for k, c in self.section("capacity").items()}

    def transcribed_constants(self) -> list[Constant]:
        return [c for c in self.constants.values() if c.status == "T"]

    def __str__(self) -> str:
        return self.full_name


# -- loading ----------------------------------------------------------------------------------
def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("SNNC_TARGETS", "").split(os.pathsep) if p]
    return dirs + [_BUILTIN]


_LISTING: tuple[tuple, dict[str, Path]] = ((), {})


def _files() -> dict[str, Path]:
    """{target name: file} over the search directories. The listing is kept while every
    directory's modification time is unchanged (adding, removing or renaming a file changes
    it; a file's own edits are `_parse`'s stamp): a compile asks ~10 times."""
    global _LISTING
    dirs = _search_dirs()
    key = []
    for d in dirs:
        try:
            st = os.stat(d)
            key.append((str(d), st.st_mtime_ns, st.st_ino))
        except OSError:
            key.append((str(d), None, None))
    key = tuple(key)
    if _LISTING[0] == key:
        return dict(_LISTING[1])
    found: dict[str, Path] = {}
    for d in reversed(dirs):  # user directories override built-ins
        if d.is_dir():
            for f in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
                found[f.stem] = f
    _LISTING = (key, found)
    return dict(found)


def available_targets() -> list[str]:
    """Names `load_target` accepts: built-in files plus those in `SNNC_TARGETS` directories."""
    return sorted(_files())


def load_target(name_or_path: str | os.PathLike | Target = "generic") -> Target:
    """The target `name_or_path`: a name ("loihi1", "cmos45:int8") or a YAML file path.

    Raises TargetError (listing the known names) for an unknown name, and for a file that is
    not a valid target description.
    """
    if isinstance(name_or_path, Target):
        return name_or_path
    spec = str(name_or_path)
    base, _, variant = spec.partition(":")
    p = Path(base)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise TargetError(f"target file '{p}' does not exist; pass an existing YAML file or "
                              f"one of: {', '.join(available_targets())}")
        path = p
    else:
        files = _files()
        if base not in files:
            raise TargetError(f"unknown target '{spec}'; known targets: "
                              f"{', '.join(sorted(files))}. Add one with --target FILE.yaml or a "
                              f"directory in SNNC_TARGETS (see docs/targets.md)")
        path = files[base]
    try:
        st = path.stat()
    except OSError:
        return _parse(path.resolve(), variant or None, None)
    return _parse(_resolved(path, st), variant or None, st.st_mtime_ns)


# {(path as given, device, inode, modification and change times): path.resolve()}: the file
# a path names, resolved once per file it names (`resolve` walks every component, ~18 us; a
# compile and its cost report load the target ~13 times). A path that comes to name another
# file (a link moved, a file replaced, the working directory changed under a relative path)
# names another inode, or the same inode number reused at another time: resolved again.
# Bounded: cleared when it grows past 256.
_RESOLVED: dict[tuple, Path] = {}


def _resolved(path: Path, st: os.stat_result) -> Path:
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    got = _RESOLVED.get(key)
    if got is None:
        if len(_RESOLVED) >= 256:
            _RESOLVED.clear()
        got = _RESOLVED[key] = path.resolve()
    return got


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=64)
def _parse(path: Path, variant: str | None, stamp: int | None = None) -> Target:
    """The Target in `path` (cached per file modification time `stamp`: a Target is frozen)."""
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as err:
        raise TargetError(f"target file '{path}' cannot be read as YAML: {err}. Fix the file "
                          f"(docs/targets.md shows the schema)") from None
    if not isinstance(data, dict) or "target" not in data:
        raise TargetError(f"target file '{path}' has no 'target:' name at the top level; see "
                          f"docs/targets.md for the schema")
    for part in [data, *((data.get("variants") or {}).values())]:
        for sec in SECTIONS:  # each constant's own rules first: the most specific message
            if isinstance(part, dict) and isinstance(part.get(sec), dict):
                for key, raw in part[sec].items():
                    _constant(path, f"{sec}.{key}", raw)
    validate(data, path)
    variants = data.get("variants") or {}
    if variant is None:
        variant = data.get("default_variant")
    if variant is not None:
        if variant not in variants:
            raise TargetError(f"target '{data['target']}' ({path}) has no variant '{variant}'; "
                              f"variants: {', '.join(variants) or 'none'}")
        data = _merge(data, variants[variant])
    constants: dict[str, Constant] = {}
    for sec in SECTIONS:
        for key, raw in (data.get(sec) or {}).items():
            constants[f"{sec}.{key}"] = _constant(path, f"{sec}.{key}", raw)
    t = Target(name=str(data["target"]), description=str(data.get("description", "")).strip(),
               path=str(path), constants=constants, variant=variant,
               variants=tuple(variants), validity=data.get("validity") or {},
               reference=data.get("reference") or {}, mapping=str(data.get("mapping", "none")))
    _check_consistent(t)
    return t


def _check_consistent(t: Target) -> None:
    """Rules across keys: `lava-fixed` arithmetic is Lava's neuron and nothing else."""
    if t.arithmetic == "lava-fixed":
        bad = [f"neuron.{k} = {t.value('neuron.' + k)!r} (needs {v!r})"
               for k, v in LAVA_FIXED.items() if t.value("neuron." + k) != v]
        if bad:
            raise TargetError(f"target file '{t.path}': neuron.arithmetic lava-fixed is Lava's "
                              f"bit-accurate CUBA neuron, which needs {', '.join(bad)}. Use "
                              f"arithmetic: float for another neuron (docs/targets.md).")
    if t.encoder_default == "direct" and not t.graded_spikes:
        raise TargetError(f"target file '{t.path}': features.encoder_default direct needs "
                          f"graded input, but neuron.graded_spikes is false; use poisson.")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k in SECTIONS + ("validity",):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _constant(path: Path, key: str, raw: Any) -> Constant:
    if not isinstance(raw, dict) or "value" not in raw:
        raise TargetError(f"target file '{path}': constant '{key}' must be a mapping with at "
                          f"least 'value' (and unit, band, source, status); got {raw!r}")
    status = str(raw.get("status", "P"))
    if status not in STATUSES:
        raise TargetError(f"target file '{path}': constant '{key}' has status '{status}'; use "
                          f"one of {', '.join(STATUSES)} (docs/hardware-targets.md sec. 0)")
    band = raw.get("band")
    if band is not None:
        if not (isinstance(band, (list, tuple)) and len(band) == 2):
            raise TargetError(f"target file '{path}': constant '{key}' band must be [lo, hi]")
        band = (float(band[0]), float(band[1]))
        if not (band[0] <= band[1]) or any(math.isnan(b) for b in band):
            raise TargetError(f"target file '{path}': constant '{key}' band {band} is not lo<=hi")
    value = raw["value"]
    if status in USABLE and value is None and key.split(".")[0] in ("energy", "time", "power"):
        raise TargetError(f"target file '{path}': constant '{key}' has status {status} but no "
                          f"value; give a value or mark it UNCONFIRMED")
    return Constant(name=key, value=value, unit=str(raw.get("unit", "")), band=band,
                    source=str(raw.get("source", "")), status=status,
                    note=str(raw.get("note", "")))
