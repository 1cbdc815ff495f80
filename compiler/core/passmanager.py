"""Passes: registration, lookup by CLI spec, and the verified pipeline runner.

A pass is a pure function ``Graph -> Graph`` with keyword-only options, registered under its
kebab-case CLI name. Its docstring is its contract (Requires / Guarantees / Implements).

    @register_pass("lower-residual")
    def lower_residual(g: Graph, *, mode: str = "s2s") -> Graph: ...

`--pass NAME{k=v,...}` runs a registered pass; `--pass module:function{k=v,...}` a user's.
`run_pipeline` verifies after every pass (snnc's own passes: once, at the end, re-running
verified after every pass if anything fails) and names the failing pass and those before it.

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

from snnc.compiler.core.conditions import (
    Condition, describe as describe_condition, failure, parameters,
)
from snnc.compiler.core.errors import PassFailed, SnncError, VerifyError
from snnc.compiler.core.ir import Graph

log = logging.getLogger("snnc.passes")

PassFn = Callable[..., Graph]
PASSES: dict[str, PassFn] = {}


Cond = Condition | Callable[..., Any]


class PassContractError(RuntimeError):
    """A built-in pass broke its own `ensures`: a bug in snnc (exit 1, with a traceback)."""


def register_pass(name: str, *, requires: Sequence[Cond] = (), ensures: Sequence[Cond] = ()):
    """Register the decorated function as pass `name` (kebab-case, unique).

    `requires` / `ensures`: conditions on the graph (snnc.compiler.core.conditions) that
    `run_pipeline` checks before / after the pass runs.
    """
    def deco(fn: PassFn) -> PassFn:
        if name in PASSES and PASSES[name] is not fn:
            raise ValueError(f"pass '{name}' is registered twice ({PASSES[name].__module__} and "
                             f"{fn.__module__})")
        fn.pass_name = name  # type: ignore[attr-defined]
        fn.requires = tuple(requires)  # type: ignore[attr-defined]
        fn.ensures = tuple(ensures)  # type: ignore[attr-defined]
        PASSES[name] = fn
        return fn
    return deco


def _effective_options(fn: PassFn, options: dict[str, Any]) -> dict[str, Any]:
    """The pass's keyword options: its defaults, updated with those given."""
    params = parameters(fn)
    if params is None:
        return dict(options)
    out = {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
           and p.default is not inspect.Parameter.empty}
    out.update(options)
    return out


def check_requires(name: str, fn: PassFn, g: Graph, options: dict[str, Any],
                   before: str = "") -> None:
    """Raise PassFailed naming the pass and the condition when a `requires` fails on `g`."""
    opts = _effective_options(fn, options)
    for cond in getattr(fn, "requires", ()):
        why = failure(cond, g, opts)
        if why is not None:
            raise PassFailed(f"pass '{name}' requires {describe_condition(cond)}, but on graph "
                             f"'{g.name}' {why}{before}. Run it after the passes that establish "
                             f"this (`snnc passes -v` lists each pass's requires and ensures).")


def check_ensures(name: str, fn: PassFn, g: Graph, options: dict[str, Any],
                  before: str = "") -> None:
    """Raise when the graph a pass returned breaks one of its `ensures`: PassContractError for
    snnc's own passes (a bug), PassFailed for a user's."""
    opts = _effective_options(fn, options)
    for cond in getattr(fn, "ensures", ()):
        why = failure(cond, g, opts)
        if why is not None:
            msg = (f"pass '{name}' ensures {describe_condition(cond)}, but on graph '{g.name}' "
                   f"after it {why}{before}")
            if str(getattr(fn, "__module__", "")).startswith("snnc."):
                raise PassContractError(msg + ": a bug in snnc, please report it")
            raise PassFailed(msg + f". Fix the pass ({fn.__module__}.{fn.__name__}).")


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


def parse_pass_option(text: str) -> tuple[str, str, Any]:
    """`PASS.KEY=VALUE` (e.g. ``quantize.on_clip=report``) -> (pass, key, typed value); the
    value is parsed as in `NAME{k=v}`."""
    head, eq, value = text.partition("=")
    name, dot, key = head.strip().rpartition(".")
    if not eq or not dot or not name or not key:
        raise SnncError(f"--pass-option {text!r}: write PASS.KEY=VALUE, e.g. "
                        f"quantize.on_clip=report (`snnc passes -v` lists every pass's options).")
    opts = _parse_options("{" + f"{key}={value.strip()}" + "}", text)
    return name, key, opts[key]


