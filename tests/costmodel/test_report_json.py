"""`CostReport.dumps` / `dumps_indented`: the text of `json.dumps(obj, indent=1)`, built
without json's per-value generators (docs/costmodel.md "Speed")."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import numpy as np
import pytest

from snnc.costmodel.report import dumps_indented

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_same_text_as_json_on_reports(path):
    report = json.loads(path.read_text())
    assert dumps_indented(report) == json.dumps(report, indent=1)


class _Str(str, enum.Enum):
    A = "a"


class _Int(int, enum.Enum):
    B = 2


def test_same_text_as_json_on_every_kind_of_value():
    odd = {"floats": [1.5, -0.0, 1e300, 5e-324, float("nan"), float("inf"), -float("inf")],
           "consts": [True, False, None], "empty": [(), {}, [[]], {"x": {}}],
           "text": "é\n\"q\"\t\u2028", "big": 10 ** 30, 3: {2.5: 1, True: 2, None: 3, -1: 4},
           "tuple": (1, (2, [3])), "enums": [_Str.A, _Int.B], _Str.A: 1}
    assert dumps_indented(odd) == json.dumps(odd, indent=1)
    assert dumps_indented([]) == "[]" and dumps_indented(1.0) == "1.0"


def test_what_json_refuses_is_refused_alike():
    for bad in ({"x": np.float32(1)}, {(1, 2): 3}, [object()]):
        with pytest.raises(TypeError):
            json.dumps(bad, indent=1)
        with pytest.raises(TypeError):
            dumps_indented(bad)


def test_same_text_as_json_on_tables():
    """Lists of dicts with the same keys (written as one table): nested values, odd keys and
    values, and the near-misses that are written row by row."""
    rows = [{"a": 1, "b%s": "x%s\x00\n", "c": [1, [2.5, {"d": None}]], "e": float("nan")},
            {"a": True, "b%s": None, "c": None, "e": -0.0},
            {"a": 10 ** 30, "b%s": "é", "c": {}, "e": [_Str.A, _Int.B]}]
    cases = [rows, rows[:2], {"t": rows, "u": [rows]}, [dict(r, z=1) if i else r
                                                          for i, r in enumerate(rows)],
             [rows[0], dict(reversed(list(rows[1].items())))], [rows[0], [1]], [{}, {}],
             [{_Str.A: 1}, {_Str.A: 2}], [{"a": 1}, {"a": 2}, 3]]
    for obj in cases:
        assert dumps_indented(obj) == json.dumps(obj, indent=1)


def test_report_dumps_is_json_of_to_json():
    """`CostReport.dumps` writes the rows from their own dicts: the text of
    json.dumps(to_json(), indent=1) still, with a list field and an attribute set on a row
    that is not a field (left out)."""
    from snnc.costmodel import estimate
    from tests.costmodel.test_counts import CASES, _graph

    rep = estimate(_graph(CASES[0])[0], target="generic")
    assert rep.dumps() == json.dumps(rep.to_json(), indent=1)
    rep.rows[0].hosted_on = ["lif"]
    rep.rows[0].extra = 1
    text = rep.dumps()
    assert text == json.dumps(rep.to_json(), indent=1) and '"extra"' not in text
    assert json.loads(text)["layers"][0]["hosted_on"] == ["lif"]
