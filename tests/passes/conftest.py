"""Pytest options for the pass tests: `--update-golden` rewrites the golden files."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/passes/golden/*/*.after.snnc (and error files) from the "
                          "passes' current output; review the diff before committing")


@pytest.fixture
def update_golden(request) -> bool:
    """True with --update-golden (or SNNC_UPDATE_GOLDEN=1, as tests/passes/test_fold_bn.py)."""
    import os

    return (bool(request.config.getoption("update_golden", default=False))
            or os.environ.get("SNNC_UPDATE_GOLDEN") == "1")
