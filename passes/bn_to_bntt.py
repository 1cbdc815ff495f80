"""bn-to-bntt: batch norm becomes batch norm through time (BNTT, per-step statistics).

With mode=shared the batch norms stay one per layer, shared by all time steps (paper 2 Table 5's
"time-averaged" BN: statistics over all T * B samples in training, docs/pytorch-backend.md), and
only the layers whose BN the exporter folded away get an identity one.
"""

from __future__ import annotations

from snnc.compiler.core.conditions import form_is, lacks_ops, when
from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Attrs, Form, Graph, GraphBuilder, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import (
    check_choice, classifier_of, data_users, require_snn, rewire_all,
)

ROLES = ("weight", "bias", "running_mean", "running_var")
MISSING = ("skip", "identity")
MODES = ("bntt", "shared")


def _timesteps(g: Graph, timesteps: int | None) -> int:
    t = timesteps if timesteps is not None else g.attrs.get("timesteps")
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise SnncError(f"graph '{g.name}': bn-to-bntt needs the number of time steps: pass "
                        f"timesteps=T (an integer >= 1) or set the graph attribute 'timesteps' "
                        f"(conversion_pipeline does); got {t!r}.")
    return t


def _repeat(fills: list, g: Graph, n: Node, t: int) -> None:
    """Params of bntt `n.name` = the BN's [C] tensors repeated to [T, C] (missing affine: 1, 0),
    appended to `fills` for `_make` as (key, shape, value)."""
    if g.params is None:
        return  # structure only: no tensors to make
    c = n.shape[1]
    for role in ROLES:
        key = f"{n.name}.{role}"
        src = g.params.get(key)
        if src is None:
            fills.append((key, (t, c), 1.0 if role in ("weight", "running_var") else 0.0))
        else:  # a new [T, C] tensor from this [C] one (torch's own error when not [C]);
            row = src.detach()  # a [C] tensor is taken as it is: no reshape per tensor
            fills.append((key, (t, c), row if row.shape == (c,) else row.reshape(c)))


def _identity(fills: list, name: str, shape: tuple[int, ...], eps: float) -> None:
    """Identity BN(TT) params of `shape` ([T, C] or [C]): mean 0, var 1 - eps (so sqrt(var +
    eps) = 1 exactly), weight 1, bias 0; appended to `fills` for `_make`."""
    fills += [(f"{name}.weight", shape, 1.0), (f"{name}.bias", shape, 0.0),
              (f"{name}.running_mean", shape, 0.0), (f"{name}.running_var", shape, 1.0 - eps)]


def _make(b: GraphBuilder, fills: list) -> None:
    """Set each (key, shape, value) of `fills` as a new tensor of `shape`: every entry the
    float `value`, or every row the [C] tensor `value` (`value.repeat(T, 1)`).

    The float32 ones (torch's default dtype, and rows of float32 CPU tensors) are carved from
    one numpy buffer: one allocation instead of a torch allocation each (bn-to-bntt makes four
    per layer: 728 tensors on densenet121). The buffer holds the tensors of one shape side by
    side as the rows of one block: each block's tensor rows are copied in with one assignment
    and its fill values with another (every entry written once), and `list(block)` cuts it,
    so what is left per tensor is `torch.from_numpy` of its own slice: its storage is that
    slice alone (torch.save and safetensors see separate tensors), as the ONNX front end's
    weights (onnx_wire.py). The keys are set in the order of `fills`."""
    import math

    import numpy as np
    import torch

    if b.params is None:
        return
    floats = torch.get_default_dtype() is torch.float32
    made: list = [None] * len(fills)
    # shape -> (indices into `fills` of its row tensors, of its filled ones): the fast ones
    blocks: dict[tuple, tuple[list[int], list[int]]] = {}
    for i, (_, shape, v) in enumerate(fills):
        if isinstance(v, float):
            if floats:
                blocks.setdefault(shape, ([], []))[1].append(i)
                continue
            made[i] = torch.full(shape, v)
        elif v.dtype is torch.float32 and v.is_cpu:
            blocks.setdefault(shape, ([], []))[0].append(i)
        else:
            made[i] = v.repeat(shape[0], 1)
    # Each block holds its row tensors first, then the filled ones: the rows are one slice
    # (a strided copy, not a fancy-indexed assignment) and the fills another, each written once.
    size = sum(len(rows + filled) * math.prod(shape) for shape, (rows, filled) in blocks.items())
    buf = np.empty(size, np.float32)
    at = 0
    for shape, (rows, filled) in blocks.items():
        idx = rows + filled
        size = len(idx) * math.prod(shape)
        block = buf[at:at + size].reshape(len(idx), *shape)
        at += size
        if rows:  # shape (T, C): every row of tensor k < len(rows) is the [C] tensor fills[rows[k]]
            block[:len(rows)] = np.concatenate([fills[i][2].numpy() for i in rows]).reshape(
                len(rows), 1, -1)  # (np.stack: a Python call per tensor)
        if filled:  # every entry of tensor len(rows) + k is the float fills[filled[k]]
            values = np.array([fills[i][2] for i in filled], np.float32)
            block[len(rows):] = values.reshape(-1, *(1,) * len(shape))
        for i, view in zip(idx, list(block)):
            made[i] = torch.from_numpy(view)
    b.params.update(zip([key for key, _, _ in fills], made))  # `set_param` of each, in order


