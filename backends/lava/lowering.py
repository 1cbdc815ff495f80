"""Lower an SNN-form graph to a Lava plan (backends/lava/plan.py), checking fixed point.

Requires: an SNN-form graph with parameters (conversion pipeline output): one input and its
encoder, ``lif`` / ``readout`` neurons fed by conv2d / linear (+ batchnorm, folded here) or by
avgpool (a fixed depthwise sum-conv of weight 1/k²), S2S adds, DSC concats, flatten, and
S2M / V2V edges into lif ports >= 1.
Guarantees: every node is mapped or the export is refused with a message naming it (nothing
is dropped); every weight, threshold, leak and bias is on Loihi 2's grid or reported.
Per-op rules are registries (`_VALUE_RULES`, `_WEIGHT_RULES`); which ops map at all is the op
table's (compiler/core/ops.py), checked by tests/compiler/test_ops.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from snnc.backends.lava import fixedpoint as fx
from snnc.backends.lava.plan import Layer, Plan, Synapse
from snnc.backends.relay import (
    RELAY_STATE_EXP, RELAY_STEP, exact_loihi2, folded_bn, is_relay_edge,
)
from snnc.compiler.core.errors import UnsupportedOp
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.ops import why_unsupported
from snnc.compiler.core.shapes import pad4, pair

_PASS = ("identity", "dropout")
_CONV1 = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}


@dataclass(frozen=True)
class Term:
    """Part of a value: value[:, dst:dst+n] = output of layer `src`[:, lo:lo+n] (channels, or
    flat C,H,W features when `flat`). `label` is the synapse kind it becomes."""

    src: int
    lo: int
    n: int
    dst: int
    flat: bool
    label: str


class _Lowering:
    def __init__(self, g: Graph, source: str):
        self.g, self.source = g, source
        self.chk = fx.Checker(source)
        self.layers: list[Layer] = []
        self.index: dict[str, int] = {}
        self.seen: set[str] = set()
        self.current_bias: dict[str, np.ndarray] = {}
        self.relays: dict[str, int] = {}  # IR value -> its relay layer
        self.proj_bias: dict[str, np.ndarray] = {}

    # -- errors and tensors -----------------------------------------------------------------
    def refuse(self, node: Node | str, msg: str) -> None:
        n = self.g.node(node) if isinstance(node, str) else node
        raise UnsupportedOp(f"{self.source}: node '{n.name}' (op {n.op}): {msg}")

    def tensor(self, key: str | None) -> np.ndarray | None:
        if key is None:
            return None
        t = self.g.param(key)
        if t is None:
            raise UnsupportedOp(f"{self.source}: the graph has no weights (structure only); "
                                f"export needs them: load graph.json with graph.safetensors")
        if hasattr(t, "detach"):
            t = t.detach().cpu().double().numpy()
        return np.asarray(t, dtype=np.float64)

    # -- values: what a weighted op reads, as terms over neuron layers ----------------------
    def value(self, name: str, label: str = "main") -> list[Term]:
        n = self.g.node(name)
        self.seen.add(name)
        if name in self.index:
            return [Term(self.index[name], 0, n.shape[1], 0, len(n.shape) == 2, label)]
        rule = _VALUE_RULES.get(n.op)
        if rule is None:
            self.refuse(n, _NO_VALUE.get(n.op, _NO_VALUE[None]))
        return rule(self, n, label)

    # -- weighted ops -----------------------------------------------------------------------
    def weighted(self, name: str) -> tuple[Node, np.ndarray, np.ndarray, dict | None]:
        """Walk back from a neuron input through batchnorm to the weighted op: (op node, float
        weight, float bias, conv geometry or None)."""
        n = self.g.node(name)
        self.seen.add(name)
        scale = shift = None
        if n.op == "bntt":
            self.refuse(n, "BNTT keeps per-time-step statistics, which a Loihi neuron cannot "
                           "hold; compile without BNTT (--no-bntt) for the Lava backend")
        if n.op == "batchnorm":
            w, b = self.tensor(n.param("weight")), self.tensor(n.param("bias"))
            mu, var = self.tensor(n.param("running_mean")), self.tensor(n.param("running_var"))
            scale = w / np.sqrt(var + n.attrs.get("eps", 1e-5))
            shift = b - mu * scale
            n = self.g.node(self.g.inputs_of(n.name)[0].value_src)
            self.seen.add(n.name)
        rule = _WEIGHT_RULES.get(n.op)
        if rule is None:
            self.refuse(n, "a neuron's input must come from conv2d, linear or avgpool (with an "
                           "optional batchnorm) on Loihi 2")
        w, b, conv = rule(self, n)
        if scale is not None:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
            if exact_loihi2(self.g) and "weight_range" in n.attrs:
                # trained folded (QAT, ops.Weighted.fold_bn): the PyTorch backend clamps the
                # folded weights to the layer's grid range; this is that trained function
                w = np.clip(w, *map(float, n.attrs["weight_range"]))
        # each op's bias on the 1/64 grid here, as the PyTorch backend rounds it per op
        # (ops.Weighted): a trained graph stores float biases, and sums of them (V2V currents,
        # relays, a pooled readout's k*k) must add rounded values, not round the sum
        return n, w, np.round(b * fx.W_SCALE) / fx.W_SCALE, conv

    def geometry(self, n: Node) -> dict:
        pt, pl, pb, pr = pad4(n.attrs.get("pad", 0))
        if (pt, pl) != (pb, pr):
            self.refuse(n, f"asymmetric padding {(pt, pl, pb, pr)}; Lava's conv pads each side "
                           f"equally")
        return {"stride": pair(n.attrs.get("stride", 1)), "padding": (pt, pl),
                "dilation": pair(n.attrs.get("dilation", 1)), "groups": n.attrs.get("groups", 1)}

    def pool(self, n: Node) -> tuple[dict, np.ndarray]:
        kh, kw = pair(n.attrs["k"])
        if n.attrs.get("ceil", False) or any(pad4(n.attrs.get("pad", 0))):
            self.refuse(n, "average pooling with padding or ceil mode has no fixed sum-conv form")
        c = n.shape[1]
        if (fx.W_SCALE / (kh * kw)) % fx.W_STEP:
            self.chk.add(n.name, n.op, f"a {kh}x{kw} average is a weight of 1/{kh * kw}, not a "
                                       f"multiple of 1/32; use 2x2 or 4x4 pooling")
        conv = {"stride": pair(n.attrs.get("stride", n.attrs["k"])), "padding": (0, 0),
                "dilation": (1, 1), "groups": c}
        return conv, np.full((c, 1, kh, kw), 1.0 / (kh * kw))

    def synapses(self, op: Node, w: np.ndarray, conv: dict | None, terms: list[Term],
                 kind: str | None = None) -> list[Synapse]:
        """Split `w` (float, over the value's channels/features) into one synapse per term."""
        step = float(op.attrs.get("weight_step", fx.W_STEP / fx.W_SCALE))
        q = fx.conv_weight(w, op.name, op.op, self.chk, step)
        out = []
        for t in terms:
            src_shape = self.layers[t.src].shape
            if conv is not None:
                if t.flat:
                    self.refuse(op, "a conv reads flattened values")
                if conv["groups"] != 1:
                    if t.lo != 0 or t.dst != 0 or t.n != src_shape[0] or t.n != q.shape[0]:
                        self.refuse(op, "a grouped conv over a concat cannot be split per source")
                    wt = q
                else:
                    wt = np.zeros((q.shape[0], src_shape[0]) + q.shape[2:], np.int32)
                    wt[:, t.lo:t.lo + t.n] = q[:, t.dst:t.dst + t.n]
            else:
                if not t.flat and len(src_shape) != 1:
                    self.refuse(op, "linear reads a 4-D value without a flatten")
                wt = np.zeros((q.shape[0], int(np.prod(src_shape))), np.int32)
                wt[:, t.lo:t.lo + t.n] = q[:, t.dst:t.dst + t.n]
            if self.layers[t.src].op == "relay":  # payload = value / RELAY_STEP
                wt = wt * RELAY_STEP
                if np.any(wt != np.round(wt)):
                    self.refuse(op, "weights read from a graded relay must be even integers 64·w "
                                    "(weight step 1/32 or coarser)")
                wt = np.round(wt).astype(np.int32)
            out.append(Synapse(t.src, kind or t.label, wt, conv, origin=op.name))
        return out

    # -- neurons ----------------------------------------------------------------------------
    def neuron(self, n: Node) -> dict:
        if n.op == "readout":  # non-leaky integrator that never fires
            return {"type": "CUBA", "iDecay": 4096, "vDecay": 0,
                    "vThMant": (1 << fx.TH_BITS) - 1, "refDelay": 1, "gradedSpike": False}
        if float(n.attrs.get("v_init", 0.0)):
            self.refuse(n, "an initial membrane (v_init, --init-membrane) has no place in "
                           "netx's network description; compile with --init-membrane 0")
        return {"type": "CUBA", "iDecay": 4096,
                "vDecay": fx.voltage_decay(float(n.attrs.get("leak", 1.0)), n.name, n.op,
                                           self.chk),
                "vThMant": fx.threshold(float(n.attrs.get("vth", 1.0)), n.name, n.op, self.chk),
                "refDelay": 1, "gradedSpike": False}

    def add_neuron(self, n: Node) -> None:
        ins = self.g.inputs_of(n.name)
        first = self.g.node(ins[0].value_src)
        scale = 1
        if first.op == "batchnorm" and is_relay_edge(self.g, self.g.inputs_of(first.name)[0]):
            op, w, b, conv, terms = self.bn_relay(first)  # pre-activation: BN of a current
        else:
            op, w, b, conv = self.weighted(ins[0].value_src)
            pooled = self.pooled(n, op, w) if n.op == "readout" else None
            if pooled is not None:  # readout(linear(flatten(avgpool(x)))): a sum, scaled back
                terms, w, scale = pooled
                b = b * scale
            else:
                terms = self.value(self.g.inputs_of(op.name)[0].value_src)
        syns = self.synapses(op, w, conv, terms)
        shape = tuple(n.shape[1:])
        extra = np.zeros_like(b)  # S2M projection biases: not part of the V2V current
        for e in ins[1:]:
            if e.kind is EdgeKind.S2M:
                syns += self.s2m(n, e, shape, extra)
            elif e.kind is EdgeKind.V2V:
                if e.projection is not None:
                    syns += self.v2v_projection(n, e)
                    b = b + self.proj_bias.pop(e.value_src)
                    continue
                src = self.layers[self.index[e.src]]
                syns += [replace(s, kind="v2v") for s in src.synapses if s.kind != "s2m"]
                b = b + self.current_bias[e.src]
                self.seen.add(e.src)
            else:
                self.refuse(n, f"input port {e.port} carries a {e.kind} edge")
        self.current_bias[n.name] = b
        layer = Layer(n.name, shape, self.neuron(n), fx.bias(b + extra, n.name, n.op, self.chk),
                      syns, readout=n.op == "readout", op=n.op, scale=scale)
        self.index[n.name] = len(self.layers)
        self.layers.append(layer)
        self.seen.add(n.name)

    # -- pooled readouts and graded relays -------------------------------------------------
    def pooled(self, n: Node, op: Node, w: np.ndarray):
        """A readout reading linear(flatten(avgpool(x))): the linear's weights repeated over
        each pool window (a sum pool), and the factor k·k by which the readout's membrane
        exceeds the PyTorch value (docs/lava.md "Pooled readout"). None if not that form."""
        if op.op != "linear":
            return None
        flat = self.g.node(self.g.inputs_of(op.name)[0].value_src)
        if flat.op not in ("flatten", "reshape"):
            return None
        pool = self.g.node(self.g.inputs_of(flat.name)[0].value_src)
        if pool.op not in ("avgpool", "adaptive_avgpool"):
            return None
        inner = self.g.node(self.g.inputs_of(pool.name)[0].value_src)
        c, h, wd = inner.shape[1:]
        oh, ow = pool.shape[2:]
        if h % oh or wd % ow:
            self.refuse(pool, f"a {h}x{wd} map pooled to {oh}x{ow} has unequal windows")
        kh, kw = h // oh, wd // ow
        if pool.op == "avgpool" and (pair(pool.attrs.get("stride", pool.attrs["k"])) != (kh, kw)
                                     or any(pad4(pool.attrs.get("pad", 0)))
                                     or pool.attrs.get("ceil", False)):
            self.refuse(pool, "only non-overlapping average pools without padding can feed "
                              "the readout as a sum")
        self.seen |= {flat.name, pool.name}
        wide = np.repeat(np.repeat(w.reshape(w.shape[0], c, oh, ow), kh, 2), kw, 3)
        terms = [t if t.flat else replace(t, lo=t.lo * h * wd, n=t.n * h * wd,
                                          dst=t.dst * h * wd, flat=True)
                 for t in self.value(inner.name)]
        return terms, wide.reshape(w.shape[0], -1), kh * kw

    def projection_relay(self, at: Node, tail: str, label: str) -> Term:
        """The relay layer carrying the S2S projection `tail`'s output (backends/relay.py)."""
        if tail not in self.relays:
            op, w, b, conv = self.weighted(tail)
            terms = self.value(self.g.inputs_of(op.name)[0].value_src)
            syns = self.synapses(op, w, conv, terms)
            shape = tuple(self.g.node(tail).shape[1:])
            self.relays[tail] = self.relay_layer(tail, shape, syns, b, op)
        idx = self.relays[tail]
        shape = self.layers[idx].shape
        return Term(idx, 0, shape[0], 0, len(shape) == 1, label)

    def bn_relay(self, bn: Node):
        """A batchnorm that was not folded (it normalises a sum or concat of currents): a relay
        holding its input, then a 1x1 synapse of weight scale (8-bit grid) and the shift as
        the neuron's bias, as the PyTorch backend computes it (ops.BatchNorm.affine)."""
        self.seen.add(bn.name)
        idx = self.current_relay(self.g.inputs_of(bn.name)[0].value_src)
        gamma, beta = self.tensor(bn.param("weight")), self.tensor(bn.param("bias"))
        mu, var = self.tensor(bn.param("running_mean")), self.tensor(bn.param("running_var"))
        scale = gamma / np.sqrt(var + bn.attrs.get("eps", 1e-5))
        shift = beta - mu * scale
        scale = np.clip(fx.quantize_weight(scale) / fx.W_SCALE, fx.W_MIN / fx.W_SCALE,
                        fx.W_MAX / fx.W_SCALE)
        c = bn.shape[1]
        flat = len(bn.shape) == 2
        w = np.diag(scale) if flat else np.diag(scale).reshape(c, c, 1, 1)
        return bn, w, shift, None if flat else dict(_CONV1), [Term(idx, 0, c, 0, flat, "main")]

    def current_relay(self, name: str) -> int:
        """The relay layer holding the graded current `name` (a conv/linear output, or an add
        or channel concat of such, or an average pool of a relayed current)."""
        if name not in self.relays:
            c = self.g.node(name).shape[1]
            bias = np.zeros(c)
            syns = self.current_synapses(name, c, 0, bias)
            shape = tuple(self.g.node(name).shape[1:])
            self.relays[name] = self.relay_layer(name, shape, syns, bias, self.g.node(name))
        return self.relays[name]

    def current_synapses(self, name: str, out_c: int, off: int,
                         bias: np.ndarray) -> list[Synapse]:
        """Synapses writing current `name` into channels [off, off + C) of a relay with `out_c`
        channels; its biases are added to `bias`."""
        n = self.g.node(name)
        self.seen.add(name)
        ins = self.g.inputs_of(name)
        if n.op in _PASS:
            return self.current_synapses(ins[0].value_src, out_c, off, bias)
        if n.op == "add":
            out = []
            for e in ins:
                out += self.current_synapses(e.value_src, out_c, off, bias)
            return out
        if n.op == "concat" and n.attrs.get("axis", 1) == 1:
            out, k = [], off
            for e in ins:
                if e.attrs.get("fraction", 1.0) != 1.0:
                    self.refuse(n, "a DSC fraction < 1 of a current has no Loihi form")
                out += self.current_synapses(e.value_src, out_c, k, bias)
                k += self.g.node(e.value_src).shape[1]
            return out
        if n.op in ("conv2d", "linear") or folded_bn(self.g, name) is not None:
            op, w, b, conv = self.weighted(name)
            if conv is not None and conv["groups"] != 1:
                self.refuse(n, "a grouped conv inside a relayed current sum")
            wide = np.zeros((out_c,) + w.shape[1:])
            wide[off:off + w.shape[0]] = w
            bias[off:off + w.shape[0]] += b
            terms = self.value(self.g.inputs_of(op.name)[0].value_src)
            return self.synapses(op, wide, conv, terms)
        if n.op in ("avgpool", "adaptive_avgpool") and is_relay_edge(self.g, ins[0]):
            src = self.current_relay(ins[0].value_src)
            if n.op == "adaptive_avgpool":
                self.refuse(n, "an adaptive average pool of a current has no fixed sum-conv")
            conv, pw = self.pool(n)
            c = pw.shape[0]
            wide = np.zeros((out_c, c) + pw.shape[2:])
            wide[off + np.arange(c), np.arange(c)] = pw[:, 0]
            conv = dict(conv, groups=1)
            return self.synapses(n, wide, conv, [Term(src, 0, c, 0, False, "main")])
        self.refuse(n, "this op cannot be part of a graded current sum on Loihi 2 (conv2d, "
                       "linear, add, concat, average pool of a current)")
        return []

    def v2v_projection(self, n: Node, e) -> list[Synapse]:
        """A V2V edge with a projection: a relay holding the source lif's current (eq. 15),
        then the projection's synapse from it; the projection's bias joins `n`'s bias."""
        src = self.layers[self.index[e.src]]
        self.seen.add(e.src)
        key = f"{e.src}__current"
        if key not in self.relays:
            copies = [replace(s, kind="main") for s in src.synapses if s.kind != "s2m"]
            self.relays[key] = self.relay_layer(key, src.shape, copies,
                                                self.current_bias[e.src], self.g.node(e.src))
        op, w, pb, conv = self.weighted(e.value_src)
        self.proj_bias[e.value_src] = pb
        t = Term(self.relays[key], 0, src.shape[0], 0, len(src.shape) == 1, "v2v")
        return self.synapses(op, w, conv, [t], "v2v")

    def relay_layer(self, name: str, shape, syns: list[Synapse], b: np.ndarray,
                    op: Node) -> int:
        """Append a relay (sigma-delta, threshold 0, payload floor(value / RELAY_STEP)) fed by
        `syns`, with its bias `b` from a bias unit; returns its index."""
        if np.any(b):
            syns = syns + [self.bias_synapse(name, shape, b, op)]
        neuron = {"type": "RELAY", "iDecay": 0, "vDecay": 0, "vThMant": 0, "refDelay": 1,
                  "gradedSpike": True, "stateExp": RELAY_STATE_EXP}
        self.layers.append(Layer(f"{name}__relay", tuple(shape), neuron, None, syns,
                                 op="relay"))
        return len(self.layers) - 1

    def bias_synapse(self, name: str, shape, b: np.ndarray, op: Node) -> Synapse:
        """A per-channel bias into a relay: a bias unit (m neurons per pixel that fire every
        step, bias 1/64 > threshold 0) and a 1x1 synapse whose m weights sum to 64·b."""
        q = fx.bias(b, op.name, op.op, self.chk).astype(np.int64)
        m = max(1, int(np.ceil(np.max(np.abs(q)) / 255)))
        base, rem = np.divmod(q, m)
        w = np.stack([base + (j < rem) for j in range(m)], 1).astype(np.int32)  # (C, m)
        unit_shape = (m,) + tuple(shape[1:])
        neuron = {"type": "CUBA", "iDecay": 4096, "vDecay": 4096, "vThMant": 0, "refDelay": 1,
                  "gradedSpike": False}
        self.layers.append(Layer(f"{name}__bias", unit_shape, neuron, np.ones(m, np.int32),
                                 [], op="bias"))
        idx = len(self.layers) - 1
        if len(shape) == 1:
            return Synapse(idx, "bias", w, None, origin=op.name)
        return Synapse(idx, "bias", w.reshape(*w.shape, 1, 1), dict(_CONV1), origin=op.name)

    def s2m(self, n: Node, e, shape, extra: np.ndarray) -> list[Synapse]:
        scale = float(e.attrs.get("scale", 1.0))
        if e.projection is None:
            terms = self.value(e.src, "s2m")
            c = shape[0]
            eye = np.eye(c).reshape(c, c, 1, 1) if len(shape) == 3 else np.eye(c)
            return self.synapses(n, scale * eye, _CONV1 if len(shape) == 3 else None, terms,
                                 "s2m")
        op, w, pb, conv = self.weighted(e.projection)
        extra += scale * pb  # the projection's bias lands in the destination neuron
        terms = self.value(self.g.inputs_of(op.name)[0].value_src, "s2m")
        return self.synapses(op, scale * w, conv, terms, "s2m")

    def run(self) -> Plan:
        g = self.g
        if g.form is not Form.SNN:
            raise UnsupportedOp(f"{self.source}: graph '{g.name}' is in ANN form; the Lava "
                                f"backend needs the SNN form (run the conversion pipeline)")
        for n in g.nodes:  # the op table says which ops the Lava backend maps
            why = why_unsupported(n.op, "lava")
            if why is not None:
                self.refuse(n, why)
        encs, ins = g.by_op("encoder"), g.input_nodes()
        if len(ins) != 1 or len(encs) != 1:
            raise UnsupportedOp(f"{self.source}: the Lava backend needs exactly one input and "
                                f"one encoder (found {len(ins)} and {len(encs)})")
        enc = encs[0]
        self.layers.append(Layer(enc.name, tuple(enc.shape[1:]), op="input"))
        self.index[enc.name] = 0
        self.seen |= {enc.name, ins[0].name}
        modes = {(n.attrs.get("reset", "zero"), n.attrs.get("fire", "gt"))
                 for n in g.by_op("lif")}
        if len(modes) > 1:
            raise UnsupportedOp(f"{self.source}: lif nodes mix reset/fire modes {sorted(modes)};"
                                f" one Lava run uses one neuron model")
        reset, fire = modes.pop() if modes else ("zero", "gt")
        for n in g.nodes:
            if n.op in ("lif", "readout"):
                self.add_neuron(n)
        outputs = {}
        for o in g.outputs:
            terms = self.value(o)
            if any(t.lo or t.dst or t.n != self.layers[t.src].shape[0] for t in terms):
                self.refuse(o, "an output must be whole neuron layers")
            outputs[o] = [t.src for t in terms]
        left = [n for n in g.nodes if n.name not in self.seen]
        if left:
            self.refuse(left[0], f"{len(left)} node(s) have no Lava mapping ("
                                 f"{', '.join(n.name for n in left[:6])}); nothing is dropped "
                                 f"silently, so the export stops here")
        self.chk.raise_if_any()
        return Plan(g.name, self.layers, int(g.attrs.get("timesteps", 1)),
                    {"reset": reset, "fire": fire},
                    input_graded=enc.attrs.get("kind", "direct") == "direct", outputs=outputs)


# -- per-op rules (registries keyed by IR op; the op table, compiler/core/ops.py, says which ops
# the Lava backend maps, and tests/compiler/test_ops.py checks these registries against it) --
ValueRule = Callable[[_Lowering, Node, str], list[Term]]
WeightRule = Callable[[_Lowering, Node], tuple[np.ndarray, np.ndarray, "dict | None"]]
_VALUE_RULES: dict[str, ValueRule] = {}  # what a synapse reads from the op's output
_WEIGHT_RULES: dict[str, WeightRule] = {}  # a neuron's input op: (float weight, bias, conv)
# Ops the lowering maps outside these two registries: the input and its encoder (the input
# layer, run()), neurons (add_neuron), batchnorm (folded into the weights, weighted()) and the
# adaptive average pool before a readout (pooled()) or a relay (current_synapses()).
MAPPED_ELSEWHERE = frozenset({"input", "encoder", "lif", "readout", "batchnorm",
                              "adaptive_avgpool"})
# Ops that map to Loihi but not as a value a synapse reads, and why (value()'s refusal).
_NO_VALUE = {
    "avgpool": "an average pool must feed a neuron on Loihi (put an activation after the pool: "
               "it becomes a pooling layer, a fixed depthwise sum-conv into neurons); its "
               "graded output cannot travel as binary spikes",
    "adaptive_avgpool": "an average pool must feed a neuron on Loihi (put an activation after "
                        "the pool: it becomes a pooling layer, a fixed depthwise sum-conv into "
                        "neurons); its graded output cannot travel as binary spikes",
    "maxpool": "max pooling has no Loihi synapse; lower it to average (sum) pooling before "
               "export",
    None: "this op cannot feed a synapse on Loihi 2 (the Lava backend maps lif, readout, "
          "conv2d, linear, batchnorm, avgpool, add (S2S), concat (DSC), flatten)",
}


def _rule(table: dict, *ops: str):
    def deco(fn):
        for op in ops:
            table[op] = fn
        return fn
    return deco


@_rule(_VALUE_RULES, *_PASS)
def _pass_value(lw: _Lowering, n: Node, label: str) -> list[Term]:
    return lw.value(lw.g.inputs_of(n.name)[0].value_src, label)


@_rule(_VALUE_RULES, "add")
def _add_value(lw: _Lowering, n: Node, label: str) -> list[Term]:
    terms = []
    for e in lw.g.inputs_of(n.name):
        lab = "s2s" if e.kind is EdgeKind.S2S else label
        if is_relay_edge(lw.g, e):  # the projection's graded output: a relay
            terms.append(lw.projection_relay(n, e.value_src, lab))
            continue
        if e.projection is not None:
            lw.refuse(n, f"the S2S edge from '{e.src}' has a projection "
                         f"('{e.projection}'); its graded output crosses a synapse "
                         f"only through a graded relay, which snnc builds for "
                         f"target-exact loihi2 graphs (--target loihi2 --semantics "
                         f"target)")
        terms += lw.value(e.value_src, lab)
    return terms


@_rule(_VALUE_RULES, "concat")
def _concat_value(lw: _Lowering, n: Node, label: str) -> list[Term]:
    if n.attrs.get("axis", 1) != 1:
        lw.refuse(n, "only channel concatenation (axis 1) maps to synapses")
    terms, off = [], 0
    for e in lw.g.inputs_of(n.name):
        if e.attrs.get("fraction", 1.0) != 1.0:
            lw.refuse(n, f"DSC edge from '{e.src}' concatenates a fraction "
                         f"{e.attrs['fraction']} of its channels; export supports "
                         f"whole sources only")
        lab = "concat" if e.kind is EdgeKind.DSC else label
        terms += [replace(t, dst=t.dst + off) for t in lw.value(e.value_src, lab)]
        off += lw.g.node(e.value_src).shape[1]
    return terms


@_rule(_VALUE_RULES, "flatten", "reshape")
def _flatten_value(lw: _Lowering, n: Node, label: str) -> list[Term]:
    src = lw.g.node(lw.g.inputs_of(n.name)[0].value_src)
    if len(n.shape) != 2 or n.shape[0] != src.shape[0]:
        lw.refuse(n, f"only a flatten to [N, F] maps to Loihi (shape {list(n.shape)})")
    hw = int(np.prod(src.shape[2:])) if len(src.shape) > 2 else 1
    return [t if t.flat else replace(t, lo=t.lo * hw, n=t.n * hw, dst=t.dst * hw,
                                     flat=True)
            for t in lw.value(src.name, label)]


@_rule(_WEIGHT_RULES, "conv2d", "linear")
def _layer_weights(lw: _Lowering, n: Node):
    w = lw.tensor(n.param("weight"))
    b = lw.tensor(n.param("bias"))
    b = np.zeros(w.shape[0]) if b is None else b
    return w, b, lw.geometry(n) if n.op == "conv2d" else None


@_rule(_WEIGHT_RULES, "avgpool")
def _pool_weights(lw: _Lowering, n: Node):
    conv, w = lw.pool(n)
    return w, np.zeros(w.shape[0]), conv


def folded_weights(g: Graph) -> dict[str, np.ndarray]:
    """{conv2d/linear name: its weight as deployed, int file units 64·w} for every layer of
    target-exact loihi2 graph `g` trained with its batch norm folded (`folded_bn`, the
    `--bn shared` default, docs/lava.md "Deployable default"): q(clip(W s)) exactly as
    `lower` emits it (`weighted`, then `synapses`' `fx.conv_weight` on the layer's grid).
    What the cost model counts as the layer's non-zero synapses (docs/costmodel.md); a layer
    the lowering would refuse is left out (the float weights are counted; `lower` names it)."""
    out: dict[str, np.ndarray] = {}
    if g.params is None:
        return out
    lw = _Lowering(g, f"graph '{g.name}'")
    for bn in g.by_op("batchnorm"):
        if folded_bn(g, bn.name) is None:
            continue
        try:
            op, w, _, _ = lw.weighted(bn.name)
        except UnsupportedOp:
            continue
        step = float(op.attrs.get("weight_step", fx.W_STEP / fx.W_SCALE))
        out[op.name] = fx.conv_weight(w, op.name, op.op, fx.Checker(lw.source), step)
    return out


def lower(g: Graph, *, source: str | None = None) -> Plan:
    """The Lava plan of SNN-form graph `g`; raises UnsupportedOp / ConstraintViolation."""
    return _Lowering(g, source or f"graph '{g.name}'").run()
