#!/usr/bin/env python3
"""Measure snnc's import graph: edges between packages, counted in import statements.

    python scripts/import_graph.py            # package level (snnc.compiler, snnc.passes, ...)
    python scripts/import_graph.py --split snnc.compiler  # its sub-packages as their own nodes
    python scripts/import_graph.py --level 3  # every module of a top-level package apart
    python scripts/import_graph.py --cycles   # also: module-level import cycles between modules

Reads the source with `ast` (imports nothing). An import statement at module level (also inside
a module-level `if`/`try`) counts as *module-level*; one inside a function body as *lazy*. An
edge A -> B counts the statements in A's modules that import something from B (A != B).
docs/architecture.md states the layers these edges must respect (checked by import-linter).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top-level folders that install as snnc.<folder> (pyproject.toml [tool.setuptools.package-dir]).
PACKAGES = ("compiler", "passes", "backends", "costmodel", "search", "models", "data")


def modules() -> dict[str, Path]:
    """Module name (snnc.x.y) -> source file, for every .py file of the packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out["snnc." + ".".join(parts)] = path
    return out


def _imports(tree: ast.Module, name: str, is_pkg: bool):
    """Yield (imported module name, module_level) for each snnc import statement."""
    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False)
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.startswith("snnc."):
                        yield a.name, top
            elif isinstance(child, ast.ImportFrom):
                mod = child.module or ""
                if child.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - child.level + 1]
                    mod = ".".join(base + ([mod] if mod else []))
                if mod.startswith("snnc."):
                    # `from snnc.pkg import mod` imports the sub-module: name it precisely.
                    yield mod, top
            else:
                yield from visit(child, top)
    yield from visit(tree, True)


def group(module: str, level: int, split: tuple[str, ...] = (), packages=()) -> str:
    """The node a module belongs to: its first `level` dotted parts, one part more inside a
    package named in `split` when that names a sub-package (its own modules stay with it)."""
    parts = module.split(".")
    for pkg in split:
        n = len(pkg.split("."))
        if module.startswith(pkg + ".") and ".".join(parts[:n + 1]) in packages:
            return ".".join(parts[:n + 1])
    return ".".join(parts[:level])


def measure(level: int, split: tuple[str, ...] = ()):
    """(edges: (src, dst) -> [module-level count, lazy count], module edges at module level)."""
    mods = modules()
    packages = {m for m, p in mods.items() if p.name == "__init__.py"}
    edges: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    mod_edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, top in _imports(tree, name, path.name == "__init__.py"):
            # The longest known module that prefixes the target (a name may be an attribute).
            parts = target.split(".")
            while parts and ".".join(parts) not in mods:
                parts.pop()
            if not parts:
                continue
            dst = ".".join(parts)
            if top and dst != name:
                mod_edges[name].add(dst)
            a, b = group(name, level, split, packages), group(dst, level, split, packages)
            if a != b:
                edges[(a, b)][0 if top else 1] += 1
    return dict(edges), mod_edges, mods


def sccs(graph: dict[str, set[str]], nodes) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                    stack.append(nxt); on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main(argv=None) -> int:
    """Print the package import graph (and optionally module-level cycles)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=2,
                    help="dotted parts that name a package: 2 = snnc.compiler, 3 = sub-packages")
    ap.add_argument("--split", action="append", default=[],
                    help="show this package's sub-packages as nodes of their own (repeatable)")
    ap.add_argument("--cycles", action="store_true", help="list module-level import cycles")
    args = ap.parse_args(argv)
    edges, mod_edges, mods = measure(args.level, tuple(args.split))
    print(f"{'from':<28} {'to':<28} {'module-level':>12} {'lazy':>5}")
    for (a, b), (top, lazy) in sorted(edges.items()):
        print(f"{a:<28} {b:<28} {top:>12} {lazy:>5}")
    n_top = sum(v[0] for v in edges.values())
    n_lazy = sum(v[1] for v in edges.values())
    print(f"{len(edges)} edges, {n_top} module-level and {n_lazy} lazy import statements")
    pkg_graph = defaultdict(set)
    for (a, b), (top, lazy) in edges.items():
        if top + lazy:
            pkg_graph[a].add(b)
    pkgs = sorted({x for e in edges for x in e})
    cyc = sccs(pkg_graph, pkgs)
    print("package cycles (module-level and lazy imports):",
          "; ".join(" ".join(c) for c in cyc) or "none")
    top_graph = defaultdict(set)
    for (a, b), (top, _) in edges.items():
        if top:
            top_graph[a].add(b)
    cyc = sccs(top_graph, pkgs)
    print("package cycles (module-level imports only):",
          "; ".join(" ".join(c) for c in cyc) or "none")
    if args.cycles:
        comps = sccs(mod_edges, sorted(mods))
        print(f"module-level import cycles between modules: {len(comps)}")
        for c in comps:
            print("  " + " ".join(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
