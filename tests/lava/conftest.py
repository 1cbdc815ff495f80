"""Lava tests run only in the Python 3.10 environment (.venv-lava, scripts/setup-lava.sh).

Without lava they skip with a message saying how to build it; with SNNC_REQUIRE_LAVA=1 (CI)
they *fail* instead, so a CI run can never pass with the Lava checks silently skipped.
"""

from __future__ import annotations

import os

import pytest

try:
    import lava.lib.dl.netx  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401

    LAVA_ERROR = None
except Exception as err:  # ImportError, or lava's dataclass error on Python >= 3.11
    LAVA_ERROR = f"{type(err).__name__}: {err}"

HOW = ("build it with scripts/setup-lava.sh and run .venv-lava/bin/python -m pytest tests/lava")


def _here(item) -> bool:
    return str(item.fspath).startswith(os.path.dirname(__file__))


def pytest_collection_modifyitems(config, items):
    """Mark every test here `lava`."""
    for item in items:
        if _here(item):
            item.add_marker(pytest.mark.lava)


def pytest_runtest_setup(item):
    """Skip (locally) or fail (SNNC_REQUIRE_LAVA=1) every test here when lava is missing."""
    if LAVA_ERROR is None or not _here(item):
        return
    msg = f"lava-dl is not importable here ({LAVA_ERROR}); {HOW}"
    if os.environ.get("SNNC_REQUIRE_LAVA") == "1":
        pytest.fail("SNNC_REQUIRE_LAVA=1 but " + msg, pytrace=False)
    pytest.skip(msg)
