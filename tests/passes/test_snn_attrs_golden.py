"""Golden text cases of pass 'snn-attrs' (tests/passes/golden/snn_attrs/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.snn_attrs import snn_attrs


@pytest.mark.parametrize("case", golden_cases("snn_attrs"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, snn_attrs, update_golden)
