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
