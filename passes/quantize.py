"""quantize: fixed-point weights, decays and thresholds for a target (Loihi 2 by default)."""

from __future__ import annotations

import logging
from dataclasses import replace

from snnc.compiler.core.conditions import form_is, has_attrs
from snnc.compiler.core.errors import ConstraintViolation, SnncError
from snnc.compiler.core.ir import EdgeKind, Form, Graph, Node
from snnc.compiler.core.passmanager import register_pass
from snnc.passes._common import check_choice, require_snn

log = logging.getLogger("snnc.passes")
ON_CLIP = ("error", "report")


def _grid(bits: int, scale: int, exp: int) -> tuple[float, float, float]:
    """(step, lo, hi): weights are m * 2**exp / scale with m a signed `bits`-bit integer."""
    step = 2.0 ** exp / scale
    return step, -(2 ** (bits - 1)) * step, (2 ** (bits - 1) - 1) * step


def quantization_violations(g: Graph, *, bits: int = 8, scale: int = 64, exp: int = 1,
                            bias_bits: int = 13, vth_bits: int = 17) -> list[str]:
    """Every weight, bias or threshold of `g` that the fixed-point format cannot hold, one
    line per layer (name, op, how many values, the largest magnitude, the range)."""
    step, lo, hi = _grid(bits, scale, exp)
    b_step, b_lo, b_hi = _grid(bias_bits, scale, 0)
    out = []
    for n in g.nodes:
        if n.op == "lif":
            mant = int(float(n.attrs.get("vth", 1.0)) * scale)
            if not 0 < mant < 2 ** vth_bits:
                out.append(f"node '{n.name}' (op lif): vth={n.attrs.get('vth')} gives threshold "
                           f"mantissa {mant}, outside 1..{2 ** vth_bits - 1}")
        if n.op not in ("conv2d", "linear") or g.params is None:
            continue
        for role, (s, a, z) in (("weight", (step, lo, hi)), ("bias", (b_step, b_lo, b_hi))):
            key = n.param(role)
            if key is None:
                continue
            q = (g.params[key] / s).round() * s
            bad = (q < a) | (q > z)
            if bool(bad.any()):
                out.append(f"node '{n.name}' (op {n.op}): {int(bad.sum())} {role} value(s) "
                           f"outside [{a}, {z}] (largest |{role}| {float(q.abs().max()):.4g})")
    return out


@register_pass("quantize", requires=[form_is(Form.SNN)],
               ensures=[has_attrs("weight_bits", "weight_scale")])
def quantize(g: Graph, *, bits: int = 8, scale: int = 64, exp: int = 1, bias_bits: int = 13,
             decay_den: int = 4096, vth_bits: int = 17, on_clip: str = "error") -> Graph:
    """Round weights, biases, leaks and thresholds to a fixed-point format; never clip silently.

    Defaults are Loihi 2 target-exact (lava-backend.md "Neuron semantics", "Fixed-point"):
    weights are integers m * 2**exp in the file with m a signed `bits`-bit mantissa, value
    = integer / scale: even integers 64 w in [-256, 254], i.e. steps of 1/32 in [-4, 3.97];
    biases steps of 1/scale with a `bias_bits` mantissa; leak lambda = 1 - k/decay_den with k
    = round((1 - lambda) decay_den); vth truncated to a multiple of 1/scale (vThMant =
    int(vth * 64), at most `vth_bits` bits); S2M scales rounded to 1/scale (round(W' 64)).
    Requires: SNN form.
    Guarantees: conv2d/linear params hold exactly representable values (rounded to nearest);
    each weighted layer records weight_step and weight_range; each lif records decay_k and
    vth_mant; graph attrs weight_bits, weight_scale. Any value outside the range is an error
    listing every layer (ConstraintViolation) under on_clip=error; under on_clip=report the
    values are clipped, logged as a warning and counted in the layer's attr `clipped`.
    bntt/batchnorm stay float (fold them into the weights before deployment). A structure-only
    graph gets its attributes but no weight check.
    Implements: the target's arithmetic, no paper equation. Idempotent.
    """
    require_snn(g, "quantize")
    check_choice("quantize", "on_clip", on_clip, ON_CLIP)
    problems = quantization_violations(g, bits=bits, scale=scale, exp=exp, bias_bits=bias_bits,
                                       vth_bits=vth_bits)
    if problems and on_clip == "error":
        raise ConstraintViolation(
            f"graph '{g.name}': quantize ({bits}-bit weights, scale {scale}) would clip:\n  "
            + "\n  ".join(problems) + "\nScale the layer down (and its threshold with it), "
            "train with weight clipping, or run quantize with on_clip=report to clip and record.")
    if problems:
        log.warning("quantize clipped values in graph '%s':\n  %s", g.name, "\n  ".join(problems))
    step, lo, hi = _grid(bits, scale, exp)
    b_step, b_lo, b_hi = _grid(bias_bits, scale, 0)
    b = g.edit()
    for n in g.nodes:
        if n.op == "lif":
            b.replace_node(_lif(n, scale, decay_den, g.name))
        elif n.op in ("conv2d", "linear"):
            attrs = n.attrs.set(weight_step=step, weight_range=(lo, hi))
            clipped = 0
            for role, (s, a, z) in (("weight", (step, lo, hi)), ("bias", (b_step, b_lo, b_hi))):
                key = n.param(role)
                if key is None or g.params is None:
                    continue
                q = (g.params[key] / s).round() * s
                clipped += int(((q < a) | (q > z)).sum())
                b.set_param(key, q.clamp(a, z))
            if clipped:
                attrs = attrs.set(clipped=clipped)
            b.replace_node(replace(n, attrs=attrs))
    for e in g.edges:
        if e.kind is EdgeKind.S2M and "scale" in e.attrs:
            sc = round(float(e.attrs["scale"]) * scale) / scale
            b.replace_edge(e, replace(e, attrs=e.attrs.set(scale=sc)))
    b.attrs = b.attrs.set(weight_bits=bits, weight_scale=scale)
    return b.build()


def _lif(n: Node, scale: int, den: int, gname: str) -> Node:
    lam = float(n.attrs.get("leak", 1.0))
    k = round((1.0 - lam) * den)
    mant = int(float(n.attrs.get("vth", 1.0)) * scale)  # vThMant = int(theta * 64)
    if mant < 1:
        raise SnncError(f"graph '{gname}': node '{n.name}' (op lif) has vth={n.attrs.get('vth')}"
                        f", below one threshold step (1/{scale}); raise the threshold.")
    return replace(n, attrs=n.attrs.set(leak=1.0 - k / den, vth=mant / scale, decay_k=k,
                                        vth_mant=mant))
