"""NIR export of SNN-form graphs (``snnc compile ... --emit nir`` writes ``model.nir``).

NIR (neuromorphic intermediate representation, package ``nir``) is a graph of continuous-time
nodes whose inputs are *summed*. The mapping, with dt = 1e-4 s (snnTorch's importer fixes it):

=====================  =========================================================================
snnc                   NIR
=====================  =========================================================================
input, encoder         ``Input`` (events / direct: the encoder's output is the network input;
                       poisson sampling is not a NIR node: refused)
conv2d / linear        ``Conv2d`` / ``Affine`` (``Linear`` without bias)
avgpool                ``AvgPool2d`` (adaptive_avgpool too, when its windows tile the input
                       exactly, e.g. global average pooling: kernel = stride = input / out)
flatten                ``Flatten`` (start_dim 0, no batch axis)
lif (reset zero)       (fire gt: v_threshold = the next float32 above θ, so that snnTorch's
                       v > v_th and SpikingJelly's v >= v_th both fire exactly on v > θ; a
                       fire=ge net differs from its import only on exact ties u == θ)
                       ``LIF`` with tau = dt / (1 − λ), r = tau / dt, v_leak = 0,
                       v_threshold = θ (θ⁺ for fire gt), so that snnTorch's import
                       gives Leaky(beta = λ, threshold = θ, reset_mechanism="zero")
                       exactly; λ = 1 uses tau = 1e12 dt
add (S2S)              no node: every reader of the add gets an edge from each term (NIR sums a
                       node's inputs; paper 2 eq. 12), so W·(o_l + o_{l−n}) is one synapse
concat (DSC)           lowered: the consumer conv/linear is split by input channel into one
                       node per source (``<name>__dsc<k>``, bias on the first), all feeding the
                       consumer's reader; a concat read by anything else (a batchnorm, a pool)
                       becomes fixed 1x1 placement convs ``<concat>__cat<k>``, summed
S2M into lif           a fixed 1x1 ``Conv2d`` (``Linear`` when flat) of weight W'·I from the
                       source, summed into the lif (snnTorch's importer has no ``Scale``)
V2V into lif           edges from every node of the source lif's current (eq. 15, 18)
readout                the graph ends at the readout's input: u_T / T is the mean over time of
                       ``Output`` (recorded as metadata ``snnc.readout``)
=====================  =========================================================================

batchnorm (not folded: pre-activation nets) becomes ``Affine`` (flat) or a diagonal 1x1
``Conv2d``; a non-square conv kernel is embedded in a square one with zeros (nir 1.0.8's shape
inference reads only the first kernel dimension). Refused with a message naming the node and
suggesting ``--target nir``: subtractive reset (NIR's LIF resets to a value), BNTT, vote,
maxpool, Poisson encoding, projections on the current (V2V). Target-exact graphs carry Lava's
one-step synaptic delay, which NIR 1.0 cannot express: export drops it only with
``allow_delay_drop=True`` and records ``snnc.synaptic_delay`` in the metadata; otherwise it
refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from snnc.compiler.core.errors import UnsupportedOp
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.ops import why_unsupported

DT = 1e-4  # snnTorch's importer uses this fixed dt
_PASS = ("identity", "dropout", "encoder")


def _np(g: Graph, key: str | None) -> np.ndarray | None:
    if key is None:
        return None
    t = g.param(key)
    if t is None:
        raise UnsupportedOp(f"graph '{g.name}' has no weights (structure only); NIR export "
                            f"needs them: load graph.json with graph.safetensors")
    return t.detach().cpu().float().numpy() if hasattr(t, "detach") else np.asarray(t, "f4")


def fire_threshold(theta: float) -> float:
    """The NIR ``v_threshold`` for snnc's fire-on-``v > θ`` neuron: the next float32 above θ.
    NIR leaves the crossing rule to the importer: snnTorch fires on ``v > v_threshold``,
    SpikingJelly on ``v >= v_threshold``. With θ⁺ = nextafter(θ) both fire exactly when the
    float32 membrane exceeds θ, including the exact ties a 2x2 pool neuron produces (four
    spikes x 1/4 = θ), except for a membrane equal to θ⁺ itself in snnTorch."""
    return float(np.nextafter(np.float32(theta), np.float32(np.inf)))


class _Export:
    def _exact_window(self, n) -> tuple[int, int] | None:
        """(kh, kw) when `n`'s adaptive windows tile its input exactly, else None."""
        _, _, h, w = self.g.node(self.g.inputs_of(n.name)[0].value_src).shape
        oh, ow = n.attrs["out"] if not isinstance(n.attrs["out"], int) else (n.attrs["out"],) * 2
        if h % oh or w % ow:
            return None
        return (h // oh, w // ow)

    def __init__(self, g: Graph, allow_delay_drop: bool):
        import nir

        self.nir, self.g = nir, g
        self.nodes: dict[str, object] = {}
        self.edges: list[tuple[str, str]] = []
        self.allow = allow_delay_drop
        self.split: dict[str, list[str]] = {}  # a DSC consumer -> its per-source nodes

    def refuse(self, n: Node, msg: str) -> None:
        raise UnsupportedOp(f"graph '{self.g.name}': node '{n.name}' (op {n.op}): {msg}; NIR "
                            f"export refuses rather than dropping it")

    def value(self, name: str) -> list[str]:
        """The NIR nodes whose summed outputs equal IR node `name`'s value."""
        n = self.g.node(name)
        if n.op == "input":
            return ["input"]
        if n.op in _PASS:
            if n.op == "encoder" and n.attrs.get("kind", "direct") == "poisson":
                self.refuse(n, "Poisson sampling is not a NIR node; export with --encoder "
                               "events or direct and encode on the host")
            return self.value(self.g.inputs_of(name)[0].value_src)
        if n.op == "add":
            return [p for e in self.g.inputs_of(name) for p in self.value(e.value_src)]
        if n.op == "concat":
            return self.placements(n)
        if name not in self.nodes:
            self.refuse(n, "this op has no NIR node")
        return self.split.get(name, [name])

    def current(self, lif: str) -> list[str]:
        """Producers of a lif's current: its main input plus its V2V inputs (eq. 15)."""
        ins = self.g.inputs_of(lif)
        out = self.value(ins[0].value_src)
        for e in ins[1:]:
            if e.kind is EdgeKind.V2V:
                out += self.current(e.src)
        return out

    def connect(self, dst: str, producers: list[str]) -> None:
        self.edges += [(p, dst) for p in producers]

    def weighted(self, n: Node) -> None:
        ir = self.nir
        w, b = _np(self.g, n.param("weight")), _np(self.g, n.param("bias"))
        src = self.g.inputs_of(n.name)[0]
        srcn = self.g.node(src.value_src)
        parts = [(n.name, w, b, [src])]
        if srcn.op == "concat":  # DSC lowering: one node per source, weights split by channel
            parts, off = [], 0
            for k, e in enumerate(self.g.inputs_of(srcn.name)):
                c = self.g.node(e.value_src).shape[1]
                sl = w[:, off:off + c]
                parts.append((n.name if k == 0 else f"{n.name}__dsc{k}", sl,
                              b if k == 0 else None, [e]))
                off += c
        for name, wk, bk, edges in parts:
            if n.op == "conv2d":
                a = n.attrs
                pad = a.get("pad", (0, 0, 0, 0))
                pad = (pad, pad) if isinstance(pad, int) else (pad[0], pad[1])
                if isinstance(a.get("pad", 0), tuple) and (a["pad"][0], a["pad"][1]) != \
                        (a["pad"][2], a["pad"][3]):
                    self.refuse(n, "asymmetric padding")
                h, wd = self.g.node(edges[0].value_src).shape[2:]
                bias = bk if bk is not None else np.zeros(wk.shape[0], "f4")
                wk, pad = self.square_kernel(n, wk, pad)
                node = ir.Conv2d(input_shape=(h, wd), weight=wk, stride=a.get("stride", 1),
                                 padding=pad, dilation=a.get("dilation", 1),
                                 groups=a.get("groups", 1), bias=bias)
            else:
                node = ir.Affine(weight=wk, bias=bk) if bk is not None else ir.Linear(weight=wk)
            self.nodes[name] = node
            for e in edges:
                if e.attrs.get("tap") == "current":
                    self.refuse(n, "a projection on a lif's current (V2V) has no NIR form")
                self.connect(name, self.value(e.value_src))
        self.split[n.name] = [p[0] for p in parts]

    def placements(self, n: Node) -> list[str]:
        """A channel concat read by anything but a conv/linear (which is split per source):
        NIR has no concat node, so each source k feeds a fixed 1x1 ``Conv2d`` (``Linear`` when
        flat) that writes it into its channel slice, and the reader sums them."""
        if n.attrs.get("axis", 1) != 1:
            self.refuse(n, "only channel concatenation maps to NIR")
        if n.name in self.split:
            return self.split[n.name]
        names, off, c = [], 0, n.shape[1]
        for k, e in enumerate(self.g.inputs_of(n.name)):
            ck = self.g.node(e.value_src).shape[1]
            if e.attrs.get("fraction", 1.0) != 1.0:
                self.refuse(n, "a DSC fraction < 1 has no NIR form")
            w = np.zeros((c, ck), "f4")
            w[off + np.arange(ck), np.arange(ck)] = 1.0
            name = f"{n.name}__cat{k}"
            self.nodes[name] = (self.nir.Linear(weight=w) if len(n.shape) == 2 else
                                self.nir.Conv2d(input_shape=tuple(n.shape[2:]),
                                                weight=w.reshape(c, ck, 1, 1), stride=1,
                                                padding=(0, 0), dilation=1, groups=1,
                                                bias=np.zeros(c, "f4")))
            self.connect(name, self.value(e.value_src))
            names.append(name)
            off += ck
        self.split[n.name] = names
        return names

    def square_kernel(self, n: Node, w: np.ndarray, pad):
        """nir 1.0.8 infers a Conv2d's output shape from the kernel's first dimension only
        (type inference then fails for a 3x5 kernel): embed a kh x kw kernel in the square
        max(kh, kw) kernel with zero rows/columns on both sides and widen the padding to
        match (the same convolution; docs/lava.md "NIR"). An odd size difference would need
        asymmetric padding: refused."""
        kh, kw = w.shape[2:]
        if kh == kw:
            return w, pad
        if (kh - kw) % 2:
            self.refuse(n, f"a {kh}x{kw} kernel: nir 1.0.8's shape inference needs a square "
                           f"kernel, and embedding this one needs asymmetric padding")
        k = max(kh, kw)
        dh, dw = (k - kh) // 2, (k - kw) // 2
        dil = self.g.node(n.name).attrs.get("dilation", 1)
        dil = (dil, dil) if isinstance(dil, int) else tuple(dil)
        sq = np.zeros(w.shape[:2] + (k, k), w.dtype)
        sq[:, :, dh:dh + kh, dw:dw + kw] = w
        return sq, (int(pad[0]) + dh * dil[0], int(pad[1]) + dw * dil[1])

    def batchnorm(self, n: Node) -> None:
        """An unfolded batchnorm (pre-activation nets): NIR ``Affine`` on flat values, a 1x1
        ``Conv2d`` with the diagonal scale on maps (NIR has no per-channel scale node that
        snnTorch imports); eval-mode statistics."""
        g = self.g
        w, b = _np(g, n.param("weight")), _np(g, n.param("bias"))
        mu, var = _np(g, n.param("running_mean")), _np(g, n.param("running_var"))
        scale = (w / np.sqrt(var.astype("f8") + n.attrs.get("eps", 1e-5))).astype("f4")
        shift = (b - mu * scale).astype("f4")
        c = n.shape[1]
        if len(n.shape) == 2:
            self.nodes[n.name] = self.nir.Affine(weight=np.diag(scale), bias=shift)
        else:
            self.nodes[n.name] = self.nir.Conv2d(
                input_shape=tuple(n.shape[2:]), weight=np.diag(scale).reshape(c, c, 1, 1),
                stride=1, padding=(0, 0), dilation=1, groups=1, bias=shift)
        self.connect(n.name, self.value(g.inputs_of(n.name)[0].value_src))

    def lif(self, n: Node) -> None:
        a = n.attrs
        if a.get("reset", "subtract") != "zero":
            self.refuse(n, "reset by subtraction: NIR's LIF resets to a value; compile with "
                           "--target nir (NIR's neuron: reset to zero, fire on v > theta)")
        if float(a.get("v_init", 0.0)):
            self.refuse(n, "an initial membrane (v_init, --init-membrane) is not part of NIR's "
                           "LIF; compile with --init-membrane 0")
        lam, th = float(a.get("leak", 1.0)), float(a.get("vth", 1.0))
        shape = n.shape[1:]
        tau = DT / (1.0 - lam) if lam < 1.0 else 1e12 * DT
        if a.get("fire", "gt") == "gt":  # v > θ in every importer (see fire_threshold)
            th = fire_threshold(th)
        self.nodes[n.name] = self.nir.LIF(
            tau=np.full(shape, tau, "f8"), r=np.full(shape, tau / DT, "f8"),
            v_leak=np.zeros(shape, "f8"), v_threshold=np.full(shape, th, "f8"))
        ins = self.g.inputs_of(n.name)
        self.connect(n.name, self.value(ins[0].value_src))
        for k, e in enumerate(ins[1:], start=1):
            if e.kind is EdgeKind.S2M:
                scale = float(e.attrs.get("scale", 1.0))
                sname = f"{n.name}__s2m{k}"
                c = shape[0]
                eye = (scale * np.eye(c, dtype="f4"))
                self.nodes[sname] = (self.nir.Conv2d(
                    input_shape=tuple(shape[1:]), weight=eye.reshape(c, c, 1, 1), stride=1,
                    padding=0, dilation=1, groups=1, bias=np.zeros(c, "f4"))
                    if len(shape) == 3 else self.nir.Linear(weight=eye))
                self.connect(sname, self.value(e.value_src))
                self.connect(n.name, [sname])
            elif e.kind is EdgeKind.V2V:
                if e.projection is not None:
                    self.refuse(n, "a V2V edge with a projection has no NIR form")
                self.connect(n.name, self.current(e.src))
            else:
                self.refuse(n, f"input port {e.port} carries a {e.kind} edge")

    def run(self):
        ir, g = self.nir, self.g
        if g.form is not Form.SNN:
            raise UnsupportedOp(f"graph '{g.name}' is in ANN form; NIR export needs the SNN form")
        delay = int(g.attrs.get("synaptic_delay", 0) or 0)
        if delay and not self.allow:
            first = next((n.name for n in g.nodes if n.op == "lif"), g.outputs[0])
            raise UnsupportedOp(
                f"graph '{g.name}': node '{first}' (op lif) and every later neuron layer "
                f"receive their input one step late (target {g.attrs.get('target')}, "
                f"synaptic_delay={delay}); NIR 1.0 has no delay node and its importers run "
                f"the same-step equations. Compile with --target nir for NIR export (pass "
                f"allow_delay_drop=True in Python to export anyway)")
        for n in g.nodes:  # the op table says which ops the NIR emitter maps
            why = why_unsupported(n.op, "nir")
            if why is not None:
                self.refuse(n, why)
        (inp,) = g.input_nodes()
        self.nodes["input"] = ir.Input(input_type=np.array(inp.shape[1:]))
        readout = None
        for n in g.nodes:  # one builder per op (_BUILDERS), as the op table lists them
            readout = _BUILDERS[n.op](self, n) or readout
        out = g.outputs[0]
        src = self.value(g.inputs_of(readout)[0].value_src) if readout else self.value(out)
        shape = g.node(out).shape[1:]
        self.nodes["output"] = ir.Output(output_type=np.array(shape))
        self.connect("output", src)
        meta = {"snnc.graph": g.name, "snnc.timesteps": int(g.attrs.get("timesteps", 1)),
                "snnc.readout": "mean over time of output" if readout else "none",
                "snnc.synaptic_delay": delay, "snnc.dt": DT}
        return ir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=meta)


