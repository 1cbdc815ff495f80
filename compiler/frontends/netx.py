"""lava-dl netx HDF5 network files (``.net``) -> SNN-form IR (docs/frontends.md "netx").

netx's sequential layout: ``layer/<i>/`` with ``type`` (input, conv, dense, flatten, ...),
``shape`` ([C, H, W], or a 1-D [N] for dense layers), conv ``inChannels``, ``outChannels``,
``kernelSize``, ``stride``, ``padding``, ``dilation``, ``groups``, dense ``inFeatures`` /
``outFeatures``, ``weight`` (dense weights may be 1-D when there is one output) and the neuron
parameters under ``neuron/``. Each layer becomes its synapses (conv2d / linear with the file's
weights) and a lif node of its shape; an ``input`` layer is a layer of neurons fed by the
frame. The graph is what `snnc cost FILE.net` prices and `snnc inspect FILE.net` prints.
Anything else (pooling, recurrent or graph-layout files, unknown layer types, shapes that do not
chain) is refused with an ImportFailed naming the file and the layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.compiler.core.errors import ImportFailed
from snnc.compiler.core.ir import Graph

_KNOWN = ("input", "conv", "dense", "flatten")


def _get(layer, key, where, default=None):
    if key not in layer:
        if default is not None:
            return default
        raise ImportFailed(f"{where}: no '{key}' entry; snnc reads netx's sequential layout "
                           f"(layer/<i>/ with type, shape, weight, ...)")
    v = layer[key][()]
    return v.decode() if isinstance(v, bytes) else v


def _ints(v) -> list[int]:
    return [int(x) for x in np.atleast_1d(np.asarray(v)).ravel()]


def read_netx(path, *, skip_layers: int = 0, timesteps: int = 16) -> Graph:
    """The SNN-form graph of the netx file at `path` (module doc). `skip_layers` leaves out the
    first layers as lava-dl's ``netx.hdf5.Network(skip_layers=...)`` does (the input then comes
    straight into the next layer's synapses)."""
    import h5py

    from snnc.compiler.core.text import parse

    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise ImportFailed(f"{p}: not a readable netx HDF5 file ({err}); give a lava-dl .net "
                           f"file") from None
    with f:
        if "layer" not in f:
            raise ImportFailed(f"{p}: no 'layer' group: not a netx network file in the "
                               f"sequential layout (snnc reads lava-dl's netx .net files)")
        keys = sorted(f["layer"], key=lambda k: int(k) if k.isdigit() else -1)
        if any(not k.isdigit() for k in keys):
            raise ImportFailed(f"{p}: layer names {keys[:4]} are not 0, 1, ...: a graph-layout "
                               f"file, not netx's sequential layout; snnc cannot read it")
        layers = [f["layer"][k] for k in keys][skip_layers:]
        return parse(_text(p, layers, timesteps), source=str(p)).with_params(
            _params(p, layers))


