"""snnc cost model: counts, graded edges, core mapping, energy and latency from the IR.

    from snnc.costmodel import estimate
    report = estimate(graph, target="loihi1", rates=0.1)
    report.table(); report.to_json(); report.plot("cost.png")

See docs/costmodel.md. The cost model imports no backend and runs no pass: activity comes in
as data (`rates`: priors, or an :class:`Activity` a backend recorded, e.g. through
``snnc.compiler.api.record_activity``), and the network as lowered for a binary-only target as
`lowered` (``snnc.compiler.api.cost_report`` wires both).
"""

from __future__ import annotations

from snnc.compiler.core.ir import Form, Graph
from snnc.costmodel.activity import Activity, as_activity, propagate
from snnc.costmodel.counting import (baseline_totals, count_rows, layer_weights, timesteps,
                                    totals)
from snnc.costmodel.zeros import ZeroScan
from snnc.costmodel.report import CostReport
from snnc.compiler.targets import Target, available_targets, load_target

__all__ = ["estimate", "sweep", "Activity", "CostReport", "load_target",
           "available_targets", "Target", "load_compiled"]


def estimate(g: Graph, target: str | Target = "generic", rates=None, *, rate=None,
             ann: Graph | None = None, baseline: str = "cmos45", sram: bool = False,
             allow_unconfirmed: bool = False, input_bits: int = 8,
             lowered: Graph | str | None = None, strict: bool = True,
             weights: dict | None = None) -> CostReport:
    """The cost report of `g` on `target` under the activity `rates`.

    `rates`: None (prior 0.1), a float (one prior rate), a dict {lif name: rate, "*": default},
    or an :class:`Activity` (estimate mode from rates; measured mode when it holds recorded
    synaptic inputs). `rate` is an alias of a float `rates`. `lowered`: `g` after the
    legalize-graded pass for a binary-only `target`, or that pass's refusal message.
    `strict=False` keeps the energy and latency figures of a graph with violations (labelled
    in the notes; for relative ranking, e.g. the search), which are otherwise withheld.
    `ann`: the ANN-form graph (its MACs are the baseline's; default: `g`'s own MACs, equal by
    construction since the conversion keeps every weighted layer). `baseline`: the CMOS target
    of the ANN comparison ("cmos45", "cmos45:int8"); `sram` adds weight reads. `weights`:
    {layer: weight array as deployed} where it differs from the graph's (a layer trained with
    its BN folded into quantised weights: the Lava lowering's `folded_weights`, which
    ``snnc.compiler.api.cost_report`` passes): its non-zero synapses are counted on it.
    """
    from snnc.costmodel.energy import ann_baseline, snn_energy, snn_latency, snn_on_cmos
    from snnc.compiler.core.payload import infer_payloads
    from snnc.costmodel.graded import apply_lowering, graded_edges
    from snnc.costmodel.mapping import allocate

    from snnc.compiler.core.limits import check_cost

    check_cost(g, f"graph '{g.name}'")
    t = load_target(target)
    act = as_activity(rate if rate is not None else rates) if g.form is Form.SNN else None
    # each layer's weight array, read once: tested for zeros by a helper thread meanwhile
    # (costmodel/zeros.py), then counted
    arrays = layer_weights(g, weights)
    with ZeroScan(arrays) as scan:
        stats = propagate(g, act) if act is not None else None
        pay = infer_payloads(g) if g.form is Form.SNN else None
        edges, violations, emitted = graded_edges(g, t, input_bits=input_bits, payloads=pay,
                                                  lowered=lowered)
        rows, finish = count_rows(g, t, act, stats=stats, payloads=pay, weights=arrays,
                                  scan=scan)
        apply_lowering(emitted, rows, edges, stats, timesteps(g))
        notes = []
        if g.form is Form.SNN:
            from snnc.costmodel.orphans import place_orphans

            viol, notes = place_orphans(g, rows, t, timesteps(g))
            violations += viol
            from snnc.costmodel.relays import price_lava_relays

            notes += price_lava_relays(g, rows, timesteps(g))
        cores, chips, viol = allocate(g, rows, t)
        violations += viol
        finish()  # the columns that read the scan's answers (nothing above reads them)
    tot = totals(rows)
    tot.update(cores=cores, chips=chips)
    T = timesteps(g)
    if any(c.status == "T" for c in t.constants.values()):
        notes.append(f"constants of {t.full_name} marked T are from a transcription "
                     f"(hardware-targets.md sec. 0), not read in the primary source")
    if not t.graded_spikes and any(not e.fits for e in edges):
        how = "as compiled" if emitted is g else "on a copy"
        notes.append(f"binary-only target: graded edges priced as lowered by the "
                     f"legalize-graded pass ({how}; paper 2 eq. 12, 14, 18)")
    energy = latency = {}
    base = {}
    if g.form is Form.SNN:
        from snnc.costmodel.energy import reference_notes

        notes += reference_notes(t, tot, T)
    if act is not None and act.mode == "estimate":
        from snnc.costmodel.estimate_error import error_note

        notes.append(error_note(rows))
    if g.form is Form.SNN:
        latency = snn_latency(rows, tot, t, T, cores, allow_unconfirmed)
        energy = snn_energy(tot, t, latency, chips, allow_unconfirmed)
        if violations and not strict:
            notes.append(f"energy and latency shown although the graph has {len(violations)} "
                         f"violation(s) (strict=False): not a figure of a runnable network")
        elif violations:  # the network cannot run as counted: no joule or second figure
            why = (f"{len(violations)} violation(s): the network cannot run on {t.name} as "
                   f"counted; fix them first (counts shown for reference)")
            for fig in (energy, latency):
                fig.update(value=None, band=None, reason=why, status="violations")
                fig.pop("label", None)
                fig.pop("value_raw", None)
        bt = load_target(baseline)
        ann_tot = tot if ann is None else baseline_totals(ann, bt)  # MACs, weight bytes
        base = {"ann": ann_baseline(ann_tot, bt, sram=sram), "snn_on_cmos": snn_on_cmos(tot, bt)}
        if energy.get("value") and base["ann"].get("value"):
            base["ratio"] = energy["value"] / base["ann"]["value"]
            base["ratio_assumptions"] = (f"SNN: {t.full_name} per-op constants "
                                         f"({energy['status']}); ANN: "
                                         f"{base['ann']['assumptions']}")
    # -- conversion facts: delay depth and quantisation (costmodel/conversion.py) ----------
    from snnc.costmodel.conversion import conversion_facts

    conv = conversion_facts(g)
    violations += conv["violations"]
    notes += conv["notes"]
    return CostReport(g.name, g.form.value, t.full_name, T, g.attrs.get("residual"),
                      act.describe() if act else "ANN form: no activity (MACs only)",
                      act.source if act else "none", rows, tot, edges, violations, energy,
                      latency, base, notes, delay_depth=conv["delay_depth"],
                      quantization=conv["quantization"])


def sweep(g: Graph, rates=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3), **kw) -> list:
    """[(rate, report)] for a one-rate prior at each of `rates` (sensitivity sweep)."""
    return [(r, estimate(g, rates=float(r), **kw)) for r in rates]


def load_compiled(directory, graph: str = "graph"):
    """The SNN graph (``graph="graph"``) or the ANN graph (``"ann"``), with params, of a
    `snnc compile` output directory."""
    import json
    from pathlib import Path

    from snnc.compiler.core.serialize import from_json, load_params

    d = Path(directory)
    data = json.loads((d / f"{graph}.json").read_text())
    params = load_params(d / f"{graph}.safetensors") \
        if (d / f"{graph}.safetensors").is_file() else None
    return from_json(data, params=params)
