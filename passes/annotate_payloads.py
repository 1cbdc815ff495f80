"""annotate-payloads: every edge states what it carries (binary, count or graded)."""

from __future__ import annotations

from snnc.compiler.core.conditions import every_edge_has_payload, form_is
from snnc.compiler.core.ir import Form, Graph
from snnc.compiler.core.passmanager import register_pass
from snnc.compiler.core.payload import edge_payload, node_payload
from snnc.passes._common import require_snn


@register_pass("annotate-payloads", requires=[form_is(Form.SNN)],
               ensures=[every_edge_has_payload()])
def annotate_payloads(g: Graph) -> Graph:
    """Set the payload of every edge from the payload rules (compiler/core/payload.py).

    Requires: SNN form.
    Guarantees: every edge has a payload equal to what its source delivers: lif -> binary;
    direct encoder -> graded, poisson/events -> binary; weighted layers, norms, readout, vote,
    average pools (k > 1) -> graded; add of spikes/counts -> count; concat -> the widest input;
    V2V and tap=current edges -> graded (docs/ir.md "Payload"). Stale payloads are replaced.
    Implements: docs/design.md "Payload"; paper 2 eq. 12 (a sum of spikes is a count).
    Idempotent.
    """
    require_snn(g, "annotate-payloads", before="relu-to-lif")
    out = {}
    new_edges = {}
    changed = False  # some edge's payload is not what it carries
    for n in g.nodes:
        main = []
        lif = n.op == "lif"  # its membrane inputs (ports >= 1) are not main inputs
        for e in g.inputs_of(n.name):
            p = new_edges[e] = edge_payload(g, e, out)
            if e.payload is not p:
                changed = True
            if not (lif and e.port > 0):
                main.append(p)
        out[n.name] = node_payload(n, main)
    if changed:
        g = g.with_edges([e if e.payload is (p := new_edges[e]) else e.moved(payload=p)
                          for e in g.edges])
    if not g._index.get("verified"):
        g._index["payload_facts"] = out  # every edge marked by it: see compiler/core/verify.py
    return g
