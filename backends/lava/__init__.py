"""Lava-dl backend: SNN IR -> Loihi 2 network file (HDF5), slayer network, simulator runs.

Importing this package does not import lava; only `sim`, `models` and `slayer` do, and they
need the Python 3.10 environment built by scripts/setup-lava.sh (.venv-lava). `export` needs
only numpy and h5py, so it runs in the main environment too.

    from snnc.backends import lava
    path = lava.export(graph, "out/lava")        # out/lava/<graph>.net
    result = lava.simulate(path, spikes)         # Loihi2SimCfg(select_tag="fixed_pt")

What `simulate` checks is Lava's bit-accurate CPU simulator, not Loihi 2 silicon.
"""

from __future__ import annotations

import warnings
from pathlib import Path

__all__ = ["export", "lower", "read", "simulate", "SimulationOnly"]


class SimulationOnly(UserWarning):
    """The exported network runs in Lava's simulator only (not on the stock Loihi 2 neuron)."""


def lower(g, *, source: str | None = None):
    """The Lava plan (layers and synapses) of SNN-form graph `g`; see lowering.py."""
    from snnc.backends.lava.lowering import lower as _lower

    return _lower(g, source=source)


def export(g, out_dir: str | Path, *, name: str | None = None) -> Path:
    """Write `g` (SNN form, with parameters) as a Lava HDF5 network under `out_dir`.

    Sequential networks get netx's own layout (stock ``netx.hdf5.Network`` loads them); skips,
    concatenations, graded input and subtractive reset get snnc's graph layout, which stock netx
    rejects. Fixed-point violations raise ConstraintViolation naming every layer; unsupported
    ops raise UnsupportedOp. Returns the file's path."""
    from snnc.backends.lava import hdf5

    plan = lower(g)
    if plan.semantics != {"reset": "zero", "fire": "gt"}:
        warnings.warn(
            f"graph '{g.name}' uses reset={plan.semantics['reset']}, fire="
            f"{plan.semantics['fire']} (paper semantics): the exported network runs only in "
            f"Lava's CPU simulator through snnc's custom LIF process model; the stock Loihi 2 "
            f"neuron resets to zero and fires on v > threshold. Compile with --semantics target "
            f"to deploy.", SimulationOnly, stacklevel=2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return hdf5.write(plan, out / f"{name or g.name}.net")


def read(path: str | Path):
    """The plan stored in an snnc Lava network file."""
    from snnc.backends.lava import hdf5

    return hdf5.read(path)


def simulate(path_or_plan, spikes):
    """Run one sample in Lava's Loihi 2 simulator; see sim.run (needs .venv-lava)."""
    from snnc.backends.lava.sim import run

    return run(path_or_plan, spikes)
