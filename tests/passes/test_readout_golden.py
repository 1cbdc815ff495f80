"""Golden text cases of pass 'readout' (tests/passes/golden/readout/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.readout import readout


@pytest.mark.parametrize("case", golden_cases("readout"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, readout, update_golden)
