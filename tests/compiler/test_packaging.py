"""Packaging stays in step with the tree (STYLE.md "Layout")."""

import re
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TOP = {"compiler", "passes", "backends", "costmodel", "models", "data", "search", "experiments"}


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for top in TOP:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([mapping_key(mapping, top), *rel.parts]))
    assert found == listed, (f"folders with __init__.py but not in pyproject: {found - listed}; "
                             f"listed but missing: {listed - found}")


def mapping_key(mapping: dict, folder: str) -> str:
    (key,) = [k for k, v in mapping.items() if v == folder]
    return key


def test_no_top_level_snnc_folder_shadows_the_namespace():
    assert not (ROOT / "snnc").exists()


def test_code_imports_through_the_snnc_namespace_only():
    bare = re.compile(rf"^\s*(from|import)\s+({'|'.join(sorted(TOP))})(\.|\s|$)", re.M)
    offenders = []
    for top in [*TOP, "tests", "benchmarks"]:
        for py in (ROOT / top).rglob("*.py"):
            for m in bare.finditer(py.read_text(errors="replace")):
                offenders.append(f"{py.relative_to(ROOT)}: {m.group(0).strip()}")
    assert not offenders, "bare imports load a second copy of snnc: " + "; ".join(offenders)
