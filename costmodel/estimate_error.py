"""The typical error of the estimate mode per layer-input kind (docs/costmodel.md "Estimate
mode"), from a table measured by benchmarks/estimate_error.py and shipped as
``estimate_error.json``: for each kind, the median and the 90th percentile of
|estimate - measured| / measured of a layer's SOPs, where the estimate is given the exact
measured firing rate of every lif layer (so the table isolates the error of the propagation
rules, not of the rate prior).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

TABLE = Path(__file__).with_name("estimate_error.json")


@functools.lru_cache(maxsize=1)
def table() -> dict:
    """{kind: {"median": e, "p90": e, "layers": n}, "_source": "..."} (empty if missing)."""
    try:
        return json.loads(TABLE.read_text())
    except FileNotFoundError:
        return {}


def error_note(rows) -> str:
    """The report note of an estimate-mode report: what it is, and the typical error of each
    layer kind present in `rows`."""
    tab = table()
    kinds = sorted({r.in_kind for r in rows if r.in_kind})
    parts = []
    for k in kinds:
        e = tab.get(k)
        parts.append(f"{k} {100 * e['median']:.0f} % (p90 {100 * e['p90']:.0f} %)" if e
                     else f"{k} not measured")
    return ("estimate mode: SOPs = rate priors propagated through the graph, not counted "
            "events; typical per-layer error with exact per-layer rates "
            f"({tab.get('_source', 'no table')}): " + ", ".join(parts) +
            "; plus the error of the rate priors themselves. Use --calibrate DATA for "
            "measured counts")
