"""Golden text cases of pass 'legalize-graded' (tests/passes/golden/legalize_graded/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.legalize_graded import legalize_graded


@pytest.mark.parametrize("case", golden_cases("legalize_graded"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, legalize_graded, update_golden)
