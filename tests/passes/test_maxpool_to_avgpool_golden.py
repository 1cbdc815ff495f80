"""Golden text cases of pass 'maxpool-to-avgpool' (tests/passes/golden/maxpool_to_avgpool/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.maxpool_to_avgpool import maxpool_to_avgpool


@pytest.mark.parametrize("case", golden_cases("maxpool_to_avgpool"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, maxpool_to_avgpool, update_golden)
