"""Writing a block's adjacency matrix: skip edges, projections, merges and channel changes.

The one entry point is :func:`set_block` (re-exported by snnc.compiler.core.blocks). Each edge is
removed or added by a small graph -> graph step; the block's geometry is re-read after each step
from the partition recorded in the graph attribute `blocks`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from snnc.compiler.core.blocks_detect import MERGE_OPS, PRE_ACTIVATION, Block, Geometry, main_path
from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import EMPTY, Attrs, Edge, EdgeKind, Form, Graph, GraphBuilder, Node
from snnc.compiler.core.shapes import edge_shape
from snnc.compiler.core.verify import verify
from snnc.compiler.core.blocks_channels import finish as _finish
from snnc.compiler.core.blocks_channels import projection as _projection
from snnc.compiler.core.blocks_channels import remap as _remap

ASC_LIKE = (EdgeKind.ASC, EdgeKind.S2S, EdgeKind.S2M, EdgeKind.V2V)
_KIND_NAMES = {"asc": EdgeKind.ASC, "s2s": EdgeKind.S2S, "s2m": EdgeKind.S2M,
               "v2v": EdgeKind.V2V}


def set_block(g: Graph, block_index: int, matrix, *, kinds=None, fractions=None,
              blocks: list[Block] | None = None) -> Graph:
    """Return a new verified graph whose block `block_index` has adjacency `matrix`.

    `matrix` is (d_b+2)x(d_b+2) with a_ij in {0 none, 1 DSC, 2 ASC} for j >= i+2 and zeros
    elsewhere (paper 1 eq. 1). `kinds[(i, j)]` picks the residual of an ASC entry in SNN form
    ("s2s", "s2m", "v2v", or None / "asc" for a plain ASC left to the residual pass);
    `fractions[(i, j)]` the channel fraction of a DSC entry (the first round(f*C) channels, paper
    1 sec. III-A). Entries not named keep their current kind / fraction; a new ASC entry in a
    lowered SNN graph takes the graph's `residual` kind. `blocks` may pass find_blocks(g).

    Edges whose entry is unchanged keep their projections and weights. A new skip whose shape
    differs gets a projection: a 1x1 conv (stride to match) + batchnorm (a zero linear for
    [N, F] values) with ZERO weights, named <dst>_proj_<src>. A new DSC input grows the
    consumer layer's input channels (and every per-channel node before it) with zero weights;
    removing one removes those channels' weights. So the inherited function is unchanged,
    EXCEPT for a new identity ASC / S2S / S2M / V2V edge (no projection): it adds its source's
    value and changes the function. Concat order of written edges: [main input, skip sources in
    increasing vertex order]. A merge left with one input is removed. Works on structure-only
    graphs (params None). Raises SnncError for a matrix or kind that cannot be written.
    """
    from snnc.compiler.core.blocks import annotate_skips, block_records, find_blocks

    g = annotate_skips(g)
    blocks = list(blocks) if blocks is not None else find_blocks(g)
    if not 0 <= block_index < len(blocks):
        raise SnncError(f"graph '{g.name}': no block {block_index}; it has {len(blocks)} "
                        f"block(s) (0..{len(blocks) - 1}). List them with find_blocks(g).")
    blk = blocks[block_index]
    want = _wanted(g, blk, matrix, kinds or {}, fractions or {})
    g = g.with_attrs(blocks=block_records(blocks))
    for key in sorted(blk.edges):
        cur = find_blocks(g)[block_index].edges.get(key)
        if cur is not None and want.get(key) != _have(cur):
            g = _remove(g, cur)
    for (i, j), (kind, frac) in sorted(want.items()):
        if (i, j) not in find_blocks(g)[block_index].edges:
            g = _add(g, block_index, i, j, kind, frac)
    return verify(g)


def _have(e: Edge) -> tuple[EdgeKind, float]:
    return e.kind, float(e.attrs.get("fraction", 1.0)) if e.kind is EdgeKind.DSC else 1.0


def _wanted(g: Graph, blk: Block, matrix, kinds, fractions) -> dict:
    where = f"graph '{g.name}', block {blk.index} ('{blk.name}', d_b={blk.d_b})"
    n = blk.d_b + 2
    a = np.asarray(matrix)
    if a.shape != (n, n):
        raise SnncError(f"{where}: the matrix must be {n}x{n} (vertices 0..{n - 1}), got shape "
                        f"{list(a.shape)}.")
    for (i, j), v in np.ndenumerate(a):
        if v not in (0, 1, 2):
            raise SnncError(f"{where}: a[{i},{j}] = {v}; entries are 0 (none), 1 (DSC), 2 (ASC).")
        if v and j < i + 2:
            raise SnncError(f"{where}: a[{i},{j}] = {v} is not writable: only j >= i+2 (the main "
                            f"path j = i+1 is implicit, no backward edges). Set it to 0.")
    default = EdgeKind.ASC
    if g.form is Form.SNN and g.attrs.get("lowered", False):
        default = _KIND_NAMES.get(str(g.attrs.get("residual", "s2s")).lower(), EdgeKind.S2S)
    for key in list(kinds) + list(fractions):
        if not (isinstance(key, tuple) and len(key) == 2 and 0 <= key[0] < n and 0 <= key[1] < n):
            raise SnncError(f"{where}: kinds/fractions keys are (i, j) vertex pairs, got {key!r}.")
    want = {}
    for (i, j), v in np.ndenumerate(a):
        if v == 2:
            cur = blk.edges.get((i, j))
            if (i, j) in kinds:
                kind = _kind(where, (i, j), kinds[(i, j)], g.form)
            elif cur is not None and cur.kind in ASC_LIKE:
                kind = cur.kind
            else:
                kind = default
            want[(i, j)] = (kind, 1.0)
        elif v == 1:
            cur = blk.edges.get((i, j))
            frac = fractions.get((i, j), blk.fractions.get((i, j), 1.0))
            if not 0.0 < float(frac) <= 1.0:
                raise SnncError(f"{where}: fraction {frac} for DSC ({i},{j}) must be in (0, 1].")
            if (i, j) in kinds and kinds[(i, j)] not in (None, "dsc", EdgeKind.DSC):
                raise SnncError(f"{where}: a[{i},{j}] = 1 is a DSC; kind {kinds[(i, j)]!r} "
                                f"applies to ASC entries (2) only.")
            want[(i, j)] = (EdgeKind.DSC, float(frac))
    for key in list(kinds) + list(fractions):
        if key not in want and (kinds.get(key) is not None or key in fractions):
            raise SnncError(f"{where}: kinds/fractions name ({key[0]},{key[1]}), but a[{key[0]},"
                            f"{key[1]}] = 0. Set the matrix entry too.")
    return want


def _kind(where: str, key, value, form: Form) -> EdgeKind:
    if value is None:
        return EdgeKind.ASC
    kind = value if isinstance(value, EdgeKind) else _KIND_NAMES.get(str(value).lower())
    if kind not in ASC_LIKE:
        raise SnncError(f"{where}: kind {value!r} for ({key[0]},{key[1]}) is not one of "
                        f"asc, s2s, s2m, v2v.")
    if kind is not EdgeKind.ASC and form is not Form.SNN:
        raise SnncError(f"{where}: kind {kind.value} for ({key[0]},{key[1]}) needs an SNN-form "
                        f"graph (run the conversion passes first); in ANN form write an ASC.")
    return kind


# -- one step: remove an edge ------------------------------------------------------------------
def _remove(g: Graph, e: Edge) -> Graph:
    b = g.edit()
    dst = g.node(e.dst)
    old_edges = sorted(g.inputs_of(e.dst), key=lambda x: x.port)
    widths = {x: edge_shape(g.node(x.value_src).shape, x)[1] for x in old_edges}
    offsets, pos = {}, 0
    for x in old_edges:
        offsets[x] = pos
        pos += widths[x]
    rest = [x for x in old_edges if x != e]
    _set_ports(b, e.dst, rest)
    where = f"graph '{g.name}': removing {e.kind.value} edge %{e.src} -> %{e.dst}"
    if dst.op == "concat":
        mapping = [k for x in rest for k in range(offsets[x], offsets[x] + widths[x])]
        _remap(g, b, e.dst, mapping, pos, where)
    if dst.op in MERGE_OPS and len(rest) == 1:
        keep = b.inputs_of(e.dst)[0]
        _redirect(b, e.dst, keep.value_src, None)
        b.remove(e.dst)
    _drop_projection(b, e)
    return _finish(b)


def _drop_projection(b: GraphBuilder, e: Edge) -> None:
    node = e.projection
    while node is not None and node != e.src and node in b.nodes:
        if b.users(node) or node in b.outputs:
            return
        ins = b.inputs_of(node)
        b.remove(node)
        node = ins[0].src if ins else None


# -- one step: add an edge ---------------------------------------------------------------------
def _add(g: Graph, index: int, i: int, j: int, kind: EdgeKind, frac: float) -> Graph:
    from snnc.compiler.core.blocks import find_blocks

    blk = find_blocks(g)[index]
    geo: Geometry = blk.geometry
    d = blk.d_b
    where = f"graph '{g.name}', block {index} ('{blk.name}'): {kind.value} edge ({i},{j})"
    src, hops = geo.src_node(g, i), j - i - 1
    mp = main_path(g)
    dst_name = geo.layers[j - 1] if j <= d else blk.name
    b = g.edit()
    lif = next((n for n in geo.join(j) if g.node(n).op == "lif"), None)
    if kind in (EdgeKind.S2M, EdgeKind.V2V, EdgeKind.S2S) and lif is None:
        raise SnncError(f"{where}: vertex {j} has no lif to attach a {kind.value} residual to "
                        f"(docs/ir.md 'Residuals'). Convert the graph to SNN form first, or "
                        f"write a plain ASC (kind None).")
    if kind in (EdgeKind.S2M, EdgeKind.V2V):
        if kind is EdgeKind.V2V and g.node(src).op != "lif":
            raise SnncError(f"{where}: a V2V edge carries the input current of a neuron, but "
                            f"vertex {i}'s value '{src}' is op '{g.node(src).op}'. Write s2s or "
                            f"s2m for this entry.")
        tap = "current" if kind is EdgeKind.V2V else None
        proj = _projection(b, src, g.node(src).shape, g.node(lif).shape, dst_name, where, tap)
        scale = 1.0 if proj else float(g.node(lif).attrs.get("vth", 1.0))
        attrs = Attrs({"scale": scale}) if kind is EdgeKind.S2M else EMPTY
        b.edges.append(Edge(src, lif, len(b.inputs_of(lif)), kind, hops, proj, None, attrs))
        return _finish(b)
    op, merge, anchor, main_value = _attach(g, geo, mp, j, kind, lif)
    vshape, sshape = g.node(main_value).shape, g.node(src).shape
    if op == "add":
        proj = _projection(b, src, sshape, vshape, dst_name, where)
        edge, width = Edge(src, "", 0, kind, hops, proj), 0
    else:
        width = round(frac * sshape[1]) if frac < 1.0 else sshape[1]
        if width < 1:
            raise SnncError(f"{where}: fraction {frac} of {sshape[1]} channels keeps none; use a "
                            f"fraction >= {0.5 / sshape[1]:.3g}.")
        target = (vshape[0], sshape[1], *vshape[2:])
        proj = _projection(b, src, sshape, target, dst_name, where)
        attrs = Attrs({"fraction": frac}) if frac < 1.0 else EMPTY
        edge = Edge(src, "", 0, kind, hops, proj, None, attrs)
    if merge is None:
        merge = b.fresh(f"{dst_name}_{op}")
        b.add(Node(merge, op, Attrs({"axis": 1}) if op == "concat" else EMPTY, vshape))
        _redirect(b, anchor, merge, None if j == d + 1 else _next(mp, anchor))
        main = Edge(anchor, merge, 0)
        b.edges.append(main)
        old_edges = [main]
        old_c = {main: vshape[1]}
    else:
        old_edges = b.inputs_of(merge)
        old_c = {e: edge_shape(g.node(e.value_src).shape, e)[1] for e in old_edges}
    new = replace(edge, dst=merge)
    order = _insert_port(geo, old_edges, new, i)
    _set_ports(b, merge, order)
    if op == "concat":
        mapping, off = [], {}
        pos = 0
        for e in old_edges:
            off[e] = pos
            pos += old_c[e]
        for e in order:
            mapping += [-1] * width if e is new else list(range(off[e], off[e] + old_c[e]))
        _remap(g, b, merge, mapping, pos, where)
    return _finish(b)


def _attach(g: Graph, geo: Geometry, mp, j: int, kind: EdgeKind, lif: str | None):
    """(merge op, existing merge or None, node a new merge goes after, main value) for a skip
    of `kind` into vertex j: the main value is what an add's skip must match in shape."""
    if kind is EdgeKind.S2S:
        nxt = _next(mp, lif)
        op, anchor = "add", lif
        merge = nxt if nxt is not None and _is_s2s_add(g, nxt) else None
    else:
        op = "add" if kind is EdgeKind.ASC else "concat"
        merge, anchor = _find_merge(g, geo, j, op)
    return op, merge, anchor, (anchor if merge is None else mp.entry[merge].src)


