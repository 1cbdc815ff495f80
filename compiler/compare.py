"""Compare graphs up to node names, and check the ANN IR against the model it came from.

    same_up_to_names(fold_bn(from_torch(m)), fold_bn(from_onnx("m.onnx")))   # -> bool
    explain_difference(g1, g2)        # -> None, or the first difference in words
    check_equivalence(g, model_or_onnx_path, x)   # -> EquivalenceReport (docs/design.md tolerance)

Names differ between front ends (``layer1_0_conv1`` from torch.fx, ``onnx__Conv_246``-derived
names from ONNX), so graphs are compared after a canonical renaming: nodes are numbered in a
topological order that breaks ties by the node's own signature (op, attributes, shape and the
canonical numbers of its inputs), which does not depend on names or on the order in which a
front end listed independent nodes. Ops that are the identity at inference (``dropout``,
``identity``) are removed first unless ``ignore=()`` is given: torch's ONNX exporter drops
them in eval mode while torch.fx keeps them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from snnc.compiler.core.errors import SnncError
from snnc.compiler.core.ir import Edge, Graph
from snnc.compiler.core.text import format_attrs, format_shape

INFERENCE_IDENTITIES = ("dropout", "identity")


def _canonical(g: Graph, ignore: Iterable[str]) -> tuple[list[tuple], list[str], list[str]]:
    """(canonical node tuples, original names in canonical order, canonical outputs)."""
    ignore = set(ignore)
    alias: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    kept = []
    for n in g.nodes:
        ins = g.inputs_of(n.name)
        if n.op in ignore and len(ins) == 1 and ins[0].projection is None:
            alias[n.name] = ins[0].src
        else:
            kept.append(n)
    preds = {n.name: {resolve(s) for e in g.inputs_of(n.name) for s in (e.src, e.projection)
                      if s is not None} for n in kept}
    succs: dict[str, list[str]] = {n.name: [] for n in kept}
    for d, ps in preds.items():
        for p in ps:
            succs[p].append(d)
    label: dict[str, int] = {}
    by_name = {n.name: n for n in kept}

    def signature(name: str) -> tuple:
        n = by_name[name]
        edges = tuple(_edge_sig(e, resolve, label) for e in g.inputs_of(name))
        return (n.op, repr(sorted(n.attrs.items())), n.shape, repr(edges))

    waiting = {n: len(p) for n, p in preds.items()}
    heap = [(signature(n), n) for n, k in waiting.items() if k == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, name = heapq.heappop(heap)
        label[name] = len(order)
        order.append(name)
        for s in succs[name]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(heap, (signature(s), s))
    canon = [signature(n) for n in order]
    outs = [f"%{label[resolve(o)]}" for o in g.outputs]
    return canon, order, outs


def _edge_sig(e: Edge, resolve: Callable[[str], str], label: dict[str, int]) -> tuple:
    src = label.get(resolve(e.src), -1)
    proj = None if e.projection is None else label.get(resolve(e.projection), -1)
    return (e.port, src, e.kind.value, e.hops, proj, repr(sorted(e.attrs.items())),
            None if e.payload is None else e.payload.value)


def explain_difference(g1: Graph, g2: Graph, *,
                       ignore: Sequence[str] = INFERENCE_IDENTITIES) -> str | None:
    """None when `g1` and `g2` are the same up to node names; else the first difference."""
    if g1.form != g2.form:
        return f"forms differ: {g1.form} vs {g2.form}"
    if g1.attrs != g2.attrs:
        return f"graph attributes differ: {format_attrs(g1.attrs)} vs {format_attrs(g2.attrs)}"
    c1, o1, out1 = _canonical(g1, ignore)
    c2, o2, out2 = _canonical(g2, ignore)
    for i, (a, b) in enumerate(zip(c1, c2)):
        if a != b:
            n1, n2 = g1.node(o1[i]), g2.node(o2[i])
            return (f"node #{i} differs: '{n1.name}' {n1.op}{format_attrs(n1.attrs)} "
                    f"{format_shape(n1.shape)} inputs {list(a[3:])} vs '{n2.name}' "
                    f"{n2.op}{format_attrs(n2.attrs)} {format_shape(n2.shape)} inputs "
                    f"{list(b[3:])}")
    if len(c1) != len(c2):
        longer, order, g = (c1, o1, g1) if len(c1) > len(c2) else (c2, o2, g2)
        extra = [f"{g.node(n).op} '{n}'" for n in order[min(len(c1), len(c2)):]][:5]
        return (f"node counts differ: {len(c1)} vs {len(c2)} (after removing "
                f"{', '.join(ignore) or 'nothing'}); extra: {', '.join(extra)}")
    if out1 != out2:
        return f"outputs differ: {out1} vs {out2} (canonical numbers)"
    return None


def same_up_to_names(g1: Graph, g2: Graph, *,
                     ignore: Sequence[str] = INFERENCE_IDENTITIES) -> bool:
    """True when the graphs have the same structure, attributes, shapes and edges, whatever
    their node names (and with inference identities such as dropout removed)."""
    return explain_difference(g1, g2, ignore=ignore) is None


# -- numbers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EquivalenceReport:
    """Interpreter vs reference: max error, the tolerance it was held to, and the verdict.

    Tolerance (docs/design.md): |ir - ref| <= atol + rtol * |ref| elementwise, with rtol = 1e-4 and
    atol = 1e-4 * max|ref|.
    """

    ok: bool
    max_abs_err: float
    max_ref: float
    rtol: float
    atol: float
    reference: str
    worst_output: int = 0

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "MISMATCH"
        return (f"{verdict}: interpreted IR vs {self.reference}: max |diff| = "
                f"{self.max_abs_err:.3g} (max |reference| = {self.max_ref:.3g}; tolerance "
                f"rtol={self.rtol:g}, atol={self.atol:.3g})")


def _reference_outputs(reference: Any, inputs: Sequence[torch.Tensor]) -> tuple[list, str]:
    if isinstance(reference, (str, Path)):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        batch = inputs[0].shape[0] if inputs else 1
        if batch > 1 and any(i.shape and i.shape[0] == 1 for i in sess.get_inputs()):
            # a file exported with a fixed batch of 1: run the samples one by one
            runs = [sess.run(None, {n: x[b:b + 1].detach().numpy() for n, x in zip(names, inputs)})
                    for b in range(batch)]
            outs = [torch.cat([torch.from_numpy(r[k]) for r in runs]) for k in range(len(runs[0]))]
        else:
            feeds = {n: x.detach().numpy() for n, x in zip(names, inputs)}
            outs = [torch.from_numpy(y) for y in sess.run(None, feeds)]
        return outs, f"onnxruntime({reference})"
    if not callable(reference):
        raise SnncError(f"check_equivalence: the reference must be a callable (an nn.Module) or "
                        f"an .onnx path, not {type(reference).__name__}.")
    if isinstance(reference, torch.nn.Module):
        reference = reference.eval()
    with torch.no_grad():
        out = reference(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return outs, f"torch ({type(reference).__name__})"


def check_equivalence(g: Graph, reference: Any, inputs: torch.Tensor | Sequence[torch.Tensor],
                      *, rtol: float = 1e-4, atol_scale: float = 1e-4) -> EquivalenceReport:
    """Interpret `g` on `inputs` and compare with `reference` (torch callable or .onnx path).

    A module is put in eval mode first. The report says OK when every output is within
    rtol * |ref| + atol_scale * max|ref| elementwise (docs/design.md: rtol 1e-4, atol 1e-4 x max).
    """
    from snnc.compiler.core.interpret import interpret

    from snnc.compiler.core.limits import check_forward

    xs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    check_forward(g, 1, int(xs[0].shape[0]) if xs and xs[0].dim() else 1, f"graph '{g.name}'")
    got = interpret(g, *xs)
    got = list(got) if isinstance(got, tuple) else [got]
    refs, what = _reference_outputs(reference, xs)
    if len(refs) != len(got):
        raise SnncError(f"check_equivalence: graph '{g.name}' has {len(got)} output(s), the "
                        f"reference {what} {len(refs)}.")
    ok, worst, err_max, ref_max, atol_used = True, 0, 0.0, 0.0, 0.0
    for i, (y, r) in enumerate(zip(got, refs)):
        r = r.to(torch.float32)
        if tuple(y.shape) != tuple(r.shape):
            raise SnncError(f"check_equivalence: output {i} of graph '{g.name}' has shape "
                            f"{list(y.shape)}, the reference {list(r.shape)}.")
        m = float(r.abs().max()) if r.numel() else 0.0
        atol = atol_scale * m
        err = float((y - r).abs().max()) if r.numel() else 0.0
        ok &= bool(torch.all((y - r).abs() <= atol + rtol * r.abs()))
        if err >= err_max:
            worst, err_max, ref_max, atol_used = i, err, m, atol
    return EquivalenceReport(ok, err_max, ref_max, rtol, atol_used, what, worst)


# -- command line -----------------------------------------------------------------------------
def _check_main(argv: Sequence[str] | None = None) -> int:
    """`python -m snnc.compiler.compare MODEL.onnx [--input-shape 3,32,32] [--batch N]`."""
    import argparse

    from snnc.compiler.frontends import import_model

    ap = argparse.ArgumentParser(prog="python -m snnc.compiler.compare",
                                 description="Import an ONNX model, interpret its ANN-form IR "
                                             "and compare with onnxruntime (docs/design.md "
                                             "tolerance: rtol 1e-4, atol 1e-4 x max|ref|).")
    ap.add_argument("model")
    ap.add_argument("--input-shape", help="C,H,W without batch (needed for dynamic inputs)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shape = tuple(int(d) for d in args.input_shape.split(",")) if args.input_shape else None
    try:
        g = import_model(args.model, input_shape=shape)
        gen = torch.Generator().manual_seed(args.seed)
        xs = [torch.randn(args.batch, *n.shape[1:], generator=gen) for n in g.input_nodes()]
        report = check_equivalence(g, args.model, xs)
    except SnncError as err:
        print(f"snnc: error: {err}")
        return 2
    print(f"{args.model}: {len(g.nodes)} nodes; {report}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(_check_main())
