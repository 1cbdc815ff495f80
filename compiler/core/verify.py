"""The verifier: every invariant of the IR, checked after every pass.

`verify(g)` returns `g` unchanged or raises `VerifyError` naming the node, the op and the rule:

* names unique; every edge names existing nodes; ports of a node are 0..k-1; outputs exist;
* acyclic, and `g.nodes` is in topological order (projections count as predecessors);
* shapes agree with each op's shape rule (compiler/shapes.py);
* skip edges well-formed: ASC into `add`, DSC into `concat`, S2S into `add`, S2M/V2V into a
  `lif` port >= 1; hops >= 1; a projection lies downstream of the skip's source and is itself
  fed; only skip edges have projections;
* forms: no spiking op, payload or spiking residual kind in ANN form; in SNN form no ASC edge
  survives the residual pass once `lowered` is set, and every edge's payload, where given,
  matches the payload rules (compiler/payload.py);
* parameters: every key a node names exists in `g.params` (unless structure-only).
"""

from __future__ import annotations

from snnc.compiler.core.errors import ShapeMismatch, VerifyError
from snnc.compiler.core.ir import EMPTY, RESIDUAL_KINDS, SPIKING_OPS, EdgeKind, Form, Graph
from snnc.compiler.core.payload import edge_payload, node_payload
from snnc.compiler.core.shapes import edge_shape, infer_shape
from snnc.compiler.core.text import format_node

_SKIP_TARGET = {EdgeKind.ASC: ("add",), EdgeKind.DSC: ("concat",), EdgeKind.S2S: ("add",),
                EdgeKind.S2M: ("lif",), EdgeKind.V2V: ("lif",)}


def _fail(g: Graph, node: str | None, msg: str) -> None:
    where = ""
    if node is not None and g.has_node(node):
        body, shape = format_node(g, g.node(node))
        where = f"\n    {body} : {shape}"
    raise VerifyError(f"graph '{g.name}': {msg}{where}")


def verify(g: Graph) -> Graph:
    """Check every invariant of `g`; return `g` itself so calls can be chained.

    A graph never changes, so a graph that passed is remembered as verified (a pass's own
    `build()` and the pipeline runner both verify; the second check is free). A graph derived
    from a verified one (`Graph.edit().build()`, `with_attrs`, `with_params`) re-runs the
    shape rule only of the nodes that are not an equal node with input edges of the same
    ports, kinds and attrs delivering values of the same shapes as before (a shape rule is a
    function of exactly these); every other check runs on the whole graph."""
    if g._index.get("verified"):
        return g
    prior_nodes, prior_ins = g._index.pop("prior", ({}, {}))
    facts = g._index.pop("facts", _NO_FACTS)
    names = [n.name for n in g.nodes]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        _fail(g, None, f"node names are not unique: {', '.join(dup)}")
    idx = g._idx()
    pos = idx["pos"]

    # edges reference nodes and respect topological order
    get = pos.get
    for e in g.edges:
        d, s, p = get(e.dst, -1), get(e.src, -1), e.projection
        if s < 0 or d < 0 or s >= d or p is not None and get(p, -1) not in range(d):
            _edge_fails(g, e, pos)
    if not _ports_ok(idx["ins"]):
        ports: dict[str, list[int]] = {}
        for e in g.edges:
            ports.setdefault(e.dst, []).append(e.port)
        for dst, ps in ports.items():
            if sorted(ps) != list(range(len(ps))):
                _fail(g, dst, f"node '{dst}' has input ports {sorted(ps)}; expected "
                              f"0..{len(ps) - 1}")
    for o in g.outputs:
        if o not in pos:
            _fail(g, None, f"output '{o}' is not a node")
    if not g.outputs:
        _fail(g, None, "the graph has no outputs")

    # per node: form, shapes, params
    by_name, ins_of = idx["by_name"], idx["ins"]
    ann, params = g.form is Form.ANN, g.params
    values: dict[str, tuple] = {}  # node -> its shape as ints (`edge_shape` of a plain edge)
    for n in g.nodes:
        ins = ins_of[n.name]
        op = n.op
        if op == "input":
            if ins:
                _fail(g, n.name, f"input node '{n.name}' has inputs")
            continue
        if ann and op in SPIKING_OPS:
            _fail(g, n.name, f"spiking op '{n.op}' at node '{n.name}' in an ANN-form graph")
        was = prior_nodes.get(n.name)
        if was is None or (was is not n and was != n) or not _same_inputs(
                ins, prior_ins.get(n.name), by_name, prior_nodes):  # else checked before
            main = ins if op != "lif" else [e for e in ins if e.port == 0]
            try:
                shapes = []
                for e in main:  # `edge_shape(shape of e's value, e)`, each value's ints once
                    v = e.src if e.projection is None else e.projection
                    if e.kind is EdgeKind.DSC and e.attrs is not EMPTY:
                        shapes.append(edge_shape(by_name[v].shape, e))
                        continue
                    s = values.get(v)
                    if s is None:
                        s = values[v] = tuple(map(int, by_name[v].shape))
                    shapes.append(s)
                fact = facts.get(n.name)
                want = n.shape if fact is not None and fact[0] is n and fact[1] == shapes \
                    else infer_shape(n, shapes)
                if op == "lif":
                    infer_shape(n, [by_name[e.value_src].shape for e in ins])
            except (ShapeMismatch, KeyError, TypeError, IndexError, ValueError) as err:
                _fail(g, n.name, f"node '{n.name}' (op {n.op}): {err}")
            if want != n.shape:
                _fail(g, n.name, f"node '{n.name}' (op {n.op}) records shape {list(n.shape)} but "
                                 f"its inputs give {list(want)}")
        if params is not None and n.params:
            for key in n.params:
                if key not in params:
                    _fail(g, n.name, f"node '{n.name}' names parameter '{key}', which the graph "
                                     f"does not hold")

    # skip edges
    for e in g.edges:
        if e.hops < 1:
            _fail(g, e.dst, f"edge %{e.src} -> %{e.dst} has hops={e.hops}; hops must be >= 1")
        if e.kind is EdgeKind.DATA:
            if e.projection is not None:
                _fail(g, e.dst, f"data edge %{e.src} -> %{e.dst} has a projection; only skip "
                                f"edges do")
            continue
        dst = by_name[e.dst]  # every edge's nodes exist (checked above)
        if dst.op not in _SKIP_TARGET[e.kind]:
            _fail(g, e.dst, f"{e.kind} edge %{e.src} -> %{e.dst} enters op '{dst.op}'; it must "
                            f"enter {' or '.join(_SKIP_TARGET[e.kind])}")
        if e.kind in (EdgeKind.S2M, EdgeKind.V2V) and e.port == 0:
            _fail(g, e.dst, f"{e.kind} edge %{e.src} -> %{e.dst} must use a membrane port >= 1")
        if ann and e.kind in RESIDUAL_KINDS:
            _fail(g, e.dst, f"{e.kind} edge %{e.src} -> %{e.dst} in an ANN-form graph")
        if e.projection is not None and not _reaches(g, e.src, e.projection):
            _fail(g, e.dst, f"projection '{e.projection}' of edge %{e.src} -> %{e.dst} is not "
                            f"fed by '{e.src}'")

    # payloads
    if g.form is Form.ANN:
        for e in g.edges:
            if e.payload is not None:
                _fail(g, e.dst, f"edge %{e.src} -> %{e.dst} has a payload in an ANN-form graph")
    else:
        if g.attrs.get("lowered", False):
            for e in g.edges:
                if e.kind is EdgeKind.ASC:
                    _fail(g, e.dst, f"ASC edge %{e.src} -> %{e.dst} survived residual lowering")
        out = g._index.pop("payload_facts", None)
        if out is None:  # else annotate-payloads derived it here and marked every edge by it
            out = {}
            for n in g.nodes:
                pl = []
                lif = n.op == "lif"  # its membrane inputs (ports >= 1) are not main inputs
                for e in ins_of[n.name]:
                    want = edge_payload(g, e, out)
                    if e.payload is not want and e.payload is not None:
                        _fail(g, n.name, f"edge %{e.src} -> %{n.name} is marked {e.payload} "
                                         f"but carries {want} values")
                    if not (lif and e.port > 0):
                        pl.append(want)
                out[n.name] = node_payload(n, pl)
        g._index["payloads"] = out  # infer_payloads(g), for the cost model (payload.py)
    g._index["verified"] = True
    return g


