"""Conversion facts for the cost report: delay depth and per-layer quantisation
(docs/costmodel.md "Delay depth and quantisation").

Read from the graph only (the attributes the quantize pass records, compiler/core/delays.py for the
depths): the cost model imports no backend.
"""

from __future__ import annotations

from snnc.compiler.core.delays import delay_depth
from snnc.compiler.core.ir import Form, Graph

MIN_LEVELS = 16  # the quantize pass warns below this many weight levels (docs/passes.md)


def conversion_facts(g: Graph) -> dict:
    """{"delay_depth": {...}, "quantization": [rows], "violations": [...], "notes": [...]}."""
    out = {"delay_depth": {}, "quantization": [], "violations": [], "notes": []}
    if g.form is not Form.SNN:
        return out
    d = delay_depth(g)
    T = int(g.attrs.get("timesteps", 1))
    out["delay_depth"] = d.as_dict()
    warn = d.warning(T, g.name)
    if warn:  # a note, not a mapping violation: the net fits, it just sees nothing at this T
        out["notes"].append(f"WARNING delay depth: {warn}")
    for n in g.nodes:
        a = n.attrs
        if "weight_exp" not in a:
            continue
        row = {"name": n.name, "op": n.op, "scale": a.get("neuron_scale", 1.0),
               "weight_exp": a["weight_exp"],
               "weight_step": a.get("weight_step"), "levels": a.get("weight_levels"),
               "rel_l2_error": a.get("weight_qerr"), "clipped": a.get("clipped", 0)}
        out["quantization"].append(row)
        if row["clipped"]:
            out["violations"].append(
                f"layer '{n.name}' (op {n.op}): {row['clipped']} weight/bias value(s) do not fit "
                f"the {g.attrs.get('weight_bits', '?')}-bit format even at the largest exponent "
                f"and were clipped")
        if row["levels"] is not None and row["levels"] < MIN_LEVELS:
            out["notes"].append(f"layer '{n.name}' uses {row['levels']} weight levels "
                                f"(< {MIN_LEVELS})")
    return out
