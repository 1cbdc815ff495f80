"""maxpool-to-avgpool: legalise max pooling for targets that cannot compute a max."""

from __future__ import annotations

from snnc.compiler.core.conditions import lacks_ops
from snnc.compiler.core.errors import UnsupportedOp
from snnc.compiler.core.ir import Attrs, Graph, Node
from snnc.compiler.core.passmanager import register_pass


@register_pass("maxpool-to-avgpool", ensures=[lacks_ops("maxpool")])
def maxpool_to_avgpool(g: Graph) -> Graph:
    """Replace every maxpool by an avgpool over the same window (attr from_maxpool=true).

    Requires: nothing (ANN or SNN form); maxpool dilation 1 (avgpool has no dilation).
    Guarantees: no maxpool remains; each avgpool keeps the name, k, stride, pad and ceil of the
    maxpool it replaces and counts padding (count_include_pad=true), so it equals a depthwise
    sum-pool conv divided by kh*kw: the form Lava-dl can deploy (lava-backend.md "Pooling").
    This changes the function: on binary spikes a max-pool is an OR (still binary), the
    average is the fraction of active inputs (graded). snnc keeps max-pools by default
    (relu-to-lif does not touch them); run this pass for targets without a max (Loihi/Lava).
    Implements: a target legalisation, no paper equation.
    Idempotent.
    """
    pools = g.by_op("maxpool")
    if not pools:
        return g
    b = g.edit()
    for n in pools:
        dil = n.attrs.get("dilation", 1)
        if dil not in (1, (1, 1)):
            raise UnsupportedOp(
                f"graph '{g.name}': node '{n.name}' (op maxpool, dilation={dil}) cannot become an "
                f"avgpool, which has no dilation. Use dilation 1 in the model.")
        attrs = {k: n.attrs[k] for k in ("k", "stride", "pad", "ceil") if k in n.attrs}
        attrs.update(count_include_pad=True, from_maxpool=True)
        b.replace_node(Node(n.name, "avgpool", Attrs(attrs), n.shape, n.params))
    return b.build()
