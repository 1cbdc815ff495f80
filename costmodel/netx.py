"""A small reader of lava-dl netx HDF5 network files (h5py), for Loihi 2 core estimates.

Reads the sequential layout `layer/<i>/` (type input|conv|dense|flatten, shape [C, H, W],
kernelSize, stride, padding, in/outFeatures) into LayerCost rows the mapping model prices.
"""

from __future__ import annotations

import math
from pathlib import Path

from snnc.compiler.core.errors import ImportFailed
from snnc.costmodel.counting import LayerCost


class _Shape:
    def __init__(self, shape):
        self.shape = shape


class _View:
    """The minimal graph view `mapping._loihi2` reads (node(name).shape)."""

    def __init__(self, shapes: dict):
        self._s = shapes

    def node(self, name):
        return _Shape(self._s[name])


def read_netx(path) -> tuple[list[LayerCost], _View]:
    """(rows, view) of the netx file `path`: one row per neuron layer."""
    import h5py

    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise ImportFailed(f"{p}: not a readable netx HDF5 file ({err})") from None
    rows, shapes, prev = [], {}, None
    with f:
        for i in sorted(f["layer"], key=int):
            L = f["layer"][i]
            kind = L["type"][0].decode()
            c, h, w = (int(v) for v in L["shape"][()])
            name = f"layer{i}_{kind}"
            if kind == "flatten":
                prev = (c * h * w,)
                continue
            n = c * h * w
            op = {"conv": "conv2d", "input": "conv2d", "dense": "linear"}[kind]
            syn = 0
            if kind == "conv":
                k = [int(v) for v in L["kernelSize"][()]]
                syn = n * int(L["inChannels"][()]) // int(L["groups"][()]) * k[0] * k[1]
            elif kind == "dense":
                syn = n * int(L["inFeatures"][()])
            rows.append(LayerCost(name, op, neuron=name, neurons=n, synapses=syn))
            shapes[name] = (1, c, h, w)
            prev = (n,)
    del prev
    return rows, _View(shapes)


def loihi2_cores(path) -> dict:
    """Per-layer and total Loihi 2 core estimate of the netx network at `path`."""
    from snnc.costmodel.mapping import _loihi2
    from snnc.costmodel.targets import load_target

    t = load_target("loihi2")
    rows, view = read_netx(path)
    viol: list[str] = []
    per = {}
    for r in rows:
        per[r.name] = _loihi2(view, r, t, 1, viol)
    return {"layers": per, "cores": sum(per.values()), "violations": viol,
            "neurons": sum(r.neurons for r in rows),
            "chips": math.ceil(sum(per.values()) / t.value("capacity.cores_per_chip"))}
