"""relu-to-lif: every ReLU becomes a leaky integrate-and-fire neuron (paper 2 eq. 3-6)."""

from __future__ import annotations

import math

from snnc.compiler.core.conditions import either, form_is, lacks_ops
from snnc.compiler.core.errors import SnncError, UnsupportedOp
from snnc.compiler.core.ir import Attrs, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, lif_attrs, rewire_all

CLIP_POLICIES = ("threshold", "relu", "error")
ADD_POLICIES = ("graded", "lif")


def _clip_lif(n: Node, attrs: dict, policy: str, gname: str) -> dict:
    """The lif attributes for a clip node under `policy` (see docs/passes.md "ReLU6")."""
    lo, hi = n.attrs.get("min"), n.attrs.get("max")
    if lo is None or float(lo) != 0.0:
        raise UnsupportedOp(
            f"graph '{gname}': node '{n.name}' (op clip, min={lo}, max={hi}) has no spiking twin: "
            f"a spike count cannot be negative, so only clips with min=0 (ReLU, ReLU6) become "
            f"neurons. Replace it with ReLU/ReLU6 in the model and re-export.")
    if hi is None:
        return attrs  # clip{min=0} is a ReLU
    if policy == "error":
        raise UnsupportedOp(
            f"graph '{gname}': node '{n.name}' (op clip, min=0, max={hi}) is a ReLU6-like clip "
            f"and "
            f"relu-to-lif runs with clip=error. Use clip=threshold (vth = max) or clip=relu.")
    if policy == "relu":
        return dict(attrs, clip_max=float(hi))
    if not math.isfinite(float(hi)) or float(hi) <= 0.0:
        raise UnsupportedOp(f"graph '{gname}': node '{n.name}' (op clip) has max={hi}; the "
                            f"threshold policy needs a finite max > 0.")
    return dict(attrs, vth=float(hi), clip_max=float(hi))


@register_pass("relu-to-lif", requires=[either(form_is(Form.ANN), lacks_ops("relu"))],
               ensures=[form_is(Form.SNN), lacks_ops("relu")])
def relu_to_lif(g: Graph, *, leak: float = 0.874, vth: float = 1.0, reset: str = "subtract",
                fire: str = "ge", surrogate: str = "triangle", alpha: float = 0.3,
                width: float = 1.0, clip: str = "threshold",
                unactivated_add: str = "graded") -> Graph:
    """Turn every relu (and ReLU-like clip) into a lif with the same name; set SNN form.

    Requires: ANN form, at least one relu or clip{min=0} (a model without any activation has no
    neuron to convert: error, there is no silent insertion policy).
    Guarantees: no relu remains; each lif has attributes leak, vth, reset, fire, surrogate,
    alpha, width; every other node and edge is unchanged; form = snn. Policies
    (docs/passes.md): clip{min=0,max=M} becomes a lif with vth = M under clip=threshold (one
    spike per step is the ceiling, so the spike rate saturates where ReLU6 does), a lif with the
    global vth and attr clip_max under clip=relu, an error under clip=error; clip with min != 0
    is refused. An add whose output feeds no activation (mobilenetv2's linear bottleneck, the
    block output of a pre-activation net) stays a graded sum of currents under
    unactivated_add=graded, or gets a new lif `<add>_lif` after it under unactivated_add=lif
    (the net then looks like a post-activation ResNet to lower-residual).
    Implements: paper 2 eq. 3-6 (u_t = I_t + lambda (u_{t-1} - theta o_{t-1}),
    o_t = 1[u_t >= theta]); surrogate eq. 24.
    Idempotent: an SNN-form graph without relu is returned unchanged.
    """
    check_choice("relu-to-lif", "clip", clip, CLIP_POLICIES)
    check_choice("relu-to-lif", "unactivated_add", unactivated_add, ADD_POLICIES)
    base = lif_attrs(leak=leak, vth=vth, reset=reset, fire=fire, surrogate=surrogate,
                     alpha=alpha, width=width)
    acts = g.by_op("relu", "clip")
    if not acts:
        if g.form is Form.SNN:
            return g
        raise UnsupportedOp(
            f"graph '{g.name}': relu-to-lif found no relu or clip node, so there is no activation "
            f"to turn into a spiking neuron. snnc converts ReLU networks (paper 2 eq. 3-6); "
            f"export the model with its ReLU activations, or add a lif by hand with a custom "
            f"pass (--pass module:function).")
    b = g.edit()
    shared = Attrs(base)  # immutable: one for every lif made from a plain relu
    for n in acts:
        attrs = base if n.op == "relu" else _clip_lif(n, base, clip, g.name)
        b.replace_node(Node(n.name, "lif", shared if attrs is base else Attrs(attrs), n.shape))
    if unactivated_add == "lif":
        inserted = Attrs(dict(base, inserted="unactivated_add"))
        renames: dict[str, str] = {}
        for n in g.by_op("add"):
            users = g.users(n.name)
            if any(g.node(u.dst).op in ("relu", "clip") and u.value_src == n.name
                   for u in users):
                continue
            if n.name in g.outputs and not users:
                continue
            lif = renames[n.name] = b.fresh(f"{n.name}_lif")
            b.add(Node(lif, "lif", inserted, n.shape), [n.name])
        # the adds' readers move to their lifs (as rewire_readers before each insertion)
        rewire_all(b, renames, skip=set(renames.values()))
    try:
        return b.build(form=Form.SNN)
    except SnncError as err:
        raise SnncError(f"relu-to-lif left an invalid graph: {err}") from None
