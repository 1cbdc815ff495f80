"""Channel surgery for block writes: zero projections, channel remaps, shape refresh.

`projection` builds a zero-weight 1x1 conv + batchnorm (or a zero linear) on a skip; `remap`
carries a change of a value's channels to the next layers' input weights (zeros for new
channels, docs/design.md "Blocks"); `finish` re-infers shapes and SNN payloads after a step.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import EMPTY, Attrs, Edge, Form, Graph, GraphBuilder, Node
from snnc.compiler.core.payload import edge_payload, node_payload
from snnc.compiler.core.shapes import edge_shape, infer_shape


# -- projections and channel surgery -----------------------------------------------------------
def projection(b: GraphBuilder, src: str, sshape, tshape, dst: str, where: str,
                tap: str | None = None) -> str | None:
    """A zero-weight projection from `src` (shape sshape) to tshape, or None if they agree:
    1x1 conv (stride to match) + batchnorm for [N,C,H,W], a linear for [N,F]."""
    sshape, tshape = tuple(sshape), tuple(tshape)
    if sshape == tshape:
        return None
    name = b.fresh(f"{dst}_proj_{src}")
    data = Edge(src, name, 0, attrs=Attrs({"tap": tap}) if tap else EMPTY)
    if len(sshape) == 2 and len(tshape) == 2:
        attrs = {"in": sshape[1], "out": tshape[1], "bias": False}
        b.add(Node(name, "linear", Attrs(attrs), tshape, (f"{name}.weight",)), [data])
        b.set_param(f"{name}.weight", torch.zeros(tshape[1], sshape[1]))
        return name
    if len(sshape) != 4 or len(tshape) != 4:
        raise SnncError(f"{where}: cannot project {list(sshape)} to {list(tshape)}.")
    stride = []
    for h, h2 in zip(sshape[2:], tshape[2:]):
        s = next((s for s in range(1, h + 1) if (h - 1) // s + 1 == h2), None)
        if s is None:
            raise SnncError(f"{where}: no 1x1 strided projection maps {list(sshape)} from "
                            f"'{src}' to {list(tshape)} (the skip would upsample). Pick another "
                            f"source vertex.")
        stride.append(s)
    attrs = Attrs({"in": sshape[1], "out": tshape[1], "k": (1, 1), "stride": tuple(stride),
                   "pad": (0, 0, 0, 0), "dilation": (1, 1), "groups": 1, "bias": False})
    conv = Node(name, "conv2d", attrs, shape=(), params=(f"{name}.weight",))
    b.add_inferred(conv, [data], [sshape])
    b.set_param(f"{name}.weight", torch.zeros(tshape[1], sshape[1], 1, 1))
    bn = b.fresh(f"{name}_bn")
    keys = tuple(f"{bn}.{r}" for r in ("weight", "bias", "running_mean", "running_var"))
    b.add(Node(bn, "batchnorm", Attrs({"eps": 1e-5}), tshape, keys), [name])
    c = tshape[1]
    for key, value in zip(keys, (torch.ones(c), torch.zeros(c), torch.zeros(c), torch.ones(c))):
        b.set_param(key, value)
    return bn


_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
_PASS = frozenset({"relu", "clip", "dropout", "identity", "maxpool", "avgpool",
                   "adaptive_avgpool", "lif"})


def _take(t: torch.Tensor, mapping: list[int], dim: int, fill: float) -> torch.Tensor:
    idx = torch.tensor([max(m, 0) for m in mapping], dtype=torch.long)
    out = t.index_select(dim, idx).clone()
    missing = torch.tensor([m < 0 for m in mapping])
    if missing.any():
        view = [1] * out.dim()
        view[dim] = len(mapping)
        out = torch.where(missing.view(view), torch.full_like(out, fill), out)
    return out


def remap(g: Graph, b: GraphBuilder, start: str, mapping: list[int], n_old: int,
           where: str) -> None:
    """`start`'s channels changed: new channel k holds old channel mapping[k] (-1 = new).
    Carry the change through per-channel nodes to the next layers' input weights (zeros for new
    channels); refuse where shapes must stay equal (an add, a membrane port, a graph output)."""
    if mapping == list(range(n_old)):
        return
    if start in b.outputs:
        raise SnncError(f"{where}: it changes the channels of graph output '{start}'. Leave "
                        f"this entry 0 or add a layer after the block.")
    for e in list(b.users(start)):
        if e.value_src != start:
            continue
        c = b.nodes[e.dst]
        if c.op in ("add",) or (c.op == "lif" and e.port > 0) or c.op not in (
                _PASS | {"conv2d", "linear", "batchnorm", "bntt", "flatten", "concat"}):
            raise SnncError(f"{where}: it changes the channels of '{start}' ({n_old} -> "
                            f"{len(mapping)}), but '{c.name}' (op {c.op}) reads it and needs "
                            f"them unchanged. Write an ASC (2) here, or leave the entry 0.")
        if c.op == "conv2d" or c.op == "linear":
            if c.attrs.get("groups", 1) != 1:
                raise SnncError(f"{where}: '{c.name}' is a grouped conv (groups="
                                f"{c.attrs['groups']}) and cannot take new input channels. "
                                f"Leave this entry 0.")
            b.replace_node(replace(c, attrs=c.attrs.set(**{"in": len(mapping)})))
            key = c.param("weight")
            if key and b.params is not None:
                b.set_param(key, _take(b.params[key], mapping, 1, 0.0))
            continue
        if c.op in ("batchnorm", "bntt") and b.params is not None:
            for key in c.params:
                role = key.rsplit(".", 1)[-1]
                dim = 1 if c.op == "bntt" else 0
                b.set_param(key, _take(b.params[key], mapping, dim, _FILL.get(role, 0.0)))
        if c.op == "flatten":
            hw = g.node(c.name).shape[1] // n_old
            sub = [m * hw + s if m >= 0 else -1 for m in mapping for s in range(hw)]
            remap(g, b, c.name, sub, n_old * hw, where)
        elif c.op == "concat":
            sub, k = [], 0
            for p in sorted(b.inputs_of(c.name), key=lambda x: x.port):
                w = n_old if p.value_src == start else edge_shape(
                    g.node(p.value_src).shape, p)[1]
                sub += ([k + m if m >= 0 else -1 for m in mapping] if p.value_src == start
                        else list(range(k, k + w)))
                k += w
            remap(g, b, c.name, sub, k, where)
        else:
            remap(g, b, c.name, mapping, n_old, where)


# -- finishing a step --------------------------------------------------------------------------
def finish(b: GraphBuilder) -> Graph:
    """Build without checks, re-infer every shape, refresh SNN payloads."""
    g = b.build(check=False)
    shapes: dict[str, tuple[int, ...]] = {}
    b = g.edit()
    for n in g.nodes:
        if n.op == "input":
            shapes[n.name] = n.shape
            continue
        main = [e for e in g.inputs_of(n.name) if not (n.op == "lif" and e.port > 0)]
        s = infer_shape(n, [edge_shape(shapes[e.value_src], e) for e in main])
        shapes[n.name] = s
        if s != n.shape:
            b.replace_node(replace(n, shape=s))
    if g.form is Form.SNN and any(e.payload is not None for e in g.edges):
        g2 = b.build(check=False)
        out: dict = {}
        for n in g2.nodes:
            pl = []
            for e in g2.inputs_of(n.name):
                p = edge_payload(g2, e, out)
                if e.payload is not p:
                    b.replace_edge(e, replace(e, payload=p))
                if not (n.op == "lif" and e.port > 0):
                    pl.append(p)
            out[n.name] = node_payload(n, pl)
    return b.build(check=False)
