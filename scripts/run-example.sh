#!/usr/bin/env bash
# The main job on the bundled example: compile ResNet-20 (ONNX, exported by torch) into an SNN
# with spike-to-spike residuals for Loihi 2, and print its cost report.
set -euo pipefail
cd "$(dirname "$0")/.."
SNNC_SKIP_TEST_DEPS=1 scripts/setup.sh
.venv/bin/snnc compile models/examples/resnet20.onnx --residual s2s --target loihi2 -o out/resnet20.snnc "$@"
cat out/resnet20.snnc/cost.md 2>/dev/null || true
