"""Which values of a target-exact Loihi 2 graph cross a graded relay, and which batch norms are
trained folded (docs/lava.md "Relays", "Deployable default"): one rule for the PyTorch backend,
the Lava lowering (backends/relay.py re-exports it), the quantize pass and the cost model."""

from __future__ import annotations

from snnc.compiler.core.ir import EdgeKind, Graph, Node, bn_fold_source


def exact_loihi2(g: Graph) -> bool:
    """Whether `g` runs Lava's fixed-point arithmetic with one step of synaptic delay (graph
    attrs `arithmetic` = lava-fixed and `synaptic_delay` = 1, recorded from the target file:
    docs/targets.md): the graphs that get graded relays and BNs trained folded
    (backends/relay.py, docs/lava.md)."""
    a = g.attrs
    return (a.get("arithmetic") == "lava-fixed"
            and int(a.get("synaptic_delay", 0) or 0) == 1)


def folded_bn(g: Graph, bn: str) -> Node | None:
    """The conv2d / linear that batchnorm `bn` is trained folded into, or None: on a
    target-exact loihi2 graph (`exact_loihi2`) a BN that folds exactly (`bn_fold_source`) is
    kept while training (`--bn shared`, the loihi2 default: one BN over all steps) and trained
    QAT-style as the folded, quantised weight and bias the chip runs (backends/pytorch/ops.py
    `Weighted.fold_bn`, docs/lava.md "Deployable default"); the Lava lowering folds it the
    same way, quantize leaves its layer's raw weights float and does not scale its neuron."""
    if not exact_loihi2(g) or g.node(bn).op != "batchnorm":
        return None
    return bn_fold_source(g, bn)


_PASS = ("identity", "dropout", "flatten", "reshape")


def carries_current(g, name: str) -> bool:
    """Whether value `name` is a graded current (a conv/linear/batchnorm output, or an add whose
    main input is one, or a concat with one), not spikes or a sum of spikes."""
    n = g.node(name)
    if n.op in ("conv2d", "linear", "batchnorm"):
        return True
    ins = g.inputs_of(name)
    if n.op in _PASS or n.op == "add":
        return bool(ins) and carries_current(g, ins[0].value_src)
    if n.op == "concat":
        return any(carries_current(g, e.value_src) for e in ins)
    return False


def is_relay_edge(g, e) -> bool:
    """Whether edge `e` of `g` reads its value through a relay (docs/lava.md "Relays"):

    * an S2S edge with a projection into an add of spikes (post-activation unit, eq. 13);
    * the current tap feeding a V2V projection (``tap=current``, eq. 15-16);
    * the input of a ``batchnorm`` that was not folded and cannot be (pre-activation nets: it
      normalises a sum or concatenation of currents before a neuron; `folded_bn` is None);
    * the input of an average pool of a current (DenseNet's transition)."""
    if not exact_loihi2(g):
        return False
    dst = g.node(e.dst)
    if e.kind is EdgeKind.S2S and e.projection is not None:
        return not carries_current(g, g.inputs_of(e.dst)[0].value_src)
    if e.attrs.get("tap") == "current":
        return True
    if dst.op == "batchnorm":
        return folded_bn(g, dst.name) is None
    return dst.op in ("avgpool", "adaptive_avgpool") and carries_current(g, e.value_src)


# -- Loihi 2's numbers (backends/relay.py, docs/lava.md "Relays", "Readout range") -----------
WEIGHT_GRID = (1 / 32, -256 / 64, 254 / 64)  # slayer quantize_8bit, w_scale 64
BIAS_GRID = (1 / 64, -(2 ** 12) / 64, (2 ** 12 - 1) / 64)  # 13-bit mantissa, exponent 6
RELAY_STEP = 0.5
RELAY_STATE_EXP = 5  # payload = a_in >> 5 = floor(2 v) for a_in = 64 v


# -- the readout's range (docs/lava.md "Readout range") -------------------------------------
# The readout is a CUBA neuron with vDecay 0 and vThMant 2**17 - 1: its 24-bit membrane (units
# of 1/4096) fires and resets to zero above (2**17 - 1) * 64 / 4096 and saturates at
# -(2**23 - 1) / 4096 (symmetric 24-bit clip), in the units of the Lava membrane (the PyTorch
# value times the readout's `scale`).
READOUT_CEILING = ((1 << 17) - 1) * 64 / 4096
READOUT_FLOOR = -((1 << 23) - 1) / 4096


def readout_scale(g, name: str) -> int:
    """How many times the Lava readout `name`'s membrane exceeds the PyTorch value: k·k when it
    reads linear(flatten(avgpool k×k)), summed on Loihi ("Pooled readout"), else 1."""
    def src(n):
        ins = g.inputs_of(n)
        return g.node(ins[0].value_src) if ins else None

    lin = src(name)
    flat = src(lin.name) if lin is not None and lin.op == "linear" else None
    pool = src(flat.name) if flat is not None and flat.op in ("flatten", "reshape") else None
    if pool is None or pool.op not in ("avgpool", "adaptive_avgpool"):
        return 1
    inner = src(pool.name)
    h, w = inner.shape[2:]
    oh, ow = pool.shape[2:]
    return (h // oh) * (w // ow)
