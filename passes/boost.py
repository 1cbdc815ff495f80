"""boost: a voting output layer, k neurons per class (paper 2 sec. 3.2.3)."""

from __future__ import annotations

from dataclasses import replace

from snnc.compiler.core.conditions import form_is, outputs_are
from snnc.compiler.core.errors import PassFailed, SnncError
from snnc.compiler.core.ir import Attrs, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, classifier_of, require_snn

INITS = ("perturb", "replicate")


def _grow(w, k: int, init: str, spread: float, seed: int):
    """Rows of `w` repeated k times (row c*k + j = row c); under init=perturb, plus noise whose
    mean over each group of k is exactly zero, so the group mean is still row c."""
    import torch

    out = w.repeat_interleave(k, dim=0).clone()
    if init == "perturb" and w.dim() > 1 and k > 1:
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(out.shape, generator=gen, dtype=out.dtype)
        noise = noise.reshape(w.shape[0], k, *w.shape[1:])
        noise = noise - noise.mean(dim=1, keepdim=True)
        out = out + spread * w.std() * noise.reshape(out.shape)
    return out


@register_pass("boost", requires=[form_is(Form.SNN), outputs_are("readout", "vote")],
               ensures=[outputs_are("vote")])
def boost(g: Graph, *, k: int = 10, init: str = "perturb", spread: float = 0.1,
          seed: int = 0) -> Graph:
    """Grow the classifier to k*C outputs and append `%<readout>_vote = vote(...) {k}`.

    Requires: SNN form, readout ran (every output is a readout, fed by a linear classifier).
    Guarantees: the classifier has out = k*C (output c*k + j votes for class c); every node
    between it and the readout is reshaped; a vote{k} node after each readout is the new
    output. Weights: row c*k + j starts as the ANN's row c; init=perturb (default) adds noise
    of std spread*std(W) with zero mean over each group of k, so the vote (the group mean)
    equals the original classifier exactly (up to float rounding) while the k voters differ
    (identical rows would get identical gradients and never diverge); init=replicate copies
    the rows unchanged. The bias of each voter is the class's bias.
    Implements: paper 2 sec. 3.2.3 (10*C neurons, average pool of kernel and stride 10).
    Idempotent (an output that is already a vote is left alone).
    """
    require_snn(g, "boost", before="readout")
    check_choice("boost", "init", init, INITS)
    if not isinstance(k, int) or k < 1:
        raise SnncError(f"pass 'boost': k={k!r} must be an integer >= 1 (voters per class).")
    todo = [o for o in g.outputs if g.node(o).op != "vote"]
    if not todo:
        return g
    b = g.edit()
    for out in todo:
        ro = g.node(out)
        if ro.op != "readout":
            raise PassFailed(f"graph '{g.name}': output '{out}' (op {ro.op}) is not a readout; "
                             f"run the 'readout' pass before 'boost'.")
        clf, chain = classifier_of(g, g.inputs_of(out)[0].src)
        if clf.op != "linear" or any(n.op not in ("dropout", "identity") for n in chain):
            raise PassFailed(f"graph '{g.name}': boost needs a linear classifier feeding the "
                             f"readout '{out}' directly; found '{clf.name}' (op {clf.op}) "
                             f"followed by {[n.op for n in chain]}.")
        c = clf.attrs["out"]
        grown = (*clf.shape[:-1], c * k)
        b.replace_node(replace(clf, attrs=clf.attrs.set(out=c * k), shape=grown))
        for n in (*chain, ro):
            b.replace_node(replace(b.nodes[n.name], shape=grown))
        for role in ("weight", "bias"):
            key = clf.param(role)
            if key is not None and g.params is not None:
                b.set_param(key, _grow(g.params[key], k, init, spread, seed))
        vote = b.fresh(f"{out}_vote")
        b.add(Node(vote, "vote", Attrs({"k": k}), ro.shape), [out])
        b.outputs = [vote if o == out else o for o in b.outputs]
    return b.build()