def skip_target_shape(g: Graph, blk: Block, j: int, kind: EdgeKind = EdgeKind.ASC):
    """The shape of the main value that a new `kind` skip into vertex j of `blk` joins (an ASC
    whose source has another shape gets a zero-initialised projection; one of this shape is an
    identity skip and changes the function, docs/blocks.md "Writing a matrix")."""
    lif = next((n for n in blk.geometry.join(j) if g.node(n).op == "lif"), None)
    return g.node(_attach(g, blk.geometry, main_path(g), j, kind, lif)[3]).shape


def _next(mp, name: str) -> str | None:
    k = mp.pos[name] + 1
    return mp.nodes[k] if k < len(mp.nodes) else None


def _is_s2s_add(g: Graph, name: str) -> bool:
    return g.node(name).op == "add" and any(e.kind is EdgeKind.S2S for e in g.inputs_of(name))


def _find_merge(g: Graph, geo: Geometry, j: int, op: str) -> tuple[str | None, str]:
    """(existing `op` merge joining vertex j or None, the node a new one goes after).

    Per vertex the join is main -> add (ASC) -> concat (DSC) -> layer j; a new merge goes right
    before layer j, or for the block output right after the pre-activation node (bn_d)."""
    seg = geo.join(j)
    mp = main_path(g)
    for name in seg:
        if g.node(name).op == op and not _is_s2s_add(g, name):
            return name, name
    concat = next((n for n in seg if g.node(n).op == "concat"), None)
    add = next((n for n in seg if g.node(n).op == "add" and not _is_s2s_add(g, n)), None)
    if op == "add" and concat is not None:
        return None, mp.entry[concat].src
    if op == "concat" and add is not None:
        return None, add
    if j <= len(geo.layers):
        return None, mp.entry[geo.layers[j - 1]].src
    anchor = geo.layers[-1]
    for name in geo.tail:
        if g.node(name).op not in PRE_ACTIVATION:
            break
        anchor = name
    return None, anchor


