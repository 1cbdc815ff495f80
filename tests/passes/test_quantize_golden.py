"""Golden text cases of pass 'quantize' (tests/passes/golden/quantize/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.quantize import quantize


@pytest.mark.parametrize("case", golden_cases("quantize"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, quantize, update_golden)
