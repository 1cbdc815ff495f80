"""Blocks and their adjacency matrices (paper 1 sec. III, eq. 1; docs/design.md "Blocks").

    from snnc.compiler.core.blocks import annotate_skips, find_blocks, set_block

    g = annotate_skips(g)      # add(%bn2, %ds_bn) -> add(%bn2, %x ~ASC n=2 proj=%ds_bn)
    blocks = find_blocks(g)    # [Block(index=0, name='layer1_0', kind='basic', ...)]
    blocks[0].matrix                           # (d_b+2)x(d_b+2), a_03 = 2 for a basic block
    g2 = set_block(g, 0, a, kinds={(0, 3): "s2m"}, fractions={(0, 2): 0.5})

A block's vertices: 0 = its input, 1..d_b = its conv/linear layers in topological order,
d_b+1 = its output (the merge point before the block's final activation). `a_ij` in {0 none,
1 DSC, 2 ASC} for j >= i+2; the main path j = i+1 is implicit. A skip into vertex j joins the
input of layer j (or the block output). Details and worked examples: docs/blocks.md.

Once `set_block` has written a graph, the block partition is recorded in the graph attribute
`blocks` = ((kind, input, layer_1, ..., layer_d), ...) so that blocks keep their identity and
index whatever skips are written; `find_blocks` reads it back when present.
"""

from __future__ import annotations

import numpy as np

from snnc.compiler.core.blocks_detect import (
    ACTIVATIONS, ELEMENTWISE, Block, Geometry, MainPath, annotate_skips, geometry,
    main_path, output_node, spine,
)
from snnc.compiler.core.ir import SKIP_KINDS, WEIGHTED_OPS, EdgeKind, Graph

__all__ = ["Block", "annotate_skips", "find_blocks", "set_block", "block_records"]

Part = tuple[str, str, tuple[str, ...]]  # (kind, input, layers)


def find_blocks(g: Graph, *, sequential: bool = True, min_layers: int = 2,
                max_layers: int | None = None) -> list[Block]:
    """The blocks of `g` (ANN or SNN form) in topological order, with their matrices.

    Regions with merges (ResNet basic/bottleneck, MobileNetV2 inverted residual, DenseNet dense
    block) are one block each; with `sequential`, runs of at least `min_layers` consecutive
    layers outside such regions (split into chunks of at most `max_layers`) are blocks with an
    all-zero matrix, e.g. paper 1's single 4-layer block. A run ends at a pool, flatten or
    merge region, or between two layers with no activation between them (a linear bottleneck).
    A graph written by `set_block` carries its partition (attribute `blocks`): it is used as is.
    """
    g = annotate_skips(g)
    mp = main_path(g)
    parts = _recorded(g, mp)
    if parts is None:
        parts = _detect(g, mp, sequential, min_layers, max_layers)
    blocks = []
    for idx, (kind, inp, layers) in enumerate(parts):
        geo = geometry(g, mp, inp, layers)
        blocks.append(_read(g, mp, idx, kind, geo, parts))
    return blocks


def block_records(blocks: list[Block]) -> tuple[tuple[str, ...], ...]:
    """The value of the graph attribute `blocks` describing `blocks`."""
    return tuple((b.kind, b.input, *b.layers) for b in blocks)


def _recorded(g: Graph, mp: MainPath) -> list[Part] | None:
    rec = g.attrs.get("blocks")
    if not rec:
        return None
    parts = []
    for item in rec:
        if not isinstance(item, tuple) or len(item) < 3:
            return None
        kind, inp, layers = item[0], item[1], tuple(item[2:])
        if not all(g.has_node(n) and g.node(n).op in WEIGHTED_OPS for n in layers):
            return None
        if not g.has_node(inp) or geometry(g, mp, inp, layers) is None:
            return None
        parts.append((kind, inp, layers))
    return parts


