#!/usr/bin/env bash
# Build the Python 3.10 environment for snnc's Lava backend: .venv-lava in the repository root (or $SNNC_LAVA_VENV).
#
# lava-nc 0.10.0 does not import on Python >= 3.11 (a dataclass raises a mutable-default error), and
# lava-dl 0.6.0 pins torch 2.3.x, numpy < 2, networkx <= 2.8.7 and pytest < 8. The Lava backend therefore
# lives in its own virtual environment; snnc itself is installed into it (the core runs on Python 3.10).
#
# Needs a CPython 3.10. Looked up in this order: $SNNC_PY310, pyenv's 3.10.13, `python3.10` on PATH.
# Without one (Debian 12 ships none; pyenv needs internet to build one) there is no route on that
# machine: install Python 3.10 by other means and pass it as SNNC_PY310=/path/to/python3.10.
# Takes about 2 minutes and 5.6 GB (lava-dl pulls CUDA torch wheels).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SNNC_LAVA_VENV:-$ROOT/.venv-lava}"

find_python() {
  if [[ -n "${SNNC_PY310:-}" ]]; then echo "$SNNC_PY310"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local p; p="$(pyenv root)/versions/3.10.13/bin/python"
    if [[ -x "$p" ]]; then echo "$p"; return; fi
  fi
  if [[ -x "$HOME/.pyenv/versions/3.10.13/bin/python" ]]; then
    echo "$HOME/.pyenv/versions/3.10.13/bin/python"; return
  fi
  if command -v python3.10 >/dev/null 2>&1; then command -v python3.10; return; fi
  echo "setup-lava: no Python 3.10 found. lava-nc 0.10.0 needs CPython 3.10 (>=3.10,<3.11)." >&2
  echo "  Install one (e.g. 'pyenv install 3.10.13', needs internet) and re-run, or pass" >&2
  echo "  SNNC_PY310=/path/to/python3.10 scripts/setup-lava.sh" >&2
  exit 2
}

PY="$(find_python)"
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$ver" != "3.10" ]]; then
  echo "setup-lava: $PY is Python $ver; lava-nc 0.10.0 needs 3.10" >&2; exit 2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade "pip<25" "setuptools>=68,<76" wheel

CONS="$(mktemp)"; trap 'rm -f "$CONS"' EXIT
# lava-dl 0.6.0's own pins; never let a later install move them.
cat >"$CONS" <<CONS_EOF
torch==2.3.1
numpy<2
networkx<=2.8.7
pytest<8
CONS_EOF

if ! "$VENV/bin/python" -c 'import lava.lib.dl.netx' >/dev/null 2>&1; then
  "$PIP" install -c "$CONS" "lava-dl==0.6.0"
fi
"$PIP" install -q -c "$CONS" "h5py>=3.8" "pytest<8" "hypothesis>=6" "safetensors>=0.4" "nir>=1.0" tqdm
# snnc itself, editable so the tests see the working tree. Its core must run on Python 3.10.
"$PIP" install -q -c "$CONS" -e "$ROOT"

"$VENV/bin/python" - <<'PY_EOF'
import sys
import lava.lib.dl.netx, lava.magma.core.run_configs  # noqa: F401
import snnc.compiler.ir, snnc.compiler.text, snnc.compiler.serialize  # noqa: F401
import snnc.backends.lava
print("setup-lava: ok, Python", sys.version.split()[0], "lava-dl + snnc import")
PY_EOF
