"""Payload rules: what values a node's output carries in SNN form (docs/design.md "Payload").

`binary` spikes in {0, 1}; `count` small non-negative integers (an S2S sum of spikes);
`graded` real values (currents, projections of spikes, direct input, average pools). The rule
of each op reads the payloads of its inputs; `edge_payload` gives what an edge carries.
"""

from __future__ import annotations

from snnc.compiler.core.errors import VerifyError
from snnc.compiler.core.ir import Edge, EdgeKind, Graph, Node, Payload

_ORDER = {Payload.BINARY: 0, Payload.COUNT: 1, Payload.GRADED: 2}


def widest(payloads) -> Payload:
    """The least specific of `payloads` (binary < count < graded)."""
    return max(payloads, key=_ORDER.__getitem__, default=Payload.GRADED)


def node_payload(node: Node, inputs: list[Payload]) -> Payload:
    """The payload of `node`'s output given its inputs' payloads (main inputs only)."""
    op = node.op
    if op == "lif":
        return Payload.BINARY
    if op == "encoder":
        return Payload.GRADED if node.attrs.get("kind", "direct") == "direct" else Payload.BINARY
    if op in ("input", "conv2d", "linear", "batchnorm", "bntt", "readout", "vote", "avgpool",
              "adaptive_avgpool"):
        # An average of spikes is a fraction; a weighted sum is a real value.
        if op in ("avgpool", "adaptive_avgpool") and _is_unit_window(node):
            return inputs[0]
        return Payload.GRADED
    if op in ("maxpool", "relu", "clip", "dropout", "identity", "flatten", "reshape"):
        return inputs[0] if inputs else Payload.GRADED
    if op == "add":
        w = widest(inputs)
        return Payload.COUNT if w is not Payload.GRADED else Payload.GRADED
    if op == "concat":
        return widest(inputs)
    raise VerifyError(f"node '{node.name}': op '{op}' has no payload rule "
                      f"(snnc.compiler.core.payload.node_payload)")


def _is_unit_window(node: Node) -> bool:
    k = node.attrs.get("k", node.attrs.get("out"))
    return node.op == "avgpool" and k in (1, (1, 1))


def edge_payload(g: Graph, e: Edge, out: dict[str, Payload]) -> Payload:
    """What `e` carries, given the payloads `out` of the nodes before it."""
    if e.kind is EdgeKind.V2V or e.attrs.get("tap") == "current":
        return Payload.GRADED  # an input current (paper 2 eq. 15)
    return out[e.value_src]


def infer_payloads(g: Graph) -> dict[str, Payload]:
    """The payload of every node's output, in topological order."""
    out: dict[str, Payload] = {}
    for n in g.nodes:
        ins = [edge_payload(g, e, out) for e in g.inputs_of(n.name)
               if not (n.op == "lif" and e.port > 0)]
        out[n.name] = node_payload(n, ins)
    return out
