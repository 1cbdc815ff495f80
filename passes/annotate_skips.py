"""annotate-skips: mark the skip edges of the front ends' add/concat nodes as ASC / DSC.

The analysis itself is :func:`snnc.compiler.core.blocks.annotate_skips` (the IR core: the
front-end API and the search use it on ANN-form graphs too); this module registers it as the
first pass of the conversion pipeline (docs/passes.md).
"""

from __future__ import annotations

from snnc.compiler.core.conditions import skips_have_sources
from snnc.compiler.core import blocks
from snnc.compiler.core.ir import Graph
from snnc.compiler.core.passmanager import register_pass


@register_pass("annotate-skips", ensures=[skips_have_sources()])
def annotate_skips(g: Graph) -> Graph:
    """Mark the skip ports of every add/concat on the main path as ASC / DSC.

    Requires: any form; add/concat inputs as plain DATA edges (as the front ends write them) or
    already annotated.
    Guarantees: every non-main input of an add (concat) on the main path whose source lies
    >= 1 weighted layer upstream is an ASC (DSC) edge with src = the skip's source, hops = the
    number of conv2d/linear layers on the main path between source and merge, projection = the
    last node of the skip path when it has nodes (e.g. a downsample conv + bn). Idempotent;
    weights untouched.
    Implements: paper 1 sec. III-A (DSC, ASC); docs/blocks.md.
    """
    return blocks.annotate_skips(g)