def _insert_port(geo: Geometry, edges: list[Edge], new: Edge, i: int) -> list[Edge]:
    """Edges in port order with `new` after the main input and after skips from vertices < i."""
    edges = sorted(edges, key=lambda e: e.port)
    at = 0
    for k, e in enumerate(edges):
        v = geo.vertex_of_src(e.src)
        if e.kind is EdgeKind.DATA or (v is not None and v < i):
            at = k + 1
    return edges[:at] + [new] + edges[at:]


def _set_ports(b: GraphBuilder, name: str, order: list[Edge]) -> None:
    for e in b.inputs_of(name):
        b.remove_edge(e)
    for port, e in enumerate(order):
        b.edges.append(replace(e, dst=name, port=port))


def _redirect(b: GraphBuilder, old: str, new: str, only: str | None) -> None:
    """Readers of `old` read `new`: only node `only` if given, else every reader (and the graph
    outputs and recorded block inputs) except current taps (tap=current, V2V sources)."""
    for e in list(b.users(old)):
        if e.src != old or e.dst == new or (e.projection is not None and only is not None):
            continue
        if (only is not None and e.dst != only) or e.kind is EdgeKind.V2V:
            continue
        if e.attrs.get("tap") == "current":
            continue
        b.replace_edge(e, replace(e, src=new))
    if only is None:
        b.outputs = [new if o == old else o for o in b.outputs]
        _rename_record(b, old, new)


def _rename_record(b: GraphBuilder, old: str, new: str) -> None:
    rec = b.attrs.get("blocks")
    if rec:
        b.attrs = b.attrs.set(blocks=tuple((r[0], new if r[1] == old else r[1], *r[2:])
                                           for r in rec))