def _folded_layers(g: Graph, b: GraphBuilder) -> list[Node]:
    """Weighted layers with no norm after them: the exporter folded their BN away.

    The classifiers (the last weighted layer before each output) are excluded; a projection
    conv counts like any other layer. Readers and nodes are looked up in `b`, the builder
    fresh from `g.edit()` (the same graph, already indexed).
    """
    heads = set()
    for out in g.outputs:
        try:
            heads.add(classifier_of(b, out)[0].name)
        except SnncError:
            pass
    found = []
    for n in g.by_op("conv2d", "linear"):
        if n.name in heads:
            continue
        readers = data_users(b, n.name)
        if readers and all(b.node(e.dst).op not in ("batchnorm", "bntt") for e in readers):
            found.append(n)
    return found


@register_pass("bn-to-bntt", requires=[form_is(Form.SNN)],
               ensures=[when("mode", ["bntt"], lacks_ops("batchnorm"))])
def bn_to_bntt(g: Graph, *, timesteps: int | None = None, missing: str = "skip",
               eps: float = 1e-5, mode: str = "bntt") -> Graph:
    """Replace every batchnorm by a bntt of the same name with per-step statistics.

    Requires: SNN form (bntt is a spiking op); T from `timesteps` or the graph attr.
    Guarantees: no batchnorm remains; each bntt has attrs eps (the BN's) and timesteps = T and
    params weight, bias, running_mean, running_var of shape [T, C], each row equal to the ANN
    BN's tensor (BNTT starts as the BN it replaces; missing affine = weight 1, bias 0).
    missing=identity also inserts `<layer>_bntt` after every conv2d/linear that has no norm
    after it (the exporter folded the BN into the conv: eval-mode ONNX), except the
    classifier, initialised to the identity: mean 0, var 1 - eps, weight 1, bias 0 (so
    y = x exactly at initialisation). missing=skip (default) leaves such layers alone.
    mode=shared (`--bn shared`) keeps every batchnorm as it is (one BN shared over time steps)
    and inserts, under missing=identity, an identity `batchnorm` named `<layer>_bn` (params
    [C]) instead of a bntt.
    Implements: BNTT (Kim & Panda, paper 2 sec. 3.2.2): y_t = w_t (x_t - m_t)/sqrt(v_t + eps)
    + b_t. Idempotent (a graph without batchnorm and, under missing=identity, without
    un-normalised layers is unchanged).
    """
    require_snn(g, "bn-to-bntt")
    check_choice("bn-to-bntt", "missing", missing, MISSING)
    check_choice("bn-to-bntt", "mode", mode, MODES)
    bns = g.by_op("batchnorm") if mode == "bntt" else []
    if not bns and missing != "identity":
        return g
    b = g.edit()
    folded = _folded_layers(g, b) if missing == "identity" else []
    if not bns and not folded:
        return g
    t = _timesteps(g, timesteps) if mode == "bntt" else None
    fills: list = []
    by_eps: dict[float, Attrs] = {}  # one (immutable) Attrs per distinct eps of this graph
    for n in bns:
        params = tuple(f"{n.name}.{r}" for r in ROLES)
        e = float(n.attrs.get("eps", 1e-5))
        attrs = by_eps.get(e)
        if attrs is None:
            attrs = by_eps[e] = Attrs({"eps": e, "timesteps": t})
        _repeat(fills, g, n, t)
        b.replace_node(Node(n.name, "bntt", attrs, n.shape, params))
    # every inserted norm has the same attrs; its readers move to it in one rewiring below
    # (`rewire_all`: as `rewire_readers` before each insertion, whose edge it skips)
    if folded and mode == "bntt":
        op, suffix = "bntt", "_bntt"
        attrs = Attrs({"eps": float(eps), "timesteps": t, "init": "identity"})
    elif folded:
        op, suffix = "batchnorm", "_bn"
        attrs = Attrs({"eps": float(eps), "init": "identity"})
    renames: dict[str, str] = {}
    for n in folded:
        name = renames[n.name] = b.fresh(n.name + suffix)
        b.add(Node(name, op, attrs, n.shape, tuple(f"{name}.{r}" for r in ROLES)), [n.name])
        c = n.shape[1]
        _identity(fills, name, (t, c) if mode == "bntt" else (c,), eps)
    rewire_all(b, renames, skip=set(renames.values()))
    _make(b, fills)
    return b.build()
