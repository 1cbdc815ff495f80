"""quantize: fixed-point weights, decays and thresholds for a target (Loihi 2 by default).

Weights use the target's mantissa with one exponent per layer, chosen to minimise the layer's
quantisation error (docs/passes.md "Quantisation"), so a trained network's large or small weights
fit without clipping; the per-layer figures (exponent, step, levels used, relative L2 error) are
node attributes that `snnc inspect` and the cost report show.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch

from snnc.compiler.core.conditions import form_is, has_attrs
from snnc.compiler.core.errors import ConstraintViolation, SnncError
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, require_snn
from snnc.passes._neuron_scale import scale_neurons, trained_folded

log = logging.getLogger("snnc.passes")
ON_CLIP = ("error", "report")
FIXED_EXP = 1  # the exponent of a structure-only graph (and of lava-dl's default 8-bit grid)
MIN_LEVELS = 16  # fewer distinct weight values than this earns a warning (issue: 2-3 levels)


def _grid(bits: int, scale: int, exp: int) -> tuple[float, float, float]:
    """(step, lo, hi): weights are m * 2**exp / scale with m a signed `bits`-bit integer."""
    step = 2.0 ** exp / scale
    return step, -(2 ** (bits - 1)) * step, (2 ** (bits - 1) - 1) * step


def _round(w: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    return ((w / step).round() * step).clamp(lo, hi)


def best_exponent(w: torch.Tensor, bits: int, scale: int, exp_range: tuple[int, int]) -> int:
    """The exponent in `exp_range` whose `bits`-bit grid holds every value of `w` with the
    finest step: the smallest e with max|w| <= (2^(bits-1) - 1) 2^e / scale after rounding,
    which gives the least quantisation error of the exponents that clip nothing (a coarser
    step only adds rounding error; a finer one clips). Clamped to `exp_range`: beyond its top
    the values clip (a violation the quantize pass reports)."""
    lo_e, hi_e = int(exp_range[0]), int(exp_range[1])
    top = float(w.abs().max()) if w.numel() else 0.0
    if top == 0.0:
        return lo_e
    e = min(max(math.ceil(math.log2(top * scale / (2 ** (bits - 1) - 1))), lo_e), hi_e)
    while e > lo_e and _fits(w, bits, scale, e - 1):  # rounding can let a finer grid hold it
        e -= 1
    while e < hi_e and not _fits(w, bits, scale, e):
        e += 1
    return e


def _fits(w: torch.Tensor, bits: int, scale: int, e: int) -> bool:
    step, lo, hi = _grid(bits, scale, e)
    q = (w / step).round() * step
    return bool(((q >= lo) & (q <= hi)).all())


def layer_stats(w: torch.Tensor, q: torch.Tensor, step: float) -> dict:
    """Levels used (distinct quantised values) and relative L2 error ||q - w|| / ||w||."""
    norm = float(w.norm())
    return {"weight_levels": int(torch.unique((q / step).round()).numel()),
            "weight_qerr": round(float((q - w).norm()) / norm, 6) if norm else 0.0}


def quantization_violations(g: Graph, *, bits: int = 8, scale: int = 64, exp: int | None = None,
                            exp_range: tuple[int, int] = (1, 7), bias_bits: int = 13,
                            vth_bits: int = 17, neuron_scaling: bool = True) -> list[str]:
    """Every weight, bias or threshold of `g` that the fixed-point format cannot hold, one
    line per layer (name, op, how many values, the largest magnitude, the range). With `exp`
    None each neuron is scaled and each layer gets its best exponent in `exp_range` (as
    `quantize` does)."""
    if neuron_scaling and exp is None:
        g = scale_neurons(g, bits=bits, scale=scale, grid_exp=int(exp_range[0]),
                          vth_bits=vth_bits)
    out = []
    for n in g.nodes:
        if n.op == "lif":
            mant = int(float(n.attrs.get("vth", 1.0)) * scale)
            if not 0 < mant < 2 ** vth_bits:
                out.append(f"node '{n.name}' (op lif): vth={n.attrs.get('vth')} gives threshold "
                           f"mantissa {mant}, outside 1..{2 ** vth_bits - 1}")
        if n.op not in ("conv2d", "linear") or g.params is None:
            continue
        for role, b in (("weight", bits), ("bias", bias_bits)):
            key = n.param(role)
            if key is None:
                continue
            w = g.params[key]
            e = exp if exp is not None else best_exponent(w, b, scale, exp_range)
            s, a, z = _grid(b, scale, e if role == "weight" else _bias_exp(w, b, scale, exp, e))
            q = (w / s).round() * s
            bad = (q < a) | (q > z)
            if bool(bad.any()):
                out.append(f"node '{n.name}' (op {n.op}): {int(bad.sum())} {role} value(s) "
                           f"outside [{a}, {z}] (largest |{role}| {float(q.abs().max()):.4g})")
    return out


def _bias_exp(b: torch.Tensor, bits: int, scale: int, exp: int | None, _w_exp: int) -> int:
    """Biases: exponent 0 (steps of 1/scale) unless they need more range (per layer)."""
    if exp is not None:
        return 0
    return max(0, best_exponent(b, bits, scale, (0, 15)))


@register_pass("quantize", requires=[form_is(Form.SNN)],
               ensures=[has_attrs("weight_bits", "weight_scale")])
def quantize(g: Graph, *, bits: int = 8, scale: int = 64, exp: int | None = None,
             exp_range: tuple = (1, 7), neuron_scaling: bool = True, bias_bits: int = 13,
             decay_den: int = 4096, vth_bits: int = 17, on_clip: str = "error",
             min_levels: int = MIN_LEVELS) -> Graph:
    """Round weights, biases, leaks and thresholds to a fixed-point format; never clip silently.

    Defaults are Loihi 2 target-exact (docs/lava-backend.md "Fixed-point"): a weight is
    m * 2**e / scale with m a signed `bits`-bit mantissa and e the layer's exponent (lava-dl's
    `quantize_8bit` is e = 1: steps of 1/32 in [-4, 3.97]). With `neuron_scaling` (default),
    each lif's input side (its layer's weights and bias, the norms between, its S2M scales and
    projections, its threshold) is first multiplied by c = 2^k so that the largest weight just
    fits the mantissa at e = exp_range[0] (passes/_neuron_scale.py; the classifier likewise,
    its logits scaled by c): the spikes are unchanged and small or large weights use the whole
    8-bit mantissa on the standard grid (lava-dl's per-layer exponent, netx `weight_exp`,
    with the threshold and bias scaled with it). Then `exp` None (default) gives each layer the
    finest exponent in `exp_range` that holds its weights (`best_exponent`; for layers that
    could not be scaled, e.g. V2V chains, a larger e keeps large weights); an integer fixes e
    for every layer (no scaling). A threshold is truncated to a multiple of 1/scale (vThMant =
    int(vth * 64), at most `vth_bits` bits), a bias rounded to steps of 2**eb / scale with a
    `bias_bits` mantissa and exponent eb >= 0 (above 0 only when a bias needs the range).
    Leak lambda = 1 - k/decay_den with k = round((1 - lambda) decay_den); S2M scales rounded to
    1/scale.
    Requires: SNN form.
    Guarantees: conv2d/linear params hold exactly representable values (rounded to nearest);
    scaled lifs and layers record neuron_scale (c);
    each weighted layer records weight_exp, weight_step, weight_range, weight_levels (distinct
    values used), weight_qerr (||q - w|| / ||w||), bias_exp, bias_step; a layer with fewer than
    `min_levels` levels is logged as a warning; each lif records decay_k and vth_mant; graph
    attrs weight_bits, weight_scale. A value the format cannot hold (beyond the largest
    exponent) is an error listing every layer (ConstraintViolation) under on_clip=error; under
    on_clip=report (what the conversion pipeline uses) it is clipped, logged and counted in the
    layer's attr `clipped`, which the cost report lists as a violation. bntt/batchnorm stay
    float. A structure-only graph gets exponent 1 and no weight check. A conv/linear whose
    only reader is a batchnorm kept by `--bn shared` keeps float weights and its lif is not
    scaled (`_neuron_scale.trained_folded`): the PyTorch backend trains the BN folded into it
    and rounds the folded weights to this grid, as the Lava lowering does.
    Implements: the target's arithmetic, no paper equation. Idempotent.
    """
    require_snn(g, "quantize")
    check_choice("quantize", "on_clip", on_clip, ON_CLIP)
    exp_range = (int(exp_range[0]), int(exp_range[1]))
    if neuron_scaling and exp is None:
        g = scale_neurons(g, bits=bits, scale=scale, grid_exp=exp_range[0], vth_bits=vth_bits)
    problems = quantization_violations(g, bits=bits, scale=scale, exp=exp, exp_range=exp_range,
                                       bias_bits=bias_bits, vth_bits=vth_bits,
                                       neuron_scaling=False)
    if problems and on_clip == "error":
        raise ConstraintViolation(
            f"graph '{g.name}': quantize ({bits}-bit weights, scale {scale}) would clip:\n  "
            + "\n  ".join(problems) + "\nScale the layer down (and its threshold with it), "
            "train with weight clipping, or run quantize with on_clip=report to clip and record "
            "(--pass-option quantize.on_clip=report).")
    if problems:
        log.warning("quantize clipped values in graph '%s':\n  %s", g.name, "\n  ".join(problems))
    b = g.edit()
    few = []
    for n in g.nodes:
        if n.op == "lif":
            b.replace_node(_lif(n, scale, decay_den, g.name))
        elif n.op in ("conv2d", "linear"):
            node, levels = _weighted(g, b, n, bits, scale, exp, exp_range, bias_bits,
                                     min_levels)
            b.replace_node(node)
            if levels is not None and levels < min_levels:
                few.append(f"'{n.name}' ({levels})")
    if few:
        log.warning("quantize: layer(s) of graph '%s' use fewer than %d weight levels: %s; "
                    "their weights are coarse on the %d-bit grid", g.name, min_levels,
                    ", ".join(few), bits)
    for e in g.edges:
        if e.kind is EdgeKind.S2M and "scale" in e.attrs:
            sc = round(float(e.attrs["scale"]) * scale) / scale
            b.replace_edge(e, replace(e, attrs=e.attrs.set(scale=sc)))
    b.attrs = b.attrs.set(weight_bits=bits, weight_scale=scale)
    return b.build()


def _weighted(g: Graph, b, n: Node, bits: int, scale: int, exp: int | None,
              exp_range: tuple[int, int], bias_bits: int,
              min_levels: int) -> tuple[Node, int | None]:
    """The quantised node and, when it is coarse (fewer than `min_levels` levels while its
    weights had more distinct values), its level count."""
    wkey, bkey = n.param("weight"), n.param("bias")
    have = g.params is not None and wkey is not None
    users = g.users(n.name)
    folded = len(users) == 1 and trained_folded(g, users[0].dst)
    if exp is not None:
        e = exp
    elif folded:  # the folded weights go on the conv synapse's own grid (exponent 1)
        e = int(n.attrs.get("weight_exp", exp_range[0]))
    elif have:
        # Idempotence: an already-quantised layer keeps its exponent.
        e = int(n.attrs["weight_exp"]) if "weight_exp" in n.attrs else best_exponent(
            g.params[wkey], bits, scale, exp_range)
    else:
        e = int(n.attrs.get("weight_exp", FIXED_EXP))
    step, lo, hi = _grid(bits, scale, e)
    attrs = n.attrs.set(weight_exp=e, weight_step=step, weight_range=(lo, hi))
    clipped, levels = 0, None
    if folded:
        have = False  # trained folded with its BN: rounded once folded (_neuron_scale)
    if have:
        w = g.params[wkey]
        q = _round(w, step, lo, hi)
        clipped += int(((w / step).round() * step != q).sum())
        b.set_param(wkey, q)
        if "weight_qerr" not in n.attrs:  # a second run sees q, not the trained weights
            attrs = attrs.set(**layer_stats(w, q, step))
        # fewer levels than min_levels is only coarse when the weights had more values
        levels = int(attrs["weight_levels"])
        if levels >= min(int(torch.unique(w).numel()), min_levels):
            levels = None
    if bkey is not None:
        eb = int(n.attrs["bias_exp"]) if "bias_exp" in n.attrs else (
            _bias_exp(g.params[bkey], bias_bits, scale, exp, e) if g.params is not None else 0)
        bs, blo, bhi = _grid(bias_bits, scale, eb)
        attrs = attrs.set(bias_exp=eb, bias_step=bs)
        if g.params is not None:
            bias = g.params[bkey]
            qb = _round(bias, bs, blo, bhi)
            clipped += int(((bias / bs).round() * bs != qb).sum())
            b.set_param(bkey, qb)
    if clipped:
        attrs = attrs.set(clipped=clipped)
    return replace(n, attrs=attrs), levels


def _lif(n: Node, scale: int, den: int, gname: str) -> Node:
    lam = float(n.attrs.get("leak", 1.0))
    k = round((1.0 - lam) * den)
    mant = int(float(n.attrs.get("vth", 1.0)) * scale)  # vThMant = int(theta * 64)
    if mant < 1:
        raise SnncError(f"graph '{gname}': node '{n.name}' (op lif) has vth={n.attrs.get('vth')}"
                        f", below one threshold step (1/{scale}); raise the threshold.")
    return replace(n, attrs=n.attrs.set(leak=1.0 - k / den, vth=mant / scale, decay_k=k,
                                        vth_mant=mant))
