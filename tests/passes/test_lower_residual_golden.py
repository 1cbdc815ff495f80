"""Golden text cases of pass 'lower-residual' (tests/passes/golden/lower_residual/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.lower_residual import lower_residual


@pytest.mark.parametrize("case", golden_cases("lower_residual"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, lower_residual, update_golden)
