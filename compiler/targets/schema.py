"""The schema of a target file, checked with pydantic v2 (docs/targets.md lists every key).

Every mapping in a target file is closed: a key the schema does not name (a misspelt
``nueron:``, ``neurons_per_cor:``) is a TargetError naming the key, where it sits and the file,
with the nearest known key as a suggestion. Only ``reference`` (measured whole-network results)
is free-form.

    from snnc.compiler.targets.schema import validate
    validate(yaml_data, path)   # raises TargetError, returns None
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from snnc.compiler.core.errors import TargetError

STATUSES = ("P", "D", "T", "S", "UNCONFIRMED")
ARITHMETICS = ("float", "lava-fixed")
# `arithmetic: lava-fixed` means Lava's bit-accurate CUBA neuron, which the PyTorch backend's
# target-exact mode and the Lava backend implement (docs/pytorch-backend.md): these values only.
LAVA_FIXED = {"reset": "zero", "fire": "gt", "weight_bits": 8, "state_bits": 24,
              "decay_denominator": 4096, "threshold_scale": 64}

_CLOSED = ConfigDict(extra="forbid")


class _Constant(BaseModel):
    """One sourced fact: value, unit, band [lo, hi], source, status (P D T S UNCONFIRMED)."""

    model_config = _CLOSED
    value: Any
    unit: str = ""
    band: Optional[tuple[float, float]] = None
    source: str = ""
    status: Literal["P", "D", "T", "S", "UNCONFIRMED"] = "P"
    note: str = ""


def _const(value_type: Any, name: str) -> type[BaseModel]:
    """A constant whose value must have `value_type`."""
    return create_model(name, __base__=_Constant, value=(value_type, ...))


_PosInt = Optional[int]

# key -> (value type, what it means). The descriptions are the documentation of the key
# (docs/targets.md repeats them; tests/compiler/test_target_files.py checks it does).
NEURON: dict[str, tuple[Any, str]] = {
    "reset": (Literal["subtract", "zero"], "after a spike: subtract theta, or set u to zero"),
    "fire": (Literal["ge", "gt"], "spike when u >= theta (ge, paper 2 eq. 6) or u > theta (gt)"),
    "weight_bits": (_PosInt, "synaptic weight bits; null = floating point"),
    "state_bits": (_PosInt, "membrane state bits; null = floating point"),
    "decay_denominator": (_PosInt, "leaks are k/denominator (4096 on Loihi); null = real"),
    "threshold_scale": (_PosInt, "thresholds are int(theta * scale) / scale (Loihi 2: "
                                 "vThMant = theta * 64); null = real"),
    "synaptic_delay": (Literal[0, 1], "steps a spike takes through one layer (0 = same step)"),
    "graded_spikes": (bool, "spikes may carry a value (else binary: S2S/V2V are legalised)"),
    "graded_bits": (_PosInt, "payload bits of a graded spike; null = float"),
    "clocked": (bool, "every neuron updates every time step"),
    "arithmetic": (Literal["float", "lava-fixed"],
                   "how target semantics run in the PyTorch backend: float, or Lava's "
                   "bit-accurate fixed-point CUBA (8-bit weights, quantize pass)"),
}
FEATURES: dict[str, tuple[Any, str]] = {
    "encoder_default": (Literal["direct", "poisson"],
                        "what --encoder auto becomes (direct needs graded input)"),
    "maxpool": (bool, "the chip runs max pooling (false: maxpool-to-avgpool)"),
    "bn_default": (Literal["bntt", "shared", "fold"],
                   "what --bn auto becomes under target semantics (fold: deployable BN)"),
}
CAPACITY = ("accumulator_bits", "conv_block_neurons", "conv_neurons_per_core", "cores_per_chip",
            "cores_per_tile", "delay_bits", "dense_axons_per_core", "dense_neurons_per_core",
            "dense_synapses_per_core", "destinations_per_core", "fanin_per_neuron",
            "fanout_cores_per_neuron", "in_axons_per_core", "kernel_memory", "layers_per_core",
            "max_channels", "max_chips", "max_input_size", "max_kernel", "max_output_size",
            "max_padding", "message_bits_field", "neuron_memory", "neurons_per_chip",
            "neurons_per_core", "out_axons_per_core", "pool_sizes", "spike_message_bits",
            "strides", "synapse_bits_per_core", "synapse_word_bits", "synapses_per_chip",
            "synmem_register", "tag_bits", "weight_bits_allowed", "weight_values_per_neuron")
ENERGY = ("ac", "graded_synop", "hop", "hop_ew", "hop_ns", "mac", "message_out",
          "neuron_update_active", "neuron_update_idle", "spike_out", "spike_within_tile",
          "sram_read_per_byte", "synaptic_update_learn", "synop")
TIME = ("barrier_sync", "hop_ew", "hop_ns", "message_in", "message_out", "neuron_update_active",
        "neuron_update_idle", "spike_out", "spike_within_tile", "synop", "tick")
POWER = ("static_per_chip",)
SECTIONS = ("neuron", "features", "capacity", "energy", "time", "power")


def _section(name: str, keys: dict[str, tuple[Any, str]] | tuple[str, ...]) -> type[BaseModel]:
    typed = keys if isinstance(keys, dict) else {k: (Any, "") for k in keys}
    fields = {k: (Optional[_const(t, f"{name}.{k}")], None) for k, (t, _) in typed.items()}
    return create_model(name, __config__=_CLOSED, **fields)


Neuron = _section("neuron", NEURON)
Features = _section("features", FEATURES)
Capacity = _section("capacity", CAPACITY)
Energy = _section("energy", ENERGY)
Time = _section("time", TIME)
Power = _section("power", POWER)


class Validity(BaseModel):
    """Where the constants hold (free text per key)."""

    model_config = _CLOSED
    process: Optional[str] = None
    basis: Optional[str] = None
    vdd_V: Optional[float] = None


class _Sections(BaseModel):
    model_config = _CLOSED
    neuron: Optional[Neuron] = None  # type: ignore[valid-type]
    features: Optional[Features] = None  # type: ignore[valid-type]
    capacity: Optional[Capacity] = None  # type: ignore[valid-type]
    energy: Optional[Energy] = None  # type: ignore[valid-type]
    time: Optional[Time] = None  # type: ignore[valid-type]
    power: Optional[Power] = None  # type: ignore[valid-type]


class Variant(_Sections):
    """A variant merges its sections over the base file (`cmos45:int8`)."""

    description: Optional[str] = None
    validity: Optional[Validity] = None


class TargetFile(_Sections):
    """The top level of a target file."""

    target: str = Field(min_length=1)
    description: str = ""
    version: Optional[str] = None
    validity: Optional[Validity] = None
    mapping: Literal["none", "loihi", "loihi2", "truenorth", "speck"] = "none"
    default_variant: Optional[str] = None
    variants: Optional[dict[str, Variant]] = None
    reference: Optional[dict[str, Any]] = None  # free-form measured results


TOP_LEVEL = tuple(TargetFile.model_fields)


def validate(data: Any, path: Path | str) -> None:
    """Check `data` (a parsed target file) against the schema; TargetError naming every
    problem's key and the file."""
    try:
        TargetFile.model_validate(data)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors()]
        raise TargetError(f"target file '{path}' does not follow the target schema:\n  "
                          + "\n  ".join(dict.fromkeys(lines))
                          + "\nFix the file (docs/targets.md lists every key).") from None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = TargetFile
    i = 0
    while model is not None and i < len(loc):
        part = loc[i]
        if part == "variants":
            model, i = Variant, i + 2
            continue
        f = model.model_fields.get(part)
        if f is None:
            return None
        model = _unwrap(f.annotation)
        i += 1
    return model


def _unwrap(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()):
        m = _unwrap(arg)
        if m is not None:
            return m
    return None


def _describe(e: dict) -> str:
    loc = tuple(e["loc"])
    where = ".".join(str(p) for p in loc[:-1]) or "the top level"
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return (f"unknown key '{key}' in {where}{hint} (known: {', '.join(known)})")
    if e["type"] == "missing":
        return f"missing key '{loc[-1]}' in {where}"
    shown = e.get("input")
    return f"key '{'.'.join(map(str, loc))}': {e['msg']} (got {shown!r})"
