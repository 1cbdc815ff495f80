"""Golden text cases of pass 'spike-linear-outputs' (tests/passes/golden/spike_linear_outputs/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.spike_linear_outputs import spike_linear_outputs


@pytest.mark.parametrize("case", golden_cases("spike_linear_outputs"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, spike_linear_outputs, update_golden)
