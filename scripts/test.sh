#!/usr/bin/env bash
# Runs the whole test suite from a fresh machine: builds .venv (and .venv-lava for the Lava
# backend's tests), then runs pytest in each. Exit status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Derandomized hypothesis (tests/conftest.py): the suite gives the same result on every machine.
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests --ignore=tests/lava "$@" || status=$?
# The wheel with only its declared dependencies runs the README's main-environment commands.
scripts/check-wheel.sh || status=$?
if [ -f scripts/setup-lava.sh ] && [ -d tests/lava ]; then
  scripts/setup-lava.sh
  SNNC_REQUIRE_LAVA=1 .venv-lava/bin/python -m pytest -q -p no:cacheprovider tests/lava -rs || status=$?
fi
exit $status
