"""Golden text cases of pass 'boost' (tests/passes/golden/boost/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.boost import boost


@pytest.mark.parametrize("case", golden_cases("boost"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, boost, update_golden)
