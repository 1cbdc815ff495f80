"""The cost report: per-layer rows, totals, graded edges, mapping, energy (docs/costmodel.md).

JSON field names are documented in docs/costmodel.md ("JSON report"); `totals` holds at
least macs, sops, graded_sops, neurons, synapses, memory_bytes, cores, chips, and `energy`
/ `latency` carry their status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from json.encoder import INFINITY as _INF
from json.encoder import c_make_encoder
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any


@dataclass
class CostReport:
    """What `snnc.costmodel.estimate` returns."""

    graph: str
    form: str
    target: str
    timesteps: int
    residual: str | None
    activity: str
    activity_source: str
    rows: list
    totals: dict
    graded_edges: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    energy: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    # conversion facts (costmodel/conversion.py): input-to-readout delay depths, per-layer
    # weight exponent / step / levels / relative L2 quantisation error
    delay_depth: dict = field(default_factory=dict)
    quantization: list = field(default_factory=list)

    def _mode(self) -> str:
        """T, residual mode and activity mode, for titles."""
        mode = "measured" if self.activity.startswith("measured mode") else "estimate"
        return (f"T={self.timesteps}, residual {self.residual or 'none'}, "
                f"{mode if self.activity_source != 'none' else 'ANN form'}")

    def to_json(self) -> dict:
        """A JSON-ready dict (field names: docs/costmodel.md "JSON report")."""
        return self._json([r.as_dict() for r in self.rows])

    def _json(self, layers: list) -> dict:
        """`to_json` with the rows' dicts `layers`."""
        lat = {k: v for k, v in self.latency.items() if k not in ("raw", "value_raw")}
        return {"format": "snnc-cost", "version": 1, "graph": self.graph, "form": self.form,
                "target": self.target, "timesteps": self.timesteps,
                "residual": self.residual,
                "activity": {"source": self.activity_source, "description": self.activity,
                             "mode": self._mode().rsplit(", ", 1)[1]},
                "totals": self.totals, "layers": layers,
                "graded_edges": [e.as_dict() for e in self.graded_edges],
                "violations": self.violations, "energy": self.energy, "latency": lat,
                "baseline": self.baseline, "notes": self.notes,
                "delay_depth": self.delay_depth, "quantization": self.quantization}

    def dumps(self) -> str:
        """The JSON report: `json.dumps(self.to_json(), indent=1)`, the same text; the rows
        are written from their own dicts (LayerCost.as_view), not from copies."""
        return dumps_indented(self._json([r.as_view() for r in self.rows]))

    def _fig(self, f: dict) -> str:
        if not f:
            return "n/a"
        if f.get("value") is not None:
            lo, hi = f["band"]
            s = f"{f['value']:.4g} {f['unit']} (band {lo:.3g}-{hi:.3g}; status {f['status']}"
            if f.get("from_transcription"):
                s += ", from a transcription"
            return s + ")"
        if f.get("band"):
            return f"{f.get('label')}: {f['band'][0]:.3g}-{f['band'][1]:.3g} {f['unit']}"
        return f"not reported ({f.get('reason', f.get('status'))})"

    def summary_lines(self) -> list[str]:
        t = self.totals
        out = [f"graph {self.graph} ({self.form}), target {self.target}, T = {self.timesteps}, "
               f"residual {self.residual or 'none'}",
               f"activity: {self.activity}",
               f"MACs {t['macs']:,}  SOPs {t['sops']:.4g}  graded SOPs {t['graded_sops']:.4g}  "
               f"neurons {t['neurons']:,}  synapses {t['synapses']:,}",
               f"memory {t['memory_bytes']:,.0f} B  cores {t['cores']}  chips {t['chips']}  "
               f"extra synapses (legalisation) {t['extra_synapses']:,}",
               f"energy/inference: {self._fig(self.energy)}",
               f"latency/inference: {self._fig(self.latency)}"]
        b = self.baseline
        if b.get("ann", {}).get("value") is not None:
            out.append(f"ANN baseline: {self._fig(b['ann'])}; {b['ann']['assumptions']}")
        if b.get("ratio") is not None:
            out.append(f"SNN/ANN energy ratio {b['ratio']:.3g} under: {b['ratio_assumptions']}")
        d = self.delay_depth
        if d:
            out.append(f"delay depth (input to readout): shortest {d['shortest']}, longest "
                       f"{d['longest']} steps ({d['delay']} per layer); T must exceed "
                       f"{d['shortest']}")
        if self.quantization:
            q = self.quantization
            worst = max(q, key=lambda r: r["rel_l2_error"] or 0.0)
            exps = [r["weight_exp"] for r in q]
            out.append(f"quantisation: {len(q)} layers, exponents {min(exps)}..{max(exps)}, "
                       f"worst relative L2 error "
                       f"{worst['rel_l2_error']} ('{worst['name']}')")
        out += [f"VIOLATION: {v}" for v in self.violations]
        out += [f"note: {n}" for n in self.notes]
        return out

    def to_markdown(self) -> str:
        """A Markdown page: summary, per-layer table, graded edges, violations."""
        lines = [f"# Cost report: {self.graph} on {self.target} ({self._mode()})", ""]
        lines += [f"- {s}" for s in self.summary_lines()] + [""]
        cols = ["name", "op", "neuron", "in_kind", "macs", "synapses", "neurons", "sops",
                "graded_sops", "nb_effective", "sinabs_synops", "spikes", "cores",
                "extra_synapses"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in self.rows:
            d = r.as_view()
            lines.append("| " + " | ".join(_fmt(d[c]) for c in cols) + " |")
        if self.graded_edges:
            lines += ["", "## Graded edges", "",
                      "| src | dst | kind | bits | fits | lowering | equation | extra synapses |",
                      "|---|---|---|---|---|---|---|---|"]
            for e in self.graded_edges:
                lines.append(f"| {e.src} | {e.dst} | {e.kind} | {e.bits} | {e.fits} | "
                             f"{e.lowering} | {e.equation} | {e.extra_synapses:,} |")
        if self.quantization:
            lines += ["", "## Quantisation", "",
                      "| layer | op | scale | weight exp | step | levels | rel. L2 error | "
                      "clipped |", "|---|---|---|---|---|---|---|---|"]
            for r in self.quantization:
                lines.append(f"| {r['name']} | {r['op']} | {r['scale']:.4g} | {r['weight_exp']} | "
                             f"{r['weight_step']:.4g} | {r['levels']} | {r['rel_l2_error']} | "
                             f"{r['clipped']} |")
        return "\n".join(lines) + "\n"

    def table(self, console=None) -> None:
        """Print a per-layer table to the terminal (rich)."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        tab = Table(title=f"{self.graph} on {self.target} ({self._mode()})")
        cols = ["name", "op", "in_kind", "macs", "synapses", "neurons", "sops",
                "graded_sops", "nb_effective", "sinabs_synops", "spikes", "cores"]
        heads = {"nb_effective": "NeuroBench", "sinabs_synops": "sinabs"}
        for c in cols:
            tab.add_column(heads.get(c, c),
                           justify="left" if c in ("name", "op", "in_kind") else "right")
        for r in self.rows:
            d = r.as_view()
            tab.add_row(*[_fmt(d[c]) for c in cols])
        console.print(tab)
        for s in self.summary_lines():
            console.print(s, highlight=False, markup=False)

    def plot(self, path, sweep: list | None = None) -> Path:
        """Per-layer stacked breakdown (SOPs, graded SOPs, neuron updates) and, given a
        `sweep` [(rate, report)], the rate-sensitivity curves (SOPs, and energy where the
        target allows a joule figure) with this report's own operating point; saved to
        `path` as PNG."""
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, faster import

        n = 2 if sweep else 1
        fig = Figure(figsize=(7 * n + 3, 4.6))
        axes = fig.subplots(1, n, squeeze=False, gridspec_kw={"width_ratios": [1.6, 1][:n]})
        ax = axes[0][0]
        names = [r.name for r in self.rows]
        bottom = [0.0] * len(names)
        labels = {"sops": "binary SOPs", "graded_sops": "graded SOPs",
                  "updates_active": "neuron updates (firing)",
                  "updates_idle": "neuron updates (idle)"}
        for key, label in labels.items():
            vals = [getattr(r, key) for r in self.rows]
            ax.bar(range(len(names)), vals, bottom=bottom, label=label, width=0.85)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(names)), names, rotation=90,
                      fontsize=max(4, min(8, 400 // max(1, len(names)))))
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylabel("operations per inference")
        ax.legend(fontsize=7)
        ax.set_title(f"{self.graph} on {self.target}, {self._mode()}: per layer\n"
                     f"activity: {self.activity_source}", fontsize=9)
        if sweep:
            self._plot_sweep(axes[0][1], sweep)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        return path

    def _plot_sweep(self, ax, sweep) -> None:
        rates = [r for r, _ in sweep]
        ax.plot(rates, [rep.totals["sops"] for _, rep in sweep], "o-", label="binary SOPs")
        ax.plot(rates, [rep.totals["graded_sops"] for _, rep in sweep], "s-",
                label="graded SOPs")
        t = self.totals
        per = t["neurons"] * self.timesteps
        if per and self.activity_source != "none":
            ax.plot([t["spikes"] / per], [t["sops"]], "k*", markersize=12,
                    label=f"this report ({self.activity_source})")
        ax.set_xlabel("firing-rate prior (spikes per neuron per step)")
        ax.set_ylabel("SOPs per inference")
        ax.set_title("rate sensitivity", fontsize=9)
        energy = [rep.energy.get("value") for _, rep in sweep]
        if all(e is not None for e in energy):
            ax2 = ax.twinx()
            ax2.plot(rates, energy, "d--", color="tab:red", label="energy (J)")
            ax2.set_ylabel(f"energy per inference (J), status {sweep[0][1].energy['status']}")
            ax2.legend(fontsize=7, loc="lower right")
        else:
            ax.text(0.02, 0.6, "energy: not reported\n(no usable per-op constants)",
                    transform=ax.transAxes, fontsize=7)
        ax.legend(fontsize=7, loc="upper left")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class _Unusual(Exception):
    """A value json would encode by a rule `dumps_indented` leaves to it."""


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INF:
        return "Infinity"
    if o == -_INF:
        return "-Infinity"
    return float.__repr__(o)


def _key(k) -> str:
    if type(k) is str or isinstance(k, str):
        return _quote(k)
    if isinstance(k, float):
        return '"' + _float(k) + '"'
    if k is True or k is False or k is None:
        return '"' + {True: "true", False: "false", None: "null"}[k] + '"'
    if isinstance(k, int):
        return '"' + int.__repr__(k) + '"'
    raise _Unusual


_CONST = {None: "null", True: "true", False: "false"}
_KEYS: dict[str, str] = {}  # '"name": ' of the keys seen (bounded)


def _leaf(o) -> str | None:
    """The text of a scalar (json.encoder's checks, in its order: str, None, True, False, int,
    float), or None for a container."""
    t = type(o)
    if t is str:
        return _quote(o)
    if t is float:
        return float.__repr__(o) if -_INF < o < _INF else _float(o)
    if t is int:
        return int.__repr__(o)
    if o is None or o is True or o is False:
        return _CONST[o]
    if isinstance(o, str):
        return _quote(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple, dict)):
        return None
    raise _Unusual


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_FLAT: dict[str, Any] = {}  # item separator -> json's C encoder writing it (or False)


def _flat(o, nl: str) -> str | None:
    """The text json.dumps(indent=1) writes for `o` at the indentation of `nl` when `o` is a
    non-empty dict with str keys or a non-empty list, whose values are all of the exact types
    str, int, float, bool or None (a report row: most of the report), else None.

    Such a container's indented text is the one json's C encoder writes with the indentation
    as item separator, inside the brackets: a row at C speed instead of a Python call per
    value. The C encoder writes the scalars as the Python one does (float repr, NaN and
    Infinity, ASCII escapes)."""
    if not o or not set(map(type, o.values() if type(o) is dict else o)) <= _SCALAR_TYPES:
        return None
    if type(o) is dict and not set(map(type, o)) <= {str}:
        return None
    inner = nl + " "
    enc = _encoder("," + inner)
    if enc is None:
        return None
    text = "".join(enc(o, 0))
    return text[0] + inner + text[1:-1] + nl + text[-1]


def _encoder(sep: str):
    """json's C encoder writing `sep` between items (the key separator ": "), or None
    where there is no C encoder or too many separators were asked for."""
    enc = _FLAT.get(sep)
    if enc is None:
        enc = _FLAT[sep] = c_make_encoder(
            None, None, _quote, None, ": ", sep, False, False, True) \
            if c_make_encoder is not None and len(_FLAT) < 64 else False
    return enc or None


_MARK = "\x00"  # no encoded value holds it: json escapes control characters in strings


def _table(o: list, nl: str) -> str | None:
    """The text json.dumps(indent=1) writes for `o` at the indentation of `nl` when `o` is a
    list of at least two dicts with the same str keys in the same order (the report's rows),
    else None.

    Every scalar value of the table goes through json's C encoder in one call, as one flat
    list with `_MARK` between items; the text is cut at the marks and interleaved with the
    indented keys (quoted once per table, not once per row). A value that is not of
    the exact types str, int, float, bool or None (a row's list) is written by `_emit` at
    its place's indentation."""
    if len(o) < 2 or type(o[0]) is not dict:
        return None
    keys = tuple(o[0])
    width = len(keys)
    if not width or not set(map(type, keys)) <= {str} \
            or not all(type(r) is dict and len(r) == width and tuple(r) == keys for r in o):
        return None
    enc = _encoder(_MARK)
    if enc is None:
        return None
    vals = list(chain.from_iterable(map(dict.values, o)))
    nested = []  # (position, value) of the values written by _emit, found column by column
    for j in range(width):
        if not set(map(type, vals[j::width])) <= _SCALAR_TYPES:
            nested += [(i, vals[i]) for i in range(j, len(vals), width)
                       if type(vals[i]) not in _SCALAR_TYPES]
    for i, _ in nested:
        vals[i] = None
    texts = "".join(enc(vals, 0))[1:-1].split(_MARK)
    row_nl = nl + " "
    item_nl = row_nl + " "
    for i, v in nested:
        part: list[str] = []
        _emit(v, item_nl, part)
        texts[i] = "".join(part)
    # the text before each value: '"key": ' after the row's opening or the previous value
    keyed = [_quote(k) + ": " for k in keys]
    first = ["[" + row_nl + "{" + item_nl + keyed[0]] + ["," + item_nl + k for k in keyed[1:]]
    after = [row_nl + "}," + row_nl + "{" + item_nl + keyed[0]] + first[1:]
    pieces = [""] * (2 * len(texts))
    pieces[0::2] = first + after * (len(o) - 1)
    pieces[1::2] = texts
    pieces.append(row_nl + "}" + nl + "]")
    return "".join(pieces)


def _emit(o, nl: str, out: list) -> None:
    """Append the text json.dumps(indent=1) writes for `o` at the indentation of `nl`."""
    text = _leaf(o)
    if text is not None:
        out.append(text)
        return
    text = _flat(o, nl) if type(o) in (dict, list) else None
    if text is None and type(o) is list:
        text = _table(o, nl)
    if text is not None:
        out.append(text)
        return
    inner = nl + " "
    if isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        sep = "{" + inner
        for k, v in o.items():
            key = _KEYS.get(k) if type(k) is str else None
            if key is None:
                key = _key(k) + ": "
                if type(k) is str and len(_KEYS) < 4096:
                    _KEYS[k] = key  # report field names repeat on every row
            text = _leaf(v)
            if text is None:
                out.append(sep + key)
                _emit(v, inner, out)
            else:
                out.append(sep + key + text)
            sep = "," + inner
        out.append(nl + "}")
        return
    if not o:
        out.append("[]")
        return
    sep = "[" + inner
    for v in o:
        text = _leaf(v)
        if text is None:
            out.append(sep)
            _emit(v, inner, out)
        else:
            out.append(sep + text)
        sep = "," + inner
    out.append(nl + "]")


def dumps_indented(obj) -> str:
    """`json.dumps(obj, indent=1)`, the same text, without json's generator per value when it
    indents (its C encoder serves only unindented output): the JSON report of a 183-layer
    network in a third of the time (docs/costmodel.md "Speed"). Anything but str, int, float,
    bool, None, lists, tuples and dicts goes to json.dumps itself."""
    out: list[str] = []
    try:
        _emit(obj, "\n", out)
    except (_Unusual, RecursionError):
        return json.dumps(obj, indent=1)
    return "".join(out)
