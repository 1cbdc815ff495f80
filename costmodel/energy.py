"""Energy and latency per inference (hardware-targets.md sec. 7b) and the ANN baseline (7d).

    E = sum_l [SOP*E_synop + GSOP*E_gsynop + NU_act*E_act + NU_idle*E_idle
               + SPK*(E_spike_out + E_message_out) + HOPS*E_hop] + P_static*chips*t
    t = T * (max_core(SOP_core*t_synop + NU_core*t_nu) + t_barrier(tiles))

A term whose constant is missing from the target is left out and named in `missing`. A figure
is *printed* only when every constant it uses is P, D or T (docs/design.md "Targets"); with S or
UNCONFIRMED inputs (or null values) the value is None, and with ``allow_unconfirmed`` only a
band labelled "unconfirmed" is given (where values exist). Bands come from each constant's
band (its value when it has none).
"""

from __future__ import annotations

import math

from snnc.compiler.targets import Target

_E_TERMS = [("sops", "energy.synop"), ("graded_sops", "energy.graded_synop"),
            ("updates_active", "energy.neuron_update_active"),
            ("updates_idle", "energy.neuron_update_idle"), ("spikes", "energy.spike_out"),
            ("spikes", "energy.message_out"), ("hops", "energy.hop_ew")]


def _status(consts) -> str:
    order = ["P", "D", "T", "S", "UNCONFIRMED"]
    return max((c.status for c in consts), key=order.index, default="P")


def _figure(value, lo, hi, consts, allow_unconfirmed, missing, unit) -> dict:
    usable = all(c.usable for c in consts) and consts
    status = _status(consts) if consts else "none"
    fig = {"value": None, "band": None, "unit": unit, "status": status,
           "from_transcription": any(c.status == "T" for c in consts),
           "constants": sorted({c.name for c in consts}), "missing": missing}
    if not consts:
        fig["status"] = "not available"
        fig["reason"] = "the target defines no per-op constants for this figure"
    elif usable:
        fig.update(value=value, band=[lo, hi])
    elif allow_unconfirmed and all(c.value is not None for c in consts):
        fig.update(band=[lo, hi], label="UNCONFIRMED band, not a measurement")
    else:
        fig["reason"] = ("built on constants without a primary source (status S/UNCONFIRMED "
                         "or null); counts and core budget only")
    return fig


def _acc(t: Target, key: str, count: float, acc: list, consts: list, missing: list):
    c = t.get(key)
    if c is None:
        if count:
            missing.append(key)
        return
    if not count:
        return
    consts.append(c)
    if c.value is None:
        return
    lo, hi = c.band or (c.value, c.value)
    acc[0] += count * c.value
    acc[1] += count * lo
    acc[2] += count * hi


def snn_energy(totals: dict, t: Target, latency: dict, chips: int,
               allow_unconfirmed: bool = False) -> dict:
    """Energy per inference of the SNN on neuromorphic target `t` (see module doc)."""
    acc, consts, missing = [0.0, 0.0, 0.0], [], []
    counts = dict(totals)
    if t.get("energy.graded_synop") is None and t.graded_spikes:
        counts["sops"] = counts["sops"] + counts["graded_sops"]
        counts["graded_sops"] = 0
    if t.get("energy.hop_ew") is None:
        _acc(t, "energy.hop", counts["hops"], acc, consts, missing)
        counts["hops"] = 0
    for count_key, key in _E_TERMS:
        _acc(t, key, counts[count_key], acc, consts, missing)
    if t.get("energy.spike_out") is None:
        _acc(t, "energy.spike_within_tile", counts["spikes"], acc, consts, missing)
    ps = t.get("power.static_per_chip")
    if ps is not None and latency.get("value_raw") is not None and chips:
        consts.append(ps)
        for i, tt in enumerate(latency["raw"]):
            acc[i] += ps.value * chips * tt
    return _figure(acc[0], acc[1], acc[2], consts, allow_unconfirmed, missing, "J")


