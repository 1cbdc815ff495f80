"""encode: an encoder after every graph input (paper 2 sec. 3.4)."""

from __future__ import annotations

from snnc.compiler.core.conditions import form_is, has_attrs, inputs_encoded
from snnc.compiler.core.ir import Attrs, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, data_users, require_snn, rewire_readers

KINDS = ("direct", "poisson", "events")


@register_pass("encode", requires=[form_is(Form.SNN)],
               ensures=[inputs_encoded(), has_attrs("encoder")])
def encode(g: Graph, *, kind: str = "direct", seed: int = 0) -> Graph:
    """Insert `%<input>_enc = encoder(%<input>) {kind}` after every input; readers move to it.

    Requires: SNN form.
    Guarantees: every input's readers read its encoder (the input itself feeds only the
    encoder); graph attr encoder = kind; a poisson encoder records its `seed`. The shape stays
    per step: for kind=events the input holds one event frame per step (o_t = x[t]).
    Implements: paper 2 sec. 3.4: direct = the frame as a constant input current at every step
    (graded); poisson = o_t = 1[r_t < clip(x, 0, 1)], r_t ~ U[0, 1) (binary); events = frames
    accumulated from a DVS stream (binary or counts).
    Idempotent: an input already read only by an encoder is left alone.
    """
    require_snn(g, "encode")
    check_choice("encode", "kind", kind, KINDS)
    b = g.edit()
    changed = False
    for n in g.input_nodes():
        # asked of the builder (already indexed; its other inputs' readers are as in `g`)
        readers = data_users(b, n.name)
        if readers and all(b.node(e.dst).op == "encoder" for e in readers):
            continue
        name = b.fresh(f"{n.name}_enc")
        attrs = {"kind": kind, **({"seed": int(seed)} if kind == "poisson" else {})}
        rewire_readers(b, n.name, name, skip=set())
        b.add(Node(name, "encoder", Attrs(attrs), n.shape), [n.name])
        changed = True
    if not changed:
        return g
    b.attrs = b.attrs.set(encoder=kind)
    return b.build()
