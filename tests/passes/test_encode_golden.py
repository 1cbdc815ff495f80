"""Golden text cases of pass 'encode' (tests/passes/golden/encode/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.encode import encode


@pytest.mark.parametrize("case", golden_cases("encode"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, encode, update_golden)
