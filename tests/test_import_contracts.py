"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) are kept,
package code imports the IR core by its `snnc.compiler.core` paths, and importing the IR core
imports nothing above it.

A cycle between modules of different layers needs an import from a lower layer into a higher
one, which the layers contract forbids (directly or through other modules), so a kept contract
also means no such cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "passes", "backends", "costmodel", "search", "models", "data",
            "experiments")

pytest.importorskip("importlinter", reason="pip install import-linter (requirements-test.txt)")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, "
            "no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_import_contracts_are_kept():
    r = _lint(ROOT, ROOT / "pyproject.toml")
    assert r.returncode == 0, f"import-linter (docs/architecture.md):\n{r.stdout}\n{r.stderr}"
    assert "BROKEN" not in r.stdout and "KEPT" in r.stdout


def test_package_code_uses_the_core_paths():
    from snnc.compiler import MOVED

    old = {f"snnc.compiler.{m}" for m in MOVED}
    bad = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for name in names:
                    if any(name == o or name.startswith(o + ".") for o in old):
                        rel = path.relative_to(ROOT)
                        bad.append(f"{rel}:{node.lineno}: {name} -> "
                                   f"{name.replace('snnc.compiler.', 'snnc.compiler.core.', 1)}")
    assert not bad, "old import paths in package code (docs/architecture.md):\n" + "\n".join(bad)


def test_importing_the_ir_core_imports_nothing_above_it():
    code = ("import json, sys; import snnc.compiler.core.ir, snnc.compiler.core.passmanager; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('snnc'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    from snnc.compiler import MOVED

    allowed = {"snnc", "snnc.compiler"} | {f"snnc.compiler.{m}" for m in MOVED}
    above = [m for m in json.loads(out) if not m.startswith("snnc.compiler.core")
             and m not in allowed]
    assert not above, f"importing the IR core imported {above}"


def test_a_forbidden_import_breaks_the_contract(tmp_path):
    """The check can fail: the same contracts on a copy of the tree where the IR core imports
    the API."""
    import shutil

    tree = tmp_path / "tree"
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tree / "snnc" / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    bad = tree / "snnc" / "compiler" / "core" / "payload.py"
    bad.write_text(bad.read_text() + "\nfrom snnc.compiler.api import compile  # noqa\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    # -S: no site, so no .pth maps `snnc` to this checkout; the copy is the only `snnc`.
    import importlinter

    site = str(Path(importlinter.__file__).resolve().parent.parent)
    code = ("import sys; sys.path[:0] = sys.argv[1:3]; "
            "from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[3], no_cache=True, no_logo=True))")
    r = subprocess.run([sys.executable, "-S", "-c", code, str(tree), site, str(config)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0, r.stdout
    assert "snnc.compiler.core.payload -> snnc.compiler.api" in r.stdout


def test_the_public_api_names_resolve():
    import snnc.compiler as api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
    import snnc.compiler.verify  # noqa: F401  (the old module path) does not shadow the function
    from snnc.compiler import verify

    assert callable(verify) and verify.__module__ == "snnc.compiler.core.verify"
    assert api.run_ann.__module__ == "snnc.compiler.core.interpret"


def test_no_package_import_cycle():
    """scripts/import_graph.py (the measurement in docs/architecture.md) finds no cycle between
    the packages, counting lazy imports too."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--split",
                        "snnc.compiler"], capture_output=True, text=True, timeout=120, check=True)
    import re

    assert re.search(r"snnc\.passes +snnc\.compiler\.core +[1-9]", r.stdout)  # edges measured
    assert "package cycles (module-level and lazy imports): none" in r.stdout, r.stdout


def test_every_compiler_module_is_in_a_layer():
    """A new module of snnc.compiler (e.g. a CLI command) must be placed in a layer of the
    contract, or the check would not see it."""
    import re
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in cfg["contracts"] if c["id"] == "layers")["layers"]
    named = set(re.findall(r"snnc\.[a-z_.]+", " ".join(layers)))
    here = {f"snnc.compiler.{p.stem}" for p in (ROOT / "compiler").glob("*.py")
            if p.stem != "__init__"}
    here |= {f"snnc.compiler.{p.parent.name}" for p in (ROOT / "compiler").glob("*/__init__.py")}
    assert not here - named, f"not in a layer of pyproject.toml: {sorted(here - named)}"
