"""Golden text cases of pass 'bn-to-bntt' (tests/passes/golden/bn_to_bntt/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.bn_to_bntt import bn_to_bntt


@pytest.mark.parametrize("case", golden_cases("bn_to_bntt"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, bn_to_bntt, update_golden)
