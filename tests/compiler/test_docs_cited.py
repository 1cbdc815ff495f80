"""Code and tests cite the repository's own docs/ (docs/design.md "Interfaces": package code and
tests cite docs/ pages, never a file outside the repository)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A citation of a page that users' checkouts do not have: the team's design file (upper-case
# name) or anything under a sibling shared/ folder. Built from pieces so this file passes itself.
OUTSIDE = re.compile("DESIGN" + r"\.md|shared/" + "docs/")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / p for p in out]


def test_code_and_tests_cite_only_docs_in_the_repository():
    hits = []
    for path in _tracked("*.py"):
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)


def test_every_cited_docs_page_exists():
    pages = set()
    for path in _tracked("*.py", "*.md"):
        pages |= set(re.findall(r"docs/([a-z0-9_-]+\.md)", path.read_text(encoding="utf-8")))
    missing = sorted(p for p in pages if not (ROOT / "docs" / p).is_file())
    assert not missing, f"cited but not in docs/: {missing}"
