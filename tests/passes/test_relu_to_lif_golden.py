"""Golden text cases of pass 'relu-to-lif' (tests/passes/golden/relu_to_lif/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.relu_to_lif import relu_to_lif


@pytest.mark.parametrize("case", golden_cases("relu_to_lif"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, relu_to_lif, update_golden)