_NO_FACTS: dict = {}


def _edge_fails(g: Graph, e, pos: dict) -> None:
    """Raise for edge `e`, which names a missing node or goes backwards (the checks in this
    order: its source, destination and projection exist; source and projection come before
    the destination)."""
    for ref in (e.src, e.dst, e.projection):
        if ref is not None and ref not in pos:
            _fail(g, e.dst if e.dst in pos else None,
                  f"edge %{e.src} -> %{e.dst} names missing node '{ref}'")
    for s in (e.src, e.projection):
        if s is not None and pos[s] >= pos[e.dst]:
            _fail(g, e.dst, f"edge %{s} -> %{e.dst} goes backwards: the graph has a cycle or "
                            f"its nodes are not in topological order")


def _ports_ok(ins_of: dict) -> bool:
    """Whether every node's input ports are 0..k-1 (`ins_of`: the graph's index, each node's
    edges sorted by port); the caller finds the node to name when not."""
    for ins in ins_of.values():
        i = 0
        for e in ins:
            if e.port != i:
                return False
            i += 1
    return True


def _same_inputs(ins, before, by_name, prior_nodes) -> bool:
    """True when edges `ins` agree with `before` in what a shape rule reads (port, kind,
    attrs: not payload or hops) and each value has the shape the value before had.

    Values are compared by shape, not by the name of the node delivering them: a pass that
    puts a node between a layer and its readers (bn-to-bntt's identity norms, relu-to-lif's
    lif after an add) renames the value a reader's edge delivers, not its shape, and the
    shape rule reads the shape alone (on densenet121, 62 concats of up to 32 inputs each kept
    their facts)."""
    if before is None or len(ins) != len(before):
        return False
    for e, b in zip(ins, before):
        if e is not b and (e.port != b.port or e.kind is not b.kind or e.attrs != b.attrs):
            return False
        old = prior_nodes.get(b.value_src)
        if old is None or by_name[e.value_src].shape != old.shape:
            return False
    return True


def _reaches(g: Graph, src: str, dst: str) -> bool:
    if src == dst:
        return True
    seen, stack = {dst}, [dst]
    while stack:
        for e in g.inputs_of(stack.pop()):
            for s in (e.src, e.projection):
                if s is None or s in seen:
                    continue
                if s == src:
                    return True
                seen.add(s)
                stack.append(s)
    return False