# -- one builder per IR op: it adds the op's NIR node(s) and edges; a readout returns its name --
_BUILDERS: dict[str, Callable[[_Export, Node], str | None]] = {}


def _builder(*ops: str):
    def deco(fn):
        for op in ops:
            _BUILDERS[op] = fn
        return fn
    return deco


@_builder("input", "add", "concat", "identity", "dropout")
def _no_node(ex: _Export, n: Node) -> None:
    """No NIR node of its own: readers take its value's producers (`_Export.value`)."""


@_builder("encoder")
def _encoder(ex: _Export, n: Node) -> None:
    ex.value(n.name)  # refuses Poisson sampling


@_builder("conv2d", "linear")
def _weighted(ex: _Export, n: Node) -> None:
    ex.weighted(n)


@_builder("lif")
def _lif(ex: _Export, n: Node) -> None:
    ex.lif(n)


@_builder("batchnorm")
def _batchnorm(ex: _Export, n: Node) -> None:
    ex.batchnorm(n)  # unfolded (pre-activation): Affine / diagonal 1x1 Conv2d


@_builder("avgpool")
def _avgpool(ex: _Export, n: Node) -> None:
    k, s = n.attrs["k"], n.attrs.get("stride", n.attrs["k"])
    pad = n.attrs.get("pad", 0)
    pad = (pad, pad) if isinstance(pad, int) else (pad[0], pad[1])
    ex.nodes[n.name] = ex.nir.AvgPool2d(kernel_size=k, stride=s, padding=pad)
    ex.connect(n.name, ex.value(ex.g.inputs_of(n.name)[0].value_src))


