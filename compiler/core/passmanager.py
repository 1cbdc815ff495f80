"""Passes: registration, lookup by CLI spec, and the verified pipeline runner.

A pass is a pure function ``Graph -> Graph`` with keyword-only options, registered under its
kebab-case CLI name. Its docstring is its contract (Requires / Guarantees / Implements).

    @register_pass("lower-residual")
    def lower_residual(g: Graph, *, mode: str = "s2s") -> Graph: ...

`--pass NAME{k=v,...}` runs a registered pass; `--pass module:function{k=v,...}` a user's.
`run_pipeline` verifies after every pass and names the failing pass and those before it.

The IR core (docs/architecture.md): it imports nothing above it. The built-in passes register
when `snnc.passes.load_builtin_passes()` imports them.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from snnc.compiler.core.errors import PassFailed, SnncError, VerifyError
from snnc.compiler.core.ir import Graph

log = logging.getLogger("snnc.passes")

PassFn = Callable[..., Graph]
PASSES: dict[str, PassFn] = {}


def register_pass(name: str):
    """Register the decorated function as pass `name` (kebab-case, unique)."""
    def deco(fn: PassFn) -> PassFn:
        if name in PASSES and PASSES[name] is not fn:
            raise ValueError(f"pass '{name}' is registered twice ({PASSES[name].__module__} and "
                             f"{fn.__module__})")
        fn.pass_name = name  # type: ignore[attr-defined]
        PASSES[name] = fn
        return fn
    return deco


@dataclass(frozen=True)
class PassSpec:
    """A pass to run with its options, as written on the command line."""

    name: str
    fn: PassFn = field(repr=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, g: Graph) -> Graph:
        return self.fn(g, **self.options)


def _parse_options(text: str, spec: str) -> dict[str, Any]:
    from snnc.compiler.core.text import _Tokens

    t = _Tokens(text, 1, f"--pass {spec}")
    attrs = t.attrs()
    if not t.done():
        t.fail("unexpected text after the options")
    return dict(attrs)


def parse_pass_spec(spec: str) -> PassSpec:
    """`NAME`, `NAME{k=v}`, `module:function` or `module:function{k=v}` -> PassSpec.

    NAME is looked up among the passes registered so far; `snnc.passes.parse_pass_spec` loads
    the built-in ones first.
    """
    head, brace, rest = spec.partition("{")
    options = _parse_options("{" + rest, spec) if brace else {}
    head = head.strip()
    if ":" in head:
        mod_name, _, fn_name = head.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as err:
            raise SnncError(f"--pass {spec}: cannot import module '{mod_name}' ({err}). Put it on "
                            f"PYTHONPATH or install it.") from None
        fn = getattr(mod, fn_name, None)
        if not callable(fn):
            raise SnncError(f"--pass {spec}: module '{mod_name}' has no function '{fn_name}'.")
        name = getattr(fn, "pass_name", head)
    else:
        if head not in PASSES:
            known = ", ".join(sorted(PASSES))
            raise SnncError(f"--pass {spec}: no pass named '{head}'. Registered passes: {known}. "
                            f"`snnc passes` lists them with their contracts.")
        fn, name = PASSES[head], head
    params = inspect.signature(fn).parameters
    for key in options:
        p = params.get(key)
        if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY:
            allowed = [n for n, q in params.items() if q.kind is inspect.Parameter.KEYWORD_ONLY]
            raise SnncError(f"--pass {spec}: pass '{name}' has no option '{key}'. Its options: "
                            f"{', '.join(allowed) or '(none)'}.")
    return PassSpec(name, fn, options)


def run_pipeline(g: Graph, passes: Sequence[PassSpec | PassFn],
                 progress: Callable[[str], None] | None = None) -> Graph:
    """Run `passes` in order, verifying after each one."""
    from snnc.compiler.core.text import print_ir
    from snnc.compiler.core.verify import verify

    done: list[str] = []
    for p in passes:
        name = p.name if isinstance(p, PassSpec) else getattr(p, "pass_name", p.__name__)
        if progress:
            progress(name)
        before = f" (ran after: {', '.join(done)})" if done else ""
        try:
            out = p(g)
        except SnncError as err:
            raise type(err)(f"in pass '{name}'{before}: {err}") from None
        if not isinstance(out, Graph):
            raise PassFailed(f"pass '{name}' returned {type(out).__name__}, not a Graph")
        try:
            verify(out)
        except VerifyError as err:
            raise PassFailed(f"after pass '{name}'{before}: {err}") from None
        if log.isEnabledFor(logging.DEBUG):
            log.debug("after %s:\n%s", name, print_ir(out))
        done.append(name)
        g = out
    return g


def describe(fn: PassFn) -> str:
    """The contract of a pass: its docstring and options."""
    sig = inspect.signature(fn)
    opts = [f"{n}={p.default!r}" for n, p in sig.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]
    doc = inspect.getdoc(fn) or "(no docstring)"
    return f"options: {', '.join(opts) or '(none)'}\n{doc}"
