"""The ANN-form interpreter: run a graph with torch functional ops, node by node.

    y = interpret(g, x)                          # one output -> a tensor, several -> a tuple
    for node, y in node_outputs(g, {"x": x}):    # every node's output in turn (calibration)

Each op's semantics (docs/ir.md) is one small function registered with ``@interpreter("op")``:
``fn(node, inputs, params) -> tensor`` where `inputs` are the values on the node's ports in
order and `params` maps a role (``weight``) to its tensor. Skip edges are honoured: a port
reads ``edge.value_src`` (the projection when there is one), and a DSC edge with
``fraction < 1`` takes the first ``round(fraction * C)`` channels of its source (paper 1's
generalised DSC). The comparison with the source model (torch or onnxruntime) is
:func:`snnc.compiler.compare.check_equivalence`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

from snnc.compiler.core.errors import SnncError, VerifyError
from snnc.compiler.core.ir import Edge, EdgeKind, Graph, Node
from snnc.compiler.core.shapes import pad4, pair

OpFn = Callable[[Node, Sequence[torch.Tensor], Mapping[str, torch.Tensor]], torch.Tensor]
INTERPRETERS: dict[str, OpFn] = {}
BOUND_OPS = frozenset({"input"})  # bound to the caller's tensors by `interpret` itself


def interpreter(*ops: str):
    """Register the decorated function as the interpreter of `ops`."""
    def deco(fn: OpFn) -> OpFn:
        for op in ops:
            INTERPRETERS[op] = fn
        return fn
    return deco


def _spatial_pad(x: torch.Tensor, pad, value: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """Symmetric padding goes to the op; asymmetric padding is applied here first."""
    t, l, b, r = pad4(pad)
    if t == b and l == r:
        return x, (t, l)
    return F.pad(x, (l, r, t, b), value=value), (0, 0)


@interpreter("conv2d")
def _conv(n, xs, p):
    x, pad = _spatial_pad(xs[0], n.attrs.get("pad", 0), 0.0)
    return F.conv2d(x, p["weight"], p.get("bias"), pair(n.attrs.get("stride", 1)), pad,
                    pair(n.attrs.get("dilation", 1)), n.attrs.get("groups", 1))


@interpreter("linear")
def _linear(n, xs, p):
    return F.linear(xs[0], p["weight"], p.get("bias"))


@interpreter("batchnorm")
def _bn(n, xs, p):
    return F.batch_norm(xs[0], p["running_mean"], p["running_var"], p["weight"], p["bias"],
                        False, 0.0, n.attrs["eps"])


@interpreter("relu")
def _relu(n, xs, p):
    return F.relu(xs[0])


@interpreter("clip")
def _clip(n, xs, p):
    return torch.clamp(xs[0], n.attrs.get("min"), n.attrs.get("max"))


@interpreter("add")
def _add(n, xs, p):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


@interpreter("concat")
def _concat(n, xs, p):
    return torch.cat(list(xs), n.attrs.get("axis", 1))


@interpreter("maxpool")
def _maxpool(n, xs, p):
    x, pad = _spatial_pad(xs[0], n.attrs.get("pad", 0), float("-inf"))
    k = pair(n.attrs["k"])
    return F.max_pool2d(x, k, pair(n.attrs.get("stride", k)), pad,
                        pair(n.attrs.get("dilation", 1)), bool(n.attrs.get("ceil", False)))


@interpreter("avgpool")
def _avgpool(n, xs, p):
    include = bool(n.attrs.get("count_include_pad", True))
    t, l, b, r = pad4(n.attrs.get("pad", 0))
    if (t, l) != (b, r) and not include:
        raise SnncError(f"node '{n.name}' (op avgpool): asymmetric padding {(t, l, b, r)} with "
                        f"count_include_pad=false is not supported by the interpreter")
    x, pad = _spatial_pad(xs[0], (t, l, b, r), 0.0)
    k = pair(n.attrs["k"])
    return F.avg_pool2d(x, k, pair(n.attrs.get("stride", k)), pad,
                        bool(n.attrs.get("ceil", False)), include)


@interpreter("adaptive_avgpool")
def _adaptive(n, xs, p):
    return F.adaptive_avg_pool2d(xs[0], pair(n.attrs["out"]))


@interpreter("flatten")
def _flatten(n, xs, p):
    return torch.flatten(xs[0], n.attrs.get("start", 1))


@interpreter("reshape")
def _reshape(n, xs, p):
    return xs[0].reshape(tuple(n.attrs["shape"]))


@interpreter("dropout", "identity")
def _identity(n, xs, p):
    return xs[0]


def edge_value(g: Graph, e: Edge, env: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The value an edge delivers: its projection's (or source's) output, DSC fraction applied."""
    x = env[e.value_src]
    frac = e.attrs.get("fraction", 1.0)
    if e.kind is EdgeKind.DSC and frac < 1.0:
        keep = round(frac * x.shape[1])
        x = x[:, :keep]
    return x


def _role(node: Node, key: str) -> str:
    prefix = node.name + "."
    return key[len(prefix):] if key.startswith(prefix) else key.rsplit(".", 1)[-1]


def node_outputs(g: Graph,
                 env: dict[str, torch.Tensor]) -> Iterator[tuple[Node, torch.Tensor]]:
    """Run the ANN-form graph `g` with its inputs bound in `env` (input name -> tensor): every
    other node in topological order, its output stored in `env` and yielded as (node, output).
    Call under ``torch.no_grad()`` unless gradients are wanted."""
    for node in g.nodes:
        if node.op in BOUND_OPS:
            continue
        fn = INTERPRETERS.get(node.op)
        if fn is None:
            raise VerifyError(
                f"graph '{g.name}': node '{node.name}' has op '{node.op}', which the "
                f"ANN interpreter does not know. Register its semantics with "
                f"@interpreter('{node.op}') in snnc.compiler.core.interpret (spiking ops "
                f"are run by the PyTorch backend, not by this interpreter).")
        xs = [edge_value(g, e, env) for e in g.inputs_of(node.name)]
        params = {_role(node, k): g.params[k] for k in node.params}
        env[node.name] = out = fn(node, xs, params)
        yield node, out


def interpret(g: Graph, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Run the ANN-form graph `g` on `inputs` (one per input node, in order), in float32."""
    if g.params is None:
        raise SnncError(f"graph '{g.name}' holds no parameters (structure only, e.g. parsed from "
                        f"text): load them (snnc.compiler.core.serialize) before interpreting it.")
    ins = g.input_nodes()
    if len(inputs) != len(ins):
        raise SnncError(f"graph '{g.name}' has {len(ins)} input(s) "
                        f"({', '.join(n.name for n in ins)}); interpret got {len(inputs)}.")
    env: dict[str, torch.Tensor] = {}
    for node, x in zip(ins, inputs):
        want = tuple(node.shape[1:])
        if tuple(x.shape[1:]) != want:
            raise SnncError(f"graph '{g.name}': input '{node.name}' expects shape [N, "
                            f"{', '.join(map(str, want))}], got {list(x.shape)}.")
        env[node.name] = x.to(torch.float32)
    with torch.no_grad():
        for _ in node_outputs(g, env):
            pass
    outs = tuple(env[o] for o in g.outputs)
    return outs[0] if len(outs) == 1 else outs