def apply_pass_options(specs: Sequence[PassSpec], options: Sequence[str]) -> list[PassSpec]:
    """`specs` with `--pass-option PASS.KEY=VALUE` settings merged into the passes of that name;
    an option for a pass that is not in `specs`, or that the pass does not take, is an error."""
    out = list(specs)
    for text in options:
        name, key, value = parse_pass_option(text)
        hits = [i for i, s in enumerate(out) if s.name == name]
        if not hits:
            raise SnncError(f"--pass-option {text}: pass '{name}' is not in this pipeline "
                            f"({', '.join(s.name for s in out)}).")
        for i in hits:
            params = inspect.signature(out[i].fn).parameters
            p = params.get(key)
            if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY:
                allowed = [n for n, q in params.items()
                           if q.kind is inspect.Parameter.KEYWORD_ONLY]
                raise SnncError(f"--pass-option {text}: pass '{name}' has no option '{key}'. "
                                f"Its options: {', '.join(allowed) or '(none)'}.")
            out[i] = PassSpec(out[i].name, out[i].fn, {**out[i].options, key: value})
    return out


def run_pipeline(g: Graph, passes: Sequence[PassSpec | PassFn],
                 progress: Callable[[str], None] | None = None, *,
                 verify_each: bool | None = None) -> Graph:
    """Run `passes` in order: each pass's `requires` before it, its `ensures` and the verifier
    after it.

    When every pass is one of snnc's own (and debug logging is off), the graphs between passes
    are verified once, at the end (`verify_each=False`): the passes run with their `build()`
    checks deferred and the result gets the verifier's full check. Should anything fail on the
    way (a refusal, a requires/ensures, the final check, any exception), the pipeline runs
    again from `g` verifying after every pass, so the error raised is the one that names the
    pass, exactly as `verify_each=True` (the passes are pure functions: the same graphs come
    out). A user's pass (`--pass module:function`) always gets the check after every pass.
    """
    from snnc.compiler.core.ir import deferred_verify
    from snnc.compiler.core.verify import verify

    if verify_each is None:
        verify_each = log.isEnabledFor(logging.DEBUG) or not all(_builtin(p) for p in passes)
    if not verify_each:
        try:
            with deferred_verify():
                out = _run(g, passes, progress, check=False)
            if out is not g and g._index.get("verified") and "prior" not in out._index:
                idx = g._idx()  # shape rules re-run only where a node differs from `g`'s
                out._index["prior"] = (idx["by_name"], idx["ins"])
            return verify(out)
        except Exception:  # noqa: BLE001 - re-run below: it raises the error naming the pass
            progress = None  # the passes were announced once already
    return _run(g, passes, progress, check=True)


def _builtin(p: PassSpec | PassFn) -> bool:
    fn = p.fn if isinstance(p, PassSpec) else p
    return str(getattr(fn, "__module__", "")).startswith("snnc.")


def _run(g: Graph, passes: Sequence[PassSpec | PassFn],
         progress: Callable[[str], None] | None, check: bool) -> Graph:
    from snnc.compiler.core.text import print_ir
    from snnc.compiler.core.verify import verify

    done: list[str] = []
    for p in passes:
        name = p.name if isinstance(p, PassSpec) else getattr(p, "pass_name", p.__name__)
        if progress:
            progress(name)
        before = f" (ran after: {', '.join(done)})" if done else ""
        fn, options = (p.fn, p.options) if isinstance(p, PassSpec) else (p, {})
        check_requires(name, fn, g, options, before)
        try:
            out = p(g)
        except SnncError as err:
            raise type(err)(f"in pass '{name}'{before}: {err}") from None
        if not isinstance(out, Graph):
            raise PassFailed(f"pass '{name}' returned {type(out).__name__}, not a Graph")
        if check:
            try:
                verify(out)
            except VerifyError as err:
                raise PassFailed(f"after pass '{name}'{before}: {err}") from None
        check_ensures(name, fn, out, options, before)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("after %s:\n%s", name, print_ir(out))
        done.append(name)
        g = out
    return g


def describe(fn: PassFn) -> str:
    """The contract of a pass: its options, checked requires/ensures and docstring."""
    sig = inspect.signature(fn)
    opts = [f"{n}={p.default!r}" for n, p in sig.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]
    doc = inspect.getdoc(fn) or "(no docstring)"
    req = "; ".join(describe_condition(c) for c in getattr(fn, "requires", ())) or "(none)"
    ens = "; ".join(describe_condition(c) for c in getattr(fn, "ensures", ())) or "(none)"
    return (f"options: {', '.join(opts) or '(none)'}\nchecked requires: {req}\n"
            f"checked ensures: {ens}\n{doc}")
