"""Read and write Lava plans as HDF5 network files (netx's schema, plus snnc's skip layout).

Two layouts (docs/lava.md "File format"):

* **sequential** (every layer fed only by the one before, reset to zero, fire on v > θ, binary
  input): ``/layer/<i>`` exactly as lava-dl's ``netx.hdf5.Network`` reads it (``input`` with
  ``shape`` only, ``flatten`` before a dense layer that reads a conv layer, ``conv`` / ``dense``
  with ``weight``, geometry, optional ``bias`` and ``neuron/{type,iDecay,vDecay,vThMant,
  refDelay,gradedSpike}``). Stock netx loads it.
* **graph** (skips, concatenations, graded input, or the paper's subtractive reset):
  ``/graph/layer/<i>`` with the same per-layer schema plus ``input`` (the index of the layer its
  main synapse reads), and ``/graph/edges/<k>`` with ``kind`` (``s2m`` | ``s2s`` | ``v2v`` |
  ``concat``), ``src``, ``dst``, ``weight`` and, for conv synapses, ``stride`` / ``padding`` /
  ``dilation`` / ``groups``. There is no top-level ``/layer`` group, so stock netx *rejects*
  the file instead of loading the backbone without its skips. Relay layers (``neuron/type``
  RELAY with ``neuron/stateExp``) and bias units (``type`` bias, no synapse, ``input`` -1,
  edges of kind ``bias`` into relays) carry graded projections (backends/relay.py); a pooled
  readout records ``scale`` (attribute).

Both carry snnc's metadata as root attributes (``snnc_format``, ``timesteps``, ``semantics``,
``outputs``, layer names). Needs h5py, never lava.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from snnc.backends.lava.plan import Layer, Plan, Synapse
from snnc.compiler.core.errors import ImportFailed

FORMAT = "snnc-lava-1"
# Message bits of the input synapses: event counts and direct (integer) input are graded
# messages; a binary spike is the message 1 (docs/lava.md "Input encoding").
INPUT_MESSAGE_BITS = 16
_NEURON_KEYS = ("iDecay", "vDecay", "vThMant", "refDelay")


def _str(group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _geometry(group, conv: dict, weight: np.ndarray) -> None:
    group.create_dataset("stride", data=np.array(conv["stride"]))
    group.create_dataset("padding", data=np.array(conv["padding"]))
    group.create_dataset("dilation", data=np.array(conv["dilation"]))
    group.create_dataset("groups", data=int(conv["groups"]))
    group.create_dataset("kernelSize", data=np.array(weight.shape[2:]))


def _layer(group, layer: Layer) -> None:
    group.attrs["name"] = layer.name
    group.attrs["readout"] = bool(layer.readout)
    group.attrs["op"] = layer.op
    group.attrs["scale"] = int(layer.scale)
    if not layer.synapses:  # a bias unit: neurons with no input
        _str(group, "type", "bias")
        group.create_dataset("shape", data=np.array(layer.shape))
        group.create_dataset("bias", data=layer.bias.astype(np.int32))
        for key in _NEURON_KEYS:
            group.create_dataset(f"neuron/{key}", data=int(layer.neuron[key]))
        _str(group, "neuron/type", layer.neuron["type"])
        group.create_dataset("neuron/gradedSpike", data=False)
        return
    syn = layer.synapses[0]
    _str(group, "type", "conv" if syn.is_conv else "dense")
    group.create_dataset("shape", data=np.array(layer.shape))
    group.create_dataset("weight", data=syn.weight.astype(np.int32))
    if syn.is_conv:
        _geometry(group, syn.conv, syn.weight)
        group.create_dataset("inChannels", data=int(syn.weight.shape[1] * syn.conv["groups"]))
        group.create_dataset("outChannels", data=int(syn.weight.shape[0]))
    if layer.bias is not None and np.any(layer.bias):
        group.create_dataset("bias", data=layer.bias.astype(np.int32))
    _str(group, "neuron/type", layer.neuron["type"])
    for key in _NEURON_KEYS:
        group.create_dataset(f"neuron/{key}", data=int(layer.neuron[key]))
    group.create_dataset("neuron/gradedSpike", data=bool(layer.neuron["gradedSpike"]))
    if "stateExp" in layer.neuron:  # a relay's payload shift (backends/relay.py)
        group.create_dataset("neuron/stateExp", data=int(layer.neuron["stateExp"]))


def write(plan: Plan, path: str | Path) -> Path:
    """Write `plan` to `path` in the sequential layout when it allows, else the graph layout."""
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["snnc_format"] = FORMAT
        f.attrs["graph"] = plan.name
        f.attrs["timesteps"] = int(plan.timesteps)
        f.attrs["semantics"] = json.dumps(plan.semantics)
        f.attrs["input_graded"] = bool(plan.input_graded)
        # what a stock runner must pass: netx.hdf5.Network(path, input_message_bits=...)
        # (netx's default 0 binarises event counts); biases are gated off at step 0
        # (docs/lava.md "Stock netx")
        f.attrs["input_message_bits"] = INPUT_MESSAGE_BITS
        f.attrs["bias_start"] = 1
        f.attrs["input_name"] = plan.layers[0].name
        f.attrs["outputs"] = json.dumps(plan.outputs)
        f.attrs["layout"] = "sequential" if plan.sequential else "graph"
        if plan.sequential:
            root = f.create_group("layer")
            _str(root.create_group("0"), "type", "input")
            root["0"].create_dataset("shape", data=np.array(plan.layers[0].shape))
            k = 1
            for i, layer in enumerate(plan.layers[1:], start=1):
                src = plan.layers[i - 1]
                if not layer.synapses[0].is_conv and len(src.shape) > 1:
                    flat = root.create_group(str(k))
                    _str(flat, "type", "flatten")
                    flat.create_dataset("shape", data=np.array(src.shape))
                    k += 1
                _layer(root.create_group(str(k)), layer)
                k += 1
            return path
        root = f.create_group("graph")
        layers = root.create_group("layer")
        _str(layers.create_group("0"), "type", "input")
        layers["0"].create_dataset("shape", data=np.array(plan.layers[0].shape))
        edges, k = root.create_group("edges"), 0
        for i, layer in enumerate(plan.layers[1:], start=1):
            g = layers.create_group(str(i))
            _layer(g, layer)
            g.create_dataset("input", data=int(layer.synapses[0].src) if layer.synapses else -1)
            for syn in layer.synapses[1:]:
                e = edges.create_group(str(k))
                _str(e, "kind", syn.kind)
                _str(e, "type", "conv" if syn.is_conv else "dense")
                e.create_dataset("src", data=int(syn.src))
                e.create_dataset("dst", data=int(i))
                e.create_dataset("weight", data=syn.weight.astype(np.int32))
                if syn.is_conv:
                    _geometry(e, syn.conv, syn.weight)
                e.attrs["origin"] = syn.origin
                k += 1
    return path


def _s(ds) -> str:
    v = ds[()]
    v = v[0] if getattr(v, "shape", ()) else v
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _conv(g) -> dict:
    return {"stride": tuple(int(x) for x in g["stride"][()]),
            "padding": tuple(int(x) for x in g["padding"][()]),
            "dilation": tuple(int(x) for x in g["dilation"][()]),
            "groups": int(g["groups"][()])}


def _read_layer(g, src: int) -> Layer:
    kind = _s(g["type"])
    syns = [] if kind == "bias" else [
        Synapse(src, "main", g["weight"][()].astype(np.int32),
                _conv(g) if kind == "conv" else None, origin=str(g.attrs.get("name", "")))]
    neuron = {"type": _s(g["neuron/type"]),
              **{k: int(g[f"neuron/{k}"][()]) for k in _NEURON_KEYS},
              "gradedSpike": bool(g["neuron/gradedSpike"][()])}
    if "neuron/stateExp" in g:
        neuron["stateExp"] = int(g["neuron/stateExp"][()])
    bias = g["bias"][()].astype(np.int32) if "bias" in g else None
    return Layer(str(g.attrs.get("name", "")), tuple(int(x) for x in g["shape"][()]), neuron,
                 bias, syns, readout=bool(g.attrs.get("readout", False)),
                 op=str(g.attrs.get("op", "lif")), scale=int(g.attrs.get("scale", 1)))


def read(path: str | Path) -> Plan:
    """The plan stored in an snnc Lava HDF5 file (either layout)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ImportFailed(f"{path}: not an HDF5 file ({err}); export the network again with "
                           f"snnc.backends.lava.export") from None
    with f:
        if f.attrs.get("snnc_format") != FORMAT:
            raise ImportFailed(f"{path}: not an snnc Lava network (snnc_format attribute "
                               f"missing); stock netx files load with netx.hdf5.Network")
        shape = None
        layers: list[Layer] = []
        if "layer" in f:
            groups = [f["layer"][str(i)] for i in range(len(f["layer"]))]
            for g in groups:
                kind = _s(g["type"])
                if kind == "input":
                    shape = tuple(int(x) for x in g["shape"][()])
                    layers.append(Layer(str(f.attrs["input_name"]), shape, op="input"))
                elif kind in ("conv", "dense"):
                    layers.append(_read_layer(g, len(layers) - 1))
        else:
            root = f["graph"]
            n = len(root["layer"])
            shape = tuple(int(x) for x in root["layer/0/shape"][()])
            layers.append(Layer(str(f.attrs["input_name"]), shape, op="input"))
            for i in range(1, n):
                g = root["layer"][str(i)]
                layers.append(_read_layer(g, int(g["input"][()])))
            for k in range(len(root["edges"])):
                e = root["edges"][str(k)]
                conv = _conv(e) if _s(e["type"]) == "conv" else None
                layers[int(e["dst"][()])].synapses.append(
                    Synapse(int(e["src"][()]), _s(e["kind"]), e["weight"][()].astype(np.int32),
                            conv, origin=str(e.attrs.get("origin", ""))))
        return Plan(str(f.attrs["graph"]), layers, int(f.attrs["timesteps"]),
                    json.loads(f.attrs["semantics"]), bool(f.attrs["input_graded"]),
                    json.loads(f.attrs["outputs"]))