@_builder("adaptive_avgpool")
def _adaptive_avgpool(ex: _Export, n: Node) -> None:
    # documented lowering: an adaptive pool whose windows tile the input exactly (e.g. global
    # average pooling) is the AvgPool2d with that window
    k = ex._exact_window(n)
    if k is None:
        ex.refuse(n, "NIR has no node for it (and snnc no documented lowering)")
    ex.nodes[n.name] = ex.nir.AvgPool2d(kernel_size=k, stride=k, padding=(0, 0))
    ex.connect(n.name, ex.value(ex.g.inputs_of(n.name)[0].value_src))


@_builder("flatten")
def _flatten(ex: _Export, n: Node) -> None:
    shape = ex.g.node(ex.g.inputs_of(n.name)[0].value_src).shape[1:]
    ex.nodes[n.name] = ex.nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                      end_dim=-1)
    ex.connect(n.name, ex.value(ex.g.inputs_of(n.name)[0].value_src))


@_builder("readout")
def _readout(ex: _Export, n: Node) -> str:
    if n.name not in ex.g.outputs:
        ex.refuse(n, "NIR has no node for it (and snnc no documented lowering)")
    return n.name


def to_nir(g: Graph, *, allow_delay_drop: bool = False):
    """The ``nir.NIRGraph`` of SNN-form graph `g` (see the module docstring for the mapping)."""
    return _Export(g, allow_delay_drop).run()


def export(g: Graph, path: str | Path, *, allow_delay_drop: bool = False) -> Path:
    """Write `g` as a NIR file (HDF5, readable with ``nir.read``); returns the path."""
    import nir

    path = Path(path)
    nir.write(str(path), to_nir(g, allow_delay_drop=allow_delay_drop))
    return path