def _text(p: Path, layers, T: int) -> str:
    lines, prev, shape, first = [], None, None, None
    for i, L in enumerate(layers):
        where = f"{p}, layer {i}"
        kind = _get(L, "type", where)
        kind = kind[0].decode() if isinstance(kind, np.ndarray) else str(kind)
        if kind not in _KNOWN:
            raise ImportFailed(f"{where}: layer type '{kind}' is not supported by snnc's netx "
                               f"reader (it reads {', '.join(_KNOWN)})")
        out = _ints(_get(L, "shape", where))
        name = f"l{i}_{kind}"
        if kind == "input":
            if prev is not None:
                raise ImportFailed(f"{where}: an input layer after layer 0")
            first = [1, *out]
            lines.append(f"  %{name} = lif(%x graded) {{{_lif(L)}}} : {_shape(first)}")
            prev, shape = name, first
            continue
        if prev is None:  # spikes (events) come straight into this layer's synapses
            if kind == "conv":
                first = [1, int(_get(L, "inChannels", where)), *_in_hw(L, out, where)]
            else:
                first = [1, int(_get(L, "inFeatures", where))]
            lines.append(f"  %enc = encoder(%x binary) {{kind=events}} : {_shape(first)}")
            prev, shape = "enc", first
        if kind == "flatten":
            n = int(np.prod(shape[1:]))
            lines.append(f"  %{name} = flatten(%{prev} binary) {{start=1}} : f32[1,{n}]")
            prev, shape = name, [1, n]
            continue
        if kind == "conv":
            cin, cout = int(_get(L, "inChannels", where)), int(_get(L, "outChannels", where))
            k, s = _ints(_get(L, "kernelSize", where)), _ints(_get(L, "stride", where, [1]))
            pad, d = _ints(_get(L, "padding", where, [0])), _ints(_get(L, "dilation", where, [1]))
            g = int(_get(L, "groups", where, 1))
            k, s, pad, d = (_pair(v) for v in (k, s, pad, d))
            if len(shape) != 4 or shape[1] != cin:
                raise ImportFailed(f"{where}: a conv of {cin} input channels reads a layer "
                                   f"shaped {shape[1:]}")
            s, pad, d = _orient(shape, out, k, s, pad, d, where)
            o = [1, cout, out[-2], out[-1]] if len(out) == 3 else None
            if o is None:
                raise ImportFailed(f"{where}: conv shape {out} is not [C, H, W]")
            lines.append(
                f"  %{name}_syn = conv2d(%{prev} binary) {{in={cin}, out={cout}, "
                f"k=({k[0]},{k[1]}), stride=({s[0]},{s[1]}), pad=({pad[0]},{pad[1]},{pad[0]},"
                f"{pad[1]}), dilation=({d[0]},{d[1]}), groups={g}, bias={_bias(L)}}} "
                f"[{name}_syn.weight{', ' + name + '_syn.bias' if _bias(L) == 'true' else ''}]"
                f" : {_shape(o)}")
        else:  # dense
            fin, fout = int(_get(L, "inFeatures", where)), int(_get(L, "outFeatures", where))
            if len(shape) != 2:
                lines.append(f"  %{name}_flat = flatten(%{prev} binary) {{start=1}} : "
                             f"f32[1,{int(np.prod(shape[1:]))}]")
                prev, shape = f"{name}_flat", [1, int(np.prod(shape[1:]))]
            if shape[1] != fin:
                raise ImportFailed(f"{where}: a dense layer of {fin} inputs reads {shape[1]}")
            if int(np.prod(out)) != fout:
                raise ImportFailed(f"{where}: shape {out} disagrees with outFeatures {fout}")
            o = [1, fout]
            lines.append(f"  %{name}_syn = linear(%{prev} binary) {{in={fin}, out={fout}, "
                         f"bias={_bias(L)}}} [{name}_syn.weight"
                         f"{', ' + name + '_syn.bias' if _bias(L) == 'true' else ''}] : "
                         f"{_shape(o)}")
        lines.append(f"  %{name} = lif(%{name}_syn graded) {{{_lif(L)}}} : {_shape(o)}")
        prev, shape = name, o
    if prev is None or first is None:
        raise ImportFailed(f"{p}: no layers left to read")
    head = f"graph {_ident(p.stem)}(%x: {_shape(first)}) snn {{timesteps={T}}} {{"
    return "\n".join([head, *lines, f"  return %{prev}", "}"]) + "\n"


def _in_hw(L, out, where):
    """Input H, W of a first conv layer (no input layer): from the output shape."""
    k = _pair(_ints(_get(L, "kernelSize", where)))
    s = _pair(_ints(_get(L, "stride", where, [1])))
    pad = _pair(_ints(_get(L, "padding", where, [0])))
    return [(out[-2] - 1) * s[0] + k[0] - 2 * pad[0], (out[-1] - 1) * s[1] + k[1] - 2 * pad[1]]


def _orient(shape, out, k, s, pad, d, where):
    """netx stores stride/padding/dilation as (y, x) in some files and (x, y) in others: keep
    the order whose output shape matches the file's; refuse when neither does."""
    def size(n, kk, ss, pp, dd):
        return (n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
    for cand in ((s, pad, d), (s[::-1], pad[::-1], d[::-1])):
        ss, pp, dd = cand
        if [size(shape[2], k[0], ss[0], pp[0], dd[0]),
                size(shape[3], k[1], ss[1], pp[1], dd[1])] == list(out[-2:]):
            return cand
    raise ImportFailed(f"{where}: a {k[0]}x{k[1]} conv with stride {s}, padding {pad} on "
                       f"{shape[2:]} cannot give the stored shape {out}")


def _pair(v: list[int]) -> tuple[int, int]:
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _bias(L) -> str:
    return "true" if "bias" in L and np.asarray(L["bias"][()]).size > 1 else "false"


def _lif(L) -> str:
    n = L["neuron"] if "neuron" in L else {}
    vth = float(np.asarray(n["vThMant"][()]).ravel()[0]) if "vThMant" in n else 1.0
    decay = float(np.asarray(n["vDecay"][()]).ravel()[0]) if "vDecay" in n else 0.0
    return f"leak={1.0 - decay / 4096.0}, vth={vth}, reset=zero, fire=gt"


def _shape(s) -> str:
    return "f32[" + ",".join(str(int(v)) for v in s) + "]"


def _ident(stem: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return out if out and not out[0].isdigit() else f"net_{out}"


def _params(p: Path, layers) -> dict:
    import torch

    params = {}
    for i, L in enumerate(layers):
        kind = np.asarray(L["type"][()]).ravel()[0]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("conv", "dense"):
            continue
        name = f"l{i}_{kind}_syn"
        w = np.asarray(L["weight"][()], dtype=np.float32)
        if kind == "dense":
            w = w.reshape(int(L["outFeatures"][()]), int(L["inFeatures"][()]))
        params[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        if _bias(L) == "true":
            params[f"{name}.bias"] = torch.from_numpy(np.asarray(L["bias"][()], np.float32))
    return params
