"""Golden text cases of pass 'annotate-payloads' (tests/passes/golden/annotate_payloads/)."""

import pytest
from tests.passes.passes_golden import golden_cases, run_golden

from snnc.passes.annotate_payloads import annotate_payloads


@pytest.mark.parametrize("case", golden_cases("annotate_payloads"), ids=str)
def test_golden(case, update_golden):
    run_golden(case, annotate_payloads, update_golden)
