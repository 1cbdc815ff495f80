"""NIR graphs (``.nir``, package ``nir``) -> SNN-form IR (docs/frontends.md "NIR").

    snnc compile model.nir -T 16 -o model.snnc        # then snnc cost / train / --emit

Reads what snnTorch, Sinabs, SpikingJelly and lava-dl export: ``Input``, ``Affine`` /
``Linear`` (linear), ``Conv2d`` (conv2d), ``LIF`` and ``IF`` (lif: reset to zero, fire on
v > θ; a LIF in NIR's Euler discretisation with dt = 1e-4 unless the metadata says otherwise:
λ = 1 − dt/τ, input gain r·dt/τ which must be 1, as snnTorch and snnc write it; an IF has no
leak and its step is dt = 1/r, as Sinabs writes it with r = 1), ``AvgPool2d``
(avgpool), ``SumPool2d`` (a fixed depthwise conv of ones), ``Flatten`` (flatten after the
batch axis) and ``Output``. A node with several inputs sums them (an ``add``, as NIR does).
The input is per-step (``events`` encoder: x is [T, B, ...]) and the graph ends in a readout
(the mean over time of what feeds ``Output``). Anything else (CubaLIF, recurrent edges,
nested graphs, non-uniform neuron parameters, a leak or reset voltage other than 0) is refused
with an ImportFailed naming the file, the node and its type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.compiler.core.errors import ImportFailed
from snnc.compiler.core.ir import Graph

DT = 1e-4  # NIR's usual step (snnTorch, SpikingJelly and snnc export with it)


def _uniform(p: Path, name: str, node, attr: str) -> float:
    v = np.asarray(getattr(node, attr), dtype=np.float64).ravel()
    if v.size == 0 or not np.allclose(v, v[0], rtol=1e-6, atol=0.0):
        raise ImportFailed(f"{p}: node '{name}' ({type(node).__name__}): {attr} differs between "
                           f"neurons; snnc's lif has one value per layer")
    return float(v[0])


def _pair(v) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _order(p: Path, g) -> list[str]:
    preds = {k: [] for k in g.nodes}
    for a, b in g.edges:
        preds[b].append(a)
    done, order = set(), []
    while len(order) < len(g.nodes):
        ready = [k for k in g.nodes if k not in done and all(q in done for q in preds[k])]
        if not ready:
            raise ImportFailed(f"{p}: the NIR graph has a cycle (recurrent edges); snnc imports "
                               f"feed-forward graphs")
        for k in ready:
            done.add(k)
            order.append(k)
    return order


class _Reader:
    def __init__(self, p: Path, g, timesteps: int):
        self.p, self.g, self.T = p, g, timesteps
        meta = dict(getattr(g, "metadata", {}) or {})
        self.dt = float(meta.get("snnc.dt", DT))
        self.lines: list[str] = []
        self.params: dict = {}
        self.shape: dict[str, list[int]] = {}
        self.name: dict[str, str] = {}  # NIR node -> IR value
        self.n = 0

    def ident(self, key: str) -> str:
        s = "".join(c if c.isalnum() or c == "_" else "_" for c in key) or "n"
        return s if not s[0].isdigit() else f"n_{s}"

    def refuse(self, key: str, node, msg: str):
        raise ImportFailed(f"{self.p}: node '{key}' ({type(node).__name__}): {msg}")

    def emit(self, key: str, op: str, srcs: list[str], attrs: str, shape, params=()) -> str:
        name = self.ident(key)
        ins = ", ".join(f"%{s}" for s in srcs)
        plist = f" [{', '.join(params)}]" if params else ""
        attr = f" {{{attrs}}}" if attrs else ""
        dims = ",".join(map(str, shape))
        self.lines.append(f"  %{name} = {op}({ins}){attr}{plist} : f32[{dims}]")
        self.shape[name] = list(shape)
        return name

    def source(self, key: str, preds: list[str]) -> str:
        """The IR value a node reads: its one predecessor, or the sum of several (NIR sums)."""
        if len(preds) == 1:
            return self.name[preds[0]]
        shapes = {tuple(self.shape[self.name[q]]) for q in preds}
        if len(shapes) != 1:
            raise ImportFailed(f"{self.p}: node '{key}' sums inputs of shapes {sorted(shapes)}")
        return self.emit(f"{key}__sum", "add", [self.name[q] for q in preds], "",
                         list(shapes.pop()))

    def run(self) -> str:
        import nir

        g, p = self.g, self.p
        preds = {k: [] for k in g.nodes}
        for a, b in g.edges:
            preds[b].append(a)
        out = None
        for key in _order(p, g):
            node = g.nodes[key]
            if isinstance(node, nir.Input):
                if preds[key]:
                    self.refuse(key, node, "an Input with inputs")
                shape = [1, *np.asarray(node.input_type["input"]).astype(int).tolist()]
                self.lines.append(f"  %x_enc = encoder(%x) {{kind=events}} : "
                                  f"f32[{','.join(map(str, shape))}]")
                self.shape["x_enc"] = shape
                self.input_shape = shape
                self.name[key] = "x_enc"
                continue
            if not preds[key]:
                self.refuse(key, node, "a node without inputs that is not an Input")
            src = self.source(key, preds[key])
            shp = self.shape[src]
            if isinstance(node, nir.Output):
                out = src
                continue
            self.name[key] = self.node(key, node, src, shp)
        if out is None:
            raise ImportFailed(f"{p}: the NIR graph has no Output node")
        ro = self.emit("readout", "readout", [out], "", self.shape[out])
        head = (f"graph {self.ident(p.stem)}(%x: f32[{','.join(map(str, self.input_shape))}]) "
                f"snn {{timesteps={self.T}, semantics=target, target=nir, synaptic_delay=0, "
                f"lowered=true, residual=s2s, encoder=events}} {{")
        return "\n".join([head, *self.lines, f"  return %{ro}", "}"]) + "\n"

    def node(self, key: str, node, src: str, shp: list[int]) -> str:
        import nir
        import torch

        name = self.ident(key)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))  # noqa
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight, np.float32)
            if w.ndim != 2 or len(shp) != 2 or w.shape[1] != shp[1]:
                self.refuse(key, node, f"weight {list(w.shape)} does not read a value shaped "
                                       f"{shp[1:]} (flatten first)")
            bias = isinstance(node, nir.Affine) and node.bias is not None
            self.params[f"{name}.weight"] = t(w)
            params = [f"{name}.weight"]
            if bias:
                self.params[f"{name}.bias"] = t(np.asarray(node.bias).reshape(-1))
                params.append(f"{name}.bias")
            return self.emit(key, "linear", [src], f"in={w.shape[1]}, out={w.shape[0]}, "
                             f"bias={'true' if bias else 'false'}", [1, w.shape[0]], params)
        if isinstance(node, (nir.Conv2d, nir.SumPool2d)):
            if len(shp) != 4:
                self.refuse(key, node, f"reads a value shaped {shp[1:]}, not [C, H, W]")
            if isinstance(node, nir.SumPool2d):
                k, s, pad = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
                c = shp[1]
                w, groups, dil, b = np.ones((c, 1, *k), np.float32), c, (1, 1), None
            else:
                if isinstance(node.padding, str):
                    self.refuse(key, node, f"padding '{node.padding}': give explicit padding")
                w = np.asarray(node.weight, np.float32)
                k, s, pad = tuple(w.shape[2:]), _pair(node.stride), _pair(node.padding)
                dil, groups = _pair(node.dilation), int(node.groups)
                b = None if node.bias is None else np.asarray(node.bias, np.float32).reshape(-1)
                if b is not None and not np.any(b):
                    b = None
            if w.shape[1] * groups != shp[1]:
                self.refuse(key, node, f"a conv of {w.shape[1] * groups} input channels reads "
                                       f"{shp[1]}")
            oh = (shp[2] + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // s[0] + 1
            ow = (shp[3] + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // s[1] + 1
            self.params[f"{name}.weight"] = t(w)
            params = [f"{name}.weight"]
            if b is not None:
                self.params[f"{name}.bias"] = t(b)
                params.append(f"{name}.bias")
            return self.emit(
                key, "conv2d", [src],
                f"in={shp[1]}, out={w.shape[0]}, k=({k[0]},{k[1]}), stride=({s[0]},{s[1]}), "
                f"pad=({pad[0]},{pad[1]},{pad[0]},{pad[1]}), dilation=({dil[0]},{dil[1]}), "
                f"groups={groups}, bias={'true' if b is not None else 'false'}",
                [1, w.shape[0], oh, ow], params)
        if isinstance(node, nir.AvgPool2d):
            k, s, pad = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
            oh = (shp[2] + 2 * pad[0] - k[0]) // s[0] + 1
            ow = (shp[3] + 2 * pad[1] - k[1]) // s[1] + 1
            return self.emit(key, "avgpool", [src], f"k=({k[0]},{k[1]}), stride=({s[0]},{s[1]}),"
                             f" pad=({pad[0]},{pad[1]},{pad[0]},{pad[1]})",
                             [shp[0], shp[1], oh, ow])
        if isinstance(node, nir.Flatten):
            if int(node.start_dim) != 0 or int(node.end_dim) not in (-1, len(shp) - 2):
                self.refuse(key, node, "only a flatten of all non-batch axes maps to snnc")
            return self.emit(key, "flatten", [src], "start=1", [1, int(np.prod(shp[1:]))])
        if isinstance(node, (nir.LIF, nir.IF)):
            return self.emit(key, "lif", [src], self.neuron(key, node), shp)
        self.refuse(key, node, "no snnc mapping (snnc imports Input, Affine, Linear, Conv2d, "
                               "LIF, IF, AvgPool2d, SumPool2d, Flatten, Output)")
        return ""

    def neuron(self, key: str, node) -> str:
        import nir

        p, dt = self.p, self.dt
        th = _uniform(p, key, node, "v_threshold")
        if getattr(node, "v_reset", None) is not None and _uniform(p, key, node, "v_reset"):
            self.refuse(key, node, "v_reset != 0; snnc's lif resets to zero")
        r = _uniform(p, key, node, "r")
        if isinstance(node, nir.IF):  # no leak: Euler's v += dt r I has gain 1 at dt = 1/r
            leak, gain = 1.0, 1.0 if r > 0 else 0.0
        else:
            if _uniform(p, key, node, "v_leak"):
                self.refuse(key, node, "v_leak != 0; snnc's lif leaks towards zero")
            tau = _uniform(p, key, node, "tau")
            leak, gain = 1.0 - dt / tau, r * dt / tau
        if not np.isclose(gain, 1.0, rtol=1e-6):
            self.refuse(key, node, f"input gain r*dt/tau = {gain:.6g} (dt = {dt}); snnc's lif "
                                   f"adds its input unscaled (snnTorch writes r = tau/dt)")
        if not 0.0 <= leak <= 1.0:
            self.refuse(key, node, f"tau gives a leak {leak:.6g} outside [0, 1] at dt = {dt}")
        return f"leak={leak!r}, vth={th!r}, reset=zero, fire=gt"


def read_nir(path, *, timesteps: int | None = None, name: str = "nir_graph") -> Graph:
    """The SNN-form graph of the NIR file at `path`, or of an in-memory ``nir.NIRGraph``
    (an exporter's return value; `name` names it); see the module doc. `timesteps` defaults to
    the file's ``snnc.timesteps`` metadata, else 8."""
    try:
        import nir
    except ImportError:
        raise ImportFailed("reading .nir files needs the 'nir' package: pip install "
                           "'snnc[nir]'") from None
    from snnc.compiler.core.text import parse

    if isinstance(path, nir.NIRGraph):
        g, p = path, Path(f"{name}.nir")
    else:
        p = Path(path)
        try:
            g = nir.read(str(p), type_check=False)
        except Exception as err:  # h5py / nir errors on a file that is not NIR
            raise ImportFailed(f"{p}: not a readable NIR file ({type(err).__name__}: "
                               f"{err})") from None
    for key, node in g.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise ImportFailed(f"{p}: node '{key}' is a nested NIR graph; snnc imports flat "
                               f"graphs")
    meta = dict(getattr(g, "metadata", {}) or {})
    T = int(meta.get("snnc.timesteps", 8)) if timesteps is None else int(timesteps)
    r = _Reader(p, g, T)
    text = r.run()
    return parse(text, source=str(p)).with_params(r.params)
