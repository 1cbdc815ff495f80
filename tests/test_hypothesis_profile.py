"""CI runs hypothesis derandomized (tests/conftest.py): a CI run must not fail by chance."""

import os

from hypothesis import settings


def test_ci_profile_is_derandomized():
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.database is None
    if os.environ.get("CI") or os.environ.get("HYPOTHESIS_PROFILE") == "ci":
        assert settings.default.derandomize