def snn_latency(rows, totals: dict, t: Target, T: int, cores: int,
                allow_unconfirmed: bool = False) -> dict:
    """Latency per inference: T x (busiest core's work per step + barrier)."""
    consts, missing = [], []
    csyn, cnu = t.get("time.synop"), t.get("time.neuron_update_idle")
    cact = t.get("time.neuron_update_active")
    tick = t.get("time.tick")
    raw = [0.0, 0.0, 0.0]
    if tick is not None:
        consts.append(tick)
        raw = [T * tick.value] * 3
    elif csyn is not None:
        consts.append(csyn)
        busiest = [0.0, 0.0, 0.0]
        for r in rows:
            if not r.cores:
                continue
            for i, (cs, ca, ci) in enumerate(_vals(csyn, cact, cnu)):
                work = ((r.sops + r.graded_sops) * cs + r.updates_active * ca
                        + r.updates_idle * ci) / (r.cores * T)
                busiest[i] = max(busiest[i], work)
        for c in (cact, cnu):
            if c is not None:
                consts.append(c)
            else:
                missing.append("time.neuron_update")
        bar = t.get("time.barrier_sync")
        b = 0.0
        if bar is not None:
            consts.append(bar)
            tiles = math.ceil(cores / int(t.value("capacity.cores_per_tile", 1))) or 1
            b = _interp(bar.value, tiles)
        else:
            missing.append("time.barrier_sync")
        raw = [T * (x + b) for x in busiest]
    fig = _figure(raw[0], min(raw), max(raw), consts, allow_unconfirmed, missing, "s")
    fig["raw"] = raw
    fig["value_raw"] = raw[0] if fig["value"] is not None else None
    return fig


def _vals(csyn, cact, cnu):
    def three(c):
        if c is None or c.value is None:
            return (0.0, 0.0, 0.0)
        lo, hi = c.band or (c.value, c.value)
        return (c.value, lo, hi)
    return list(zip(three(csyn), three(cact), three(cnu)))


def _interp(table: dict, tiles: int) -> float:
    pts = sorted((int(k), float(v)) for k, v in table.items())
    if tiles <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if tiles <= x1:
            return y0 + (y1 - y0) * (tiles - x0) / (x1 - x0)
    return pts[-1][1]


def ann_baseline(totals: dict, base: Target, *, sram: bool = False) -> dict:
    """ANN energy per inference on the CMOS baseline: MACs x E_MAC (+ weight bytes x SRAM)."""
    consts, acc, missing = [], [0.0, 0.0, 0.0], []
    _acc(base, "energy.mac", totals["macs"], acc, consts, missing)
    if sram:
        _acc(base, "energy.sram_read_per_byte", totals["weight_bytes"], acc, consts, missing)
    fig = _figure(acc[0], acc[1], acc[2], consts, False, missing, "J")
    fig["assumptions"] = (f"{base.full_name}: {base.description} MACs x E_MAC"
                          + (" + weight bytes x SRAM read" if sram else "") +
                          "; arithmetic only: no control, clock, data movement or idle power.")
    return fig


def snn_on_cmos(totals: dict, base: Target) -> dict:
    """The SNN on the same CMOS baseline: binary SOPs x E_AC + graded SOPs x E_MAC."""
    consts, acc, missing = [], [0.0, 0.0, 0.0], []
    _acc(base, "energy.ac", totals["sops"], acc, consts, missing)
    _acc(base, "energy.mac", totals["graded_sops"], acc, consts, missing)
    fig = _figure(acc[0], acc[1], acc[2], consts, False, missing, "J")
    fig["assumptions"] = (f"{base.full_name}: binary SOPs x E_AC + graded SOPs x E_MAC "
                          "(Rathi & Roy / syops convention); arithmetic only.")
    return fig


def reference_notes(t: Target, totals: dict, timesteps: int) -> list[str]:
    """The target's measured whole-network references (per inference, cited) beside this
    graph's own counts, so that a user can scale by hand; never a per-op constant."""
    out = []
    for name, ref in (t.reference or {}).items():
        e = ref.get("energy_per_inference_J") or {}
        if not e:
            continue
        parts = [f"{k} {1e3 * float(v):.4g} mJ" for k, v in e.items()]
        pw = ref.get("power_W") or {}
        power = ", ".join(f"{k} {float(v):.3g} W" for k, v in pw.items())
        out.append(
            f"reference, not an estimate of this graph: {name} measured on {t.name}: "
            f"{', '.join(parts)} per inference of {ref.get('timesteps_per_inference', '?')} "
            f"step(s) ({ref.get('cores', '?')} cores"
            f"{'; ' + power if power else ''}; {ref.get('inferences_per_s', '?')} "
            f"inferences/s; source: {ref.get('source', '?')}). This graph per inference of "
            f"{timesteps} step(s): {totals.get('cores', 0)} cores, "
            f"{totals['sops'] + totals['graded_sops']:.4g} SOPs, "
            f"{totals['updates_active'] + totals['updates_idle']:.4g} neuron updates, "
            f"{totals['spikes']:.4g} spikes")
    return out
