"""fold-bn: fold a batchnorm into the conv2d / linear that feeds it."""

from __future__ import annotations

import torch

from snnc.compiler.core.conditions import Condition
from snnc.compiler.core.ir import Graph, Node, bn_fold_source
from snnc.compiler.core.passmanager import register_pass


def _foldable(g: Graph, bn: Node) -> Node | None:
    return bn_fold_source(g, bn.name)


def fold_scale_shift(bn_params: dict[str, torch.Tensor], eps: float):
    """s = g / sqrt(v + eps) and t = beta - m * s, so that bn(y) = s * y + t."""
    s = bn_params["weight"] / torch.sqrt(bn_params["running_var"] + eps)
    return s, bn_params["bias"] - bn_params["running_mean"] * s


def _none_foldable(g: Graph) -> str | None:
    left = [bn.name for bn in g.by_op("batchnorm") if _foldable(g, bn) is not None]
    return f"batchnorm '{left[0]}' could still be folded" if left else None


@register_pass("fold-bn", ensures=[Condition("no batchnorm left that folds into the layer "
                                             "before it", _none_foldable)])
def fold_bn(g: Graph) -> Graph:
    """Fold every batchnorm into the conv2d / linear before it, where that is exact.

    Requires: nothing (any form); a batchnorm folds when its only input is a DATA edge from a
    conv2d or linear whose output nobody else reads (and which is not a graph output).
    Guarantees: each folded batchnorm is gone, its readers (edges, projections, outputs) read
    the conv, which keeps its name and gets ``bias=true``; other batchnorms (e.g. the
    pre-activation BNs of densenet, after a concat) are left as they are. The function
    computed is unchanged up to float32 round-off. Structure-only graphs (params None) get
    the structural change only.
    Implements: with s = g / sqrt(v + eps) (g, beta: BN affine; m, v: running statistics),
    ``W' = W * s`` (per output channel) and ``b' = (b - m) * s + beta`` (b = 0 when the conv
    had no bias).
    """
    b = g.edit()
    for bn in g.by_op("batchnorm"):
        conv = _foldable(g, bn)
        if conv is None:
            continue
        w_key, b_key = f"{conv.name}.weight", f"{conv.name}.bias"
        if g.params is not None:
            p = {r: g.params[f"{bn.name}.{r}"]
                 for r in ("weight", "bias", "running_mean", "running_var")}
            s, _ = fold_scale_shift(p, bn.attrs["eps"])
            w = g.params[conv.param("weight")]
            old_b = g.params[b_key] if conv.param("bias") else torch.zeros_like(s)
            b.set_param(w_key, w * s.reshape(-1, *([1] * (w.dim() - 1))))
            b.set_param(b_key, (old_b - p["running_mean"]) * s + p["bias"])
        b.replace_node(Node(conv.name, conv.op, conv.attrs.set(bias=True), conv.shape,
                            (w_key, b_key)))
        b.redirect(bn.name, conv.name)
        b.remove(bn.name)
    return b.build()
