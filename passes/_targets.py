"""Target facts the conversion passes need, read from the cost model's target files when
they exist (snnc.costmodel.targets.load_target), else from the target's name.

Not a pass module (leading underscore): it registers no pass.
"""

from __future__ import annotations

# Targets whose spikes are binary (no graded payloads): paper 2 sec. 3.2.1, hardware-targets.md.
BINARY_ONLY = frozenset({"loihi1", "loihi1-sanafe", "truenorth", "speck"})
# Targets whose neuron is fixed-point Loihi 2 CUBA (lava-backend.md "Neuron semantics").
LOIHI2 = frozenset({"loihi2"})


def _load(target: str):
    try:
        from snnc.costmodel.targets import load_target
    except ImportError:  # hook: the cost model's target files are not available yet
        return None
    try:
        return load_target(target)
    except Exception:  # an unknown name still gets the name-based answer below
        return None


def _fact(target: str, key: str):
    t = _load(target)
    if t is None:
        return None
    if isinstance(t, dict):
        return t.get(key)
    return getattr(t, key, None)


def supports_graded(target: str) -> bool:
    """True when `target` can send graded (non-binary) spikes."""
    fact = _fact(target, "graded_spikes")
    if isinstance(fact, bool):
        return fact
    return target not in BINARY_ONLY


def is_loihi2(target: str) -> bool:
    """True when `target` runs Loihi 2's fixed-point CUBA neuron."""
    return target in LOIHI2 or str(target).startswith("loihi2")
