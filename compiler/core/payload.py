"""Payload rules: what values a node's output carries in SNN form (docs/design.md "Payload").

`binary` spikes in {0, 1}; `count` small non-negative integers (an S2S sum of spikes);
`graded` real values (currents, projections of spikes, direct input, average pools). The rule
of each op reads the payloads of its inputs; `edge_payload` gives what an edge carries.
"""

from __future__ import annotations

from collections.abc import Callable

from snnc.compiler.core.errors import VerifyError
from snnc.compiler.core.ir import EMPTY, Edge, EdgeKind, Graph, Node, Payload

_ORDER = {Payload.BINARY: 0, Payload.COUNT: 1, Payload.GRADED: 2}


def widest(payloads) -> Payload:
    """The least specific of `payloads` (binary < count < graded)."""
    return max(payloads, key=_ORDER.__getitem__, default=Payload.GRADED)


PayloadRule = Callable[[Node, list[Payload]], Payload]
PAYLOAD_RULES: dict[str, PayloadRule] = {}


def payload_rule(*ops: str):
    """Register the decorated function as the payload rule of `ops`."""
    def deco(fn: PayloadRule) -> PayloadRule:
        for op in ops:
            PAYLOAD_RULES[op] = fn
        return fn
    return deco


def node_payload(node: Node, inputs: list[Payload]) -> Payload:
    """The payload of `node`'s output given its inputs' payloads (main inputs only)."""
    rule = PAYLOAD_RULES.get(node.op)
    if rule is None:
        raise VerifyError(f"node '{node.name}': op '{node.op}' has no payload rule "
                          f"(@payload_rule in snnc.compiler.core.payload)")
    return rule(node, inputs)


@payload_rule("lif")
def _spikes(node, inputs):
    return Payload.BINARY


@payload_rule("encoder")
def _encoder(node, inputs):
    return Payload.GRADED if node.attrs.get("kind", "direct") == "direct" else Payload.BINARY


@payload_rule("input", "conv2d", "linear", "batchnorm", "bntt", "readout", "vote")
def _real(node, inputs):
    return Payload.GRADED  # a weighted sum, a normalised or integrated value is real


@payload_rule("avgpool", "adaptive_avgpool")
def _average(node, inputs):
    # An average of spikes is a fraction, unless the window is one element.
    return inputs[0] if _is_unit_window(node) else Payload.GRADED


@payload_rule("maxpool", "relu", "clip", "dropout", "identity", "flatten", "reshape")
def _same(node, inputs):
    return inputs[0] if inputs else Payload.GRADED


@payload_rule("add")
def _add(node, inputs):
    return Payload.COUNT if widest(inputs) is not Payload.GRADED else Payload.GRADED


@payload_rule("concat")
def _concat(node, inputs):
    return widest(inputs)


def _is_unit_window(node: Node) -> bool:
    k = node.attrs.get("k", node.attrs.get("out"))
    return node.op == "avgpool" and k in (1, (1, 1))


def reads_current(e: Edge) -> bool:
    """Whether edge `e` delivers its source's input current (V2V, or tap=current: a graded
    value every step, paper 2 eq. 15) instead of its output. An edge without attributes is
    not asked for `tap` (most edges: this is asked of every edge several times a compile)."""
    return e.kind is EdgeKind.V2V or (e.attrs is not EMPTY and e.attrs.get("tap") == "current")


def edge_payload(g: Graph, e: Edge, out: dict[str, Payload]) -> Payload:
    """What `e` carries, given the payloads `out` of the nodes before it. (Asked of every
    edge twice per compile, by annotate-payloads and by the verifier: its value's node is
    read without the `value_src` property.)"""
    if reads_current(e):
        return Payload.GRADED  # an input current (paper 2 eq. 15)
    return out[e.src if e.projection is None else e.projection]  # e.value_src


def infer_payloads(g: Graph) -> dict[str, Payload]:
    """The payload of every node's output, in topological order. The verifier computes the
    same map for an SNN-form graph (compiler/core/verify.py) and leaves it on the graph
    (graphs never change): a verified graph's map is copied, not recomputed."""
    known = g._index.get("payloads")
    if known is not None:
        return dict(known)
    out: dict[str, Payload] = {}
    for n in g.nodes:
        ins = [edge_payload(g, e, out) for e in g.inputs_of(n.name)
               if not (n.op == "lif" and e.port > 0)]
        out[n.name] = node_payload(n, ins)
    return out