def _detect(g: Graph, mp: MainPath, sequential: bool, min_layers: int,
            max_layers: int | None) -> list[Part]:
    sp = spine(g)
    parts: list[Part] = []
    run: list[str] = []
    between: list[str] = []  # main-path nodes since the last layer of the run
    region: list[str] = []
    start = None

    def close_run():
        if sequential and len(run) >= min_layers:
            size = max_layers or len(run)
            for k in range(0, len(run), size):
                chunk = tuple(run[k:k + size])
                if len(chunk) >= min_layers or k == 0:
                    parts.append(("sequential", mp.entry[chunk[0]].src, chunk))
        run.clear()

    for name in mp.nodes:
        op = g.node(name).op
        if name not in sp:
            if not region:
                close_run()
                start = mp.nodes[mp.pos[name] - 1]
            region.append(name)
            continue
        if region:
            layers = tuple(n for n in region if g.node(n).op in WEIGHTED_OPS)
            if layers:
                parts.append(("region", start, layers))
            region = []
            between = [name]
            continue
        if op in WEIGHTED_OPS:
            joined = (run and all(g.node(n).op in ELEMENTWISE for n in between)
                      and any(g.node(n).op in ACTIVATIONS for n in between))
            if not joined:
                close_run()
            run.append(name)
            between = []
        else:
            between.append(name)
    close_run()
    return parts


def _read(g: Graph, mp: MainPath, idx: int, kind: str, geo: Geometry, parts) -> Block:
    d = len(geo.layers)
    a = np.zeros((d + 2, d + 2), dtype=np.int64)
    kinds, fractions, edges, foreign = {}, {}, {}, []
    for name in geo.segments[0]:
        foreign.extend(e for e in g.inputs_of(name) if e.kind in SKIP_KINDS)
    for j in range(2, d + 2):
        for name in geo.join(j):
            for e in g.inputs_of(name):
                if e.kind not in SKIP_KINDS:
                    continue
                i = geo.vertex_of_src(e.src)
                if i is None or j < i + 2 or (i, j) in edges:
                    foreign.append(e)
                    continue
                edges[(i, j)] = e
                if e.kind is EdgeKind.DSC:
                    a[i, j] = 1
                    fractions[(i, j)] = float(e.attrs.get("fraction", 1.0))
                else:
                    a[i, j] = 2
                    kinds[(i, j)] = None if e.kind is EdgeKind.ASC else e.kind
    out = output_node(g, geo)
    if kind == "region":
        kind = _classify(g, mp, a, out)
    prefix = _prefix(geo.layers)
    name = prefix if prefix and [_prefix(p[2]) for p in parts].count(prefix) == 1 \
        else f"block{idx}"
    return Block(idx, name, kind, geo.input, out, geo.layers, a, kinds, fractions, edges,
                 tuple(foreign), geo)


def _prefix(layers) -> str:
    """The common underscore-separated prefix of layer names (layer1_0_conv1 -> layer1_0)."""
    tokens = [n.split("_") for n in layers]
    common = []
    for parts in zip(*tokens):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    if len(common) == min(len(t) for t in tokens):
        common = common[:-1]
    return "_".join(common)


def _classify(g: Graph, mp: MainPath, a: np.ndarray, out: str) -> str:
    """basic / bottleneck / inverted / dense / residual, from the skips a region has."""
    d = a.shape[0] - 2
    if (a == 1).any():
        return "dense"
    only_outer = a[0, d + 1] == 2 and np.count_nonzero(a) == 1
    if only_outer and d == 2:
        return "basic"
    if only_outer and d == 3:
        nxt = mp.nodes[mp.pos[out] + 1] if mp.pos[out] + 1 < len(mp.nodes) else None
        activated = nxt is not None and g.node(nxt).op in ACTIVATIONS
        return "bottleneck" if activated else "inverted"
    return "residual"


from snnc.compiler.core.blocks_write import set_block  # noqa: E402  (it uses find_blocks)
