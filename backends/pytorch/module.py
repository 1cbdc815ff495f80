"""SNNModule: the SNN-form IR as a trainable nn.Module (docs/design.md "Backends").

The module keeps the graph and runs it node by node, *multi-step*: each node's value is a
time-major tensor [T, B, ...] holding all T steps (or [1, B, ...] when it is the same at every
step), so a conv runs once over T*B samples and a lif scans over T in one autograd node
(`neuron.lif_scan`). Values are dropped as soon as their last reader ran; a BN or lif that is
its input's last reader writes its output over it (`_donors_of`, docs/pytorch-backend.md
"Memory").

Semantics per docs/ir.md: encoder (direct / poisson / events), lif with S2M (`scale * value`)
and V2V (the source lif's current) inputs summed into its membrane in port order, S2S as an add
after the lif, readout = u_T / T, every lif's spikes shifted `synaptic_delay` steps later (1 on
Loihi: Lava's synaptic delay), and Lava's fixed-point neuron and 8-bit weights where the graph
attr `arithmetic` is `lava-fixed` (set from the target file, docs/targets.md), with a graded
relay (one more step, floor to 1/2) on S2S projection outputs and V2V projection inputs, and a
readout that resets/saturates where Lava's does (backends/relay.py, docs/lava.md "Readout
range").
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from snnc.backends.pytorch import ops
from snnc.backends.pytorch.layers import channels_last
from snnc.backends.pytorch.neuron import LIFConfig, delay, lif_scan
from snnc.backends.relay import (
    READOUT_CEILING, READOUT_FLOOR, RELAY_STEP, exact_loihi2, folded_bn, is_relay_edge,
    readout_scale,
)
from snnc.backends.pytorch.surrogate import get_surrogate
from snnc.compiler.core.errors import SnncError, UnsupportedOp
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.payload import edge_payload, infer_payloads

# Ops the module runs itself (the others: an nn.Module from ops.EMITTERS each).
RUN_BY_MODULE = frozenset({"input", "encoder", "readout", "lif"})


# A node that may write its output over its first input, and the producers whose outputs no
# autograd node saves (so overwriting them changes no gradient): SNNModule._donors_of.
_TAKERS = {"bntt": ("conv2d", "linear"), "batchnorm": ("conv2d", "linear"),
           "lif": ("conv2d", "linear", "bntt", "batchnorm", "add")}


def _aliases_input(g: Graph, name: str, layers: nn.ModuleDict) -> bool:
    """Whether node `name`'s output can be its input tensor itself (then that input's other
    readers would see a write over it): a one-input add, a batch norm trained folded into its
    conv (it passes the conv's output through)."""
    op = g.node(name).op
    return ((op == "add" and len(g.inputs_of(name)) < 2)
            or (op == "batchnorm" and getattr(layers[name], "folded", False)))


def _hooked(*mods: nn.Module) -> bool:
    """Whether a forward hook (the modules' own or global ones) could see these layers'
    tensors: then no input is overwritten in place."""
    from torch.nn.modules import module as tm
    return bool(tm._global_forward_hooks or tm._global_forward_pre_hooks or any(
        m._forward_hooks or m._forward_pre_hooks for m in mods))


class ReadoutSaturation(UserWarning):
    """A target-exact loihi2 readout left Lava's range on some samples (the model follows
    Lava's reset/saturation there)."""


def fixed_point(g: Graph) -> bool:
    """True when `g` runs Lava's bit-accurate arithmetic: graph attr arithmetic = lava-fixed,
    which the pipeline records from the target file (docs/targets.md), never a target name."""
    return g.attrs.get("arithmetic") == "lava-fixed"


class LIF(nn.Module):
    """A lif node: sums its ports (I, S2M scale*s, V2V r) and scans over time."""

    def __init__(self, node: Node, g: Graph, compact: bool):
        super().__init__()
        a = node.attrs
        fixed = fixed_point(g)
        get_surrogate(a.get("surrogate", "triangle"), node.name)
        self.cfg = LIFConfig(
            leak=float(a.get("leak", 1.0)), vth=float(a.get("vth", 1.0)),
            reset=a.get("reset", "subtract"), fire=a.get("fire", "ge"),
            surrogate=a.get("surrogate", "triangle"), alpha=float(a.get("alpha", 0.3)),
            width=float(a.get("width", 1.0)), detach_reset=bool(a.get("detach_reset", False)),
            fixed=fixed, save_dtype=torch.float16 if compact else torch.float32,
            surrogate_u8=compact,
            decay_k=a.get("decay_k"), vth_mantissa=a.get("vth_mant"),
            v_init=float(a.get("v_init", 0.0)))
        if fixed and (self.cfg.reset, self.cfg.fire) != ("zero", "gt"):
            raise SnncError(
                f"graph '{g.name}', lif node '{node.name}': lava-fixed arithmetic (target "
                f"'{g.attrs.get('target')}') needs reset=zero and fire=gt (Lava's neuron), "
                f"found reset={self.cfg.reset} "
                f"fire={self.cfg.fire}. Recompile with --semantics target, or use --semantics "
                f"paper to train the paper's neuron.")
        ins = g.inputs_of(node.name)
        self.name = node.name
        self.ports = [(e.kind.value, float(e.attrs.get("scale", 1.0))) for e in ins]
        self.delay = int(g.attrs.get("synaptic_delay", 0) or 0)

    def current(self, ins: list[torch.Tensor]) -> torch.Tensor:
        """I_t + sum of V2V inputs: what a V2V edge out of this lif carries (eq. 15)."""
        cur = ins[0]
        for (kind, _), x in zip(self.ports[1:], ins[1:]):
            if kind == "V2V":
                cur = cur + x
        return cur

    def forward(self, ins: list[torch.Tensor], steps: int, donate: bool = False):
        """`donate`: the module's plan says nothing reads ins[0] after this node; a sum of
        several ports is this layer's own tensor either way."""
        x = ins[0]
        for (kind, scale), r in zip(self.ports[1:], ins[1:]):
            x = x + (scale * r if kind == "S2M" else r)
            donate = True
        if x.shape[0] not in (1, steps):
            raise SnncError(f"lif node '{self.name}': its input has {x.shape[0]} time steps but "
                            f"the module runs {steps}; give event input with T = {steps}.")
        return delay(lif_scan(x, self.cfg, steps, donate=donate), self.delay)


class SNNModule(nn.Module):
    """The SNN graph as a module: forward(x) -> logits [B, classes] (after the readout).

    `x` is [B, C, H, W] (or [B, F]) for direct and Poisson encoders, [T, B, C, H, W] for event
    frames. Set `record_rates = True` to accumulate per-layer, per-step firing rates, read with
    :meth:`rates` and cleared with :meth:`reset_rates`. An `observer(node, inputs, output)`
    callable, when set, sees every node's time-major inputs and output (`activity.py`).
    """

    def __init__(self, g: Graph, *, compact: bool = True, timesteps: int | None = None):
        super().__init__()
        if g.form is not Form.SNN:
            raise SnncError(f"graph '{g.name}' is in ANN form; the PyTorch backend needs SNN "
                            f"form. Compile it first: snnc compile MODEL --residual s2s")
        ins = g.input_nodes()
        if len(ins) != 1:
            raise UnsupportedOp(f"graph '{g.name}' has {len(ins)} inputs; the PyTorch backend "
                                f"supports exactly one")
        self.graph = g
        self.compact = compact
        self.timesteps = int(timesteps or g.attrs.get("timesteps", 1))
        self.record_rates = False
        self.per_step_readout = False  # True: the readout returns u_t / t for every t [T, B, C]
        self.observer = None  # called as observer(node, inputs, output) after each node
        self._rate_sum: dict[str, torch.Tensor] = {}
        self._rate_n: dict[str, int] = {}
        payloads = infer_payloads(g)
        quant = fixed_point(g) and g.attrs.get("weight_bits") == 8
        self.layers = nn.ModuleDict()
        self._plan = []
        self._relay: list[tuple[bool, ...]] = []  # per node: which inputs cross a relay
        for n in g.nodes:
            edges = g.inputs_of(n.name)
            if n.op == "lif":
                self.layers[n.name] = LIF(n, g, compact)
            elif n.op not in RUN_BY_MODULE:
                pl = tuple(edge_payload(g, e, payloads) for e in edges)
                self.layers[n.name] = ops.emit(n, ops.EmitContext(g, pl, self.timesteps, quant,
                                                                  compact))
            self._plan.append((n, [(e.src, e.value_src, _reads_current(g, e),
                                    e.attrs.get("fraction") if e.kind is EdgeKind.DSC else None)
                                   for e in edges]))
            self._relay.append(tuple(is_relay_edge(g, e) for e in edges))
        for n in g.by_op("batchnorm"):  # target-exact loihi2: BN trained folded (QAT)
            src = folded_bn(g, n.name)
            if src is not None:
                self.layers[src.name].fold_bn(self.layers[n.name])
        last = {}
        for i, (n, srcs) in enumerate(self._plan):
            for _, vs, _, _ in srcs:
                last[vs] = i
        self._last = last
        self._current_users = {src for _, srcs in self._plan for src, _, cur, _ in srcs if cur}
        self._donors = self._donors_of(g)
        self._has_encoder = any(n.op == "encoder" for n in g.nodes)
        from snnc.compiler.core.limits import forward_estimate

        self._fixed = forward_estimate(g, self.timesteps, 0)[0]  # parameters
        self._per_sample = forward_estimate(g, self.timesteps, 1)  # docs/frontends.md
        # target-exact loihi2: the readout's range is Lava's (docs/lava.md "Readout range")
        self._readout_scale = ({n.name: readout_scale(g, n.name) for n in g.by_op("readout")}
                               if exact_loihi2(g) else {})
        self.saturated = 0  # samples whose readout left Lava's range (counted, warned once)

    def _lava_readout(self, name: str, x: torch.Tensor, steps: int) -> torch.Tensor:
        """u_T / T of Lava's readout neuron: the membrane (times the readout's scale) fires and
        resets to 0 above READOUT_CEILING and saturates at READOUT_FLOOR. The gradient is the
        plain sum's (straight-through)."""
        if x.shape[0] != steps:
            x = x.expand(steps, *x.shape[1:])
        k = self._readout_scale[name]
        with torch.no_grad():
            u = torch.zeros_like(x[0])
            hit = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
            for t in range(steps):
                u = u + k * x[t]
                low, high = u < READOUT_FLOOR, u > READOUT_CEILING
                u = torch.where(low, torch.full_like(u, READOUT_FLOOR), u)
                u = torch.where(high, torch.zeros_like(u), u)
                hit |= (low | high).flatten(1).any(1)
        plain = x.sum(0, keepdim=True)
        n_hit = int(hit.sum())
        if n_hit:
            if not self.saturated:
                warnings.warn(ReadoutSaturation(
                    f"graph '{self.graph.name}': the readout '{name}' left Loihi 2's range "
                    f"(membrane in ({READOUT_FLOOR:g}, {READOUT_CEILING:g}] x {k}) on {n_hit} "
                    f"of {x.shape[1]} samples at T = {steps}: Lava's readout resets or "
                    f"saturates there, and this model follows it. Lower T or the last "
                    f"layer's weights (docs/lava.md \"Readout range\")."), stacklevel=3)
            self.saturated += n_hit
        return (plain + (u[None] / k - plain).detach()) / steps

    # -- running ------------------------------------------------------------------------------
    def _check_memory(self, x: torch.Tensor) -> None:
        """Refuse (ResourceLimit) a batch whose forward would exceed the memory limit."""
        from snnc.compiler.core.limits import require

        batch = int(x.shape[1] if self._has_encoder and x.dim() == 5 else x.shape[0]) \
            if x.dim() else 1
        need, node = self._per_sample
        need = self._fixed + (need - self._fixed) * max(1, batch)
        require(need, f"a forward pass (batch {batch}, T={self.timesteps})",
                f"graph '{self.graph.name}'", node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.timesteps
        self._check_memory(x)
        vals: dict[str, torch.Tensor] = {}
        currents: dict[str, torch.Tensor] = {}
        for i, (n, srcs) in enumerate(self._plan):
            ins = []
            for (src, vs, cur, frac), rel in zip(srcs, self._relay[i]):
                v = currents[src] if cur else vals[vs]
                if frac is not None and frac < 1.0:
                    v = v[:, :, :round(frac * v.shape[2])]
                ins.append(relay(v, steps) if rel else v)
            if n.op == "input":
                out = x
            elif n.op == "encoder":
                out = self._encode(n, ins[0], steps)
            elif n.op == "readout":
                if self.per_step_readout:  # the readout of every shorter run (it is causal)
                    v = ins[0].expand(steps, *ins[0].shape[1:])
                    t = torch.arange(1, steps + 1, dtype=v.dtype, device=v.device)
                    out = v.cumsum(0) / t.view(-1, *([1] * (v.dim() - 1)))
                elif n.name in self._readout_scale:
                    out = self._lava_readout(n.name, ins[0], steps)
                else:
                    out = ins[0].sum(0, keepdim=True) / steps if ins[0].shape[0] > 1 else ins[0]
            elif n.op == "lif":
                layer = self.layers[n.name]
                if n.name in self._current_users:
                    currents[n.name] = layer.current(ins)
                out = layer(ins, steps, donate=self._donating(i, n, srcs))
                if self.record_rates:
                    self._record(n.name, out)
            elif n.op == "bntt":
                out = self.layers[n.name](ins, steps, donate=self._donating(i, n, srcs))
            elif n.op == "batchnorm":
                out = self.layers[n.name](ins, donate=self._donating(i, n, srcs))
            else:
                out = self.layers[n.name](ins)
            if n.op == "input" and not self._has_encoder:
                out = self._encode(None, out, steps)
            if self.observer is not None:
                self.observer(n, ins, out)
            vals[n.name] = out
            for _, vs, _, _ in srcs:
                if self._last.get(vs) == i and vs not in self.graph.outputs:
                    vals.pop(vs, None)
        outs = [vals[o] for o in self.graph.outputs]
        if not self.per_step_readout:
            outs = [o[0] if o.shape[0] == 1 else o for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _donors_of(self, g: Graph) -> set[int]:
        """Plan positions of the nodes that may write their output over their first input (a
        bntt normalising in place, a lif writing its spikes): the input is a fresh output of a
        producer in `_TAKERS` (no autograd node saves it), read whole by this node only (its
        last reader; not a graph output, a current, a DSC fraction or a relay; not a lif whose
        input current a V2V edge reads).
        The memory: one activation fewer per layer in flight (docs/pytorch-backend.md
        "Memory"). At run time the module's observer or a forward hook on either layer (who
        would see the input after it was overwritten) turns it off."""
        donors = set()
        for i, (n, srcs) in enumerate(self._plan):
            if n.op not in _TAKERS or not srcs or self._relay[i][0]:
                continue
            src, vs, cur, frac = srcs[0]
            if (not cur and (frac is None or frac >= 1.0) and self._last.get(vs) == i
                    and vs not in g.outputs and g.node(vs).op in _TAKERS[n.op]
                    and n.name not in self._current_users  # a V2V edge reads a lif's input
                    and not _aliases_input(g, vs, self.layers)):
                donors.add(i)
        return donors

    def _donating(self, i: int, n: Node, srcs) -> bool:
        """Whether plan position `i` writes over its input in this call: a donor (above) with
        no observer and no forward hook on it or its input's producer to see the write."""
        return (i in self._donors and self.observer is None
                and not _hooked(self.layers[n.name], self.layers[srcs[0][1]]))

    def _encode(self, n: Node | None, x: torch.Tensor, steps: int) -> torch.Tensor:
        kind = "direct" if n is None else n.attrs.get("kind", "direct")
        want = len(self.graph.input_nodes()[0].shape)
        if kind == "events" or (n is None and x.dim() == want + 1):
            if x.dim() != want + 1 or x.shape[0] != steps:
                raise SnncError(f"graph '{self.graph.name}': event input must be [T={steps}, B, "
                                f"...] with {want + 1} dims; got {list(x.shape)}")
            return channels_last(x)
        if x.dim() != want:
            raise SnncError(f"graph '{self.graph.name}': input must have {want} dims "
                            f"{list(self.graph.input_nodes()[0].shape)} (batch first); got "
                            f"{list(x.shape)}")
        if kind == "poisson":
            p = x.clamp(0, 1).unsqueeze(0)
            gen = torch.Generator(x.device).manual_seed(n.attrs["seed"]) if "seed" in n.attrs \
                else None
            r = torch.rand((steps, *x.shape), generator=gen, device=x.device)
            return channels_last((r < p).to(x.dtype))
        # direct: the same graded input at every step (computed once)
        return channels_last(x.unsqueeze(0))

    # -- firing rates --------------------------------------------------------------------------
    def _record(self, name: str, spikes: torch.Tensor) -> None:
        with torch.no_grad():
            r = spikes.detach().float().flatten(2).mean(2).sum(1)  # [T]: summed over the batch
        self._rate_sum[name] = self._rate_sum.get(name, 0) + r
        self._rate_n[name] = self._rate_n.get(name, 0) + spikes.shape[1]

    def rates(self) -> dict[str, torch.Tensor]:
        """Mean firing rate per lif node and time step ([T] tensors) over recorded samples."""
        return {k: (v / self._rate_n[k]).cpu() for k, v in self._rate_sum.items()}

    def reset_rates(self) -> None:
        """Forget the firing rates recorded so far."""
        self._rate_sum.clear()
        self._rate_n.clear()

    # -- parameters back into the graph --------------------------------------------------------
    def graph_params(self) -> dict[str, torch.Tensor]:
        """The module's parameters and buffers under the graph's keys (`conv1.weight`, ...),
        copied to the CPU whatever the module's device (the graph is host data)."""
        out = {}
        for key, t in self.layers.state_dict().items():
            out[key] = t.detach().to("cpu", copy=True)
        return out

    def to_graph(self) -> Graph:
        """The graph with the module's current (trained) parameters."""
        params = dict(self.graph.params or {})
        params.update(self.graph_params())
        return self.graph.with_params(params)


class _Floor(torch.autograd.Function):
    """floor(v / step) * step forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, v, step):
        return torch.floor(v / step) * step

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def relay(v: torch.Tensor, steps: int) -> torch.Tensor:
    """A graded relay on loihi2 (backends/relay.py): one step of delay and a floor to
    RELAY_STEP; `v` is time-major [T' in (1, T), B, ...]."""
    if v.shape[0] != steps:
        v = v.expand(steps, *v.shape[1:])
    return delay(_Floor.apply(v, RELAY_STEP), 1)


def _reads_current(g: Graph, e) -> bool:
    """Whether edge `e` delivers the input current of a lif (V2V without projection, or tap)."""
    src = g.node(e.src)
    if src.op != "lif":
        return False
    if e.attrs.get("tap") == "current":
        return True
    return e.kind is EdgeKind.V2V and e.projection is None


def build_module(g: Graph, *, compact: bool = True, timesteps: int | None = None) -> SNNModule:
    """Build the trainable module for SNN-form graph `g` (params from `g.params`, or fresh
    initialisation for a structure-only graph). `compact` saves membranes as float16 and input
    spikes as uint8 for backward (set False for float32-exact gradients)."""
    return SNNModule(g, compact=compact, timesteps=timesteps)
