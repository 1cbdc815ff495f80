"""Golden cases for pass tests: tests/passes/golden/<pass>/<case>.before.snnc, with
<case>.after.snnc (expected text) or <case>.error.json ({"raises": "UnsupportedOp",
"match": "regex"}), and optional <case>.options.json (the pass's keyword options)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snnc.compiler import errors
from snnc.compiler.text import parse, print_ir
from snnc.compiler.verify import verify

GOLDEN = Path(__file__).parent / "golden"


@dataclass(frozen=True)
class Case:
    """One golden case of one pass."""

    pass_dir: str
    name: str
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    def path(self, suffix: str) -> Path:
        return GOLDEN / self.pass_dir / f"{self.name}.{suffix}"

    @property
    def before(self) -> str:
        return self.path("before.snnc").read_text()


def golden_cases(pass_dir: str) -> list[Case]:
    """Every case in golden/<pass_dir>, sorted by name."""
    out = []
    for p in sorted((GOLDEN / pass_dir).glob("*.before.snnc")):
        name = p.name[: -len(".before.snnc")]
        opt = p.with_name(f"{name}.options.json")
        options = json.loads(opt.read_text()) if opt.exists() else {}
        out.append(Case(pass_dir, name, options))
    if not out:
        raise FileNotFoundError(f"no golden cases in {GOLDEN / pass_dir}")
    return out


def run_golden(case: Case, fn, update: bool) -> None:
    """Run pass `fn` on the case; compare (or, with update, rewrite) its expected output."""
    g = verify(parse(case.before, source=str(case.path("before.snnc"))))
    err_file = case.path("error.json")
    if err_file.exists():
        spec = json.loads(err_file.read_text())
        exc = getattr(errors, spec["raises"])
        with pytest.raises(exc, match=spec["match"]):
            fn(g, **case.options)
        return
    out = verify(fn(g, **case.options))
    text = print_ir(out)
    after = case.path("after.snnc")
    if update:
        after.write_text(text)
    assert after.exists(), f"{after} is missing; run pytest with --update-golden and review it"
    assert text == after.read_text()
    # the expected text is itself a valid graph, and the pass is idempotent on it
    expected = verify(parse(after.read_text()))
    assert fn(expected, **case.options) == expected
    assert re.sub(r"\s+", " ", print_ir(expected)) == re.sub(r"\s+", " ", text)
