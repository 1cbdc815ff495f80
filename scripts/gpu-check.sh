#!/usr/bin/env bash
# GPU check (docs/pytorch-backend.md "Devices"), under 10 minutes: the same few training steps
# on CUDA and on the CPU from one seed (loss curves close, loihi2 fixed-point spikes equal) and
# `snnc train --device cuda`. Exit 0 all pass, 1 a check failed, 2 no GPU.
# PYTHON: the interpreter that imports snnc (default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec timeout 600 "$PY" scripts/gpu_check.py "$@"
