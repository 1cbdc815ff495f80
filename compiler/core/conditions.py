"""Executable pass contracts: conditions on a graph that the pass manager checks.

    from snnc.compiler.core.conditions import form_is, lacks_ops, no_edges
    @register_pass("lower-residual", requires=[form_is(Form.SNN)],
                   ensures=[no_edges(EdgeKind.ASC), has_attrs("lowered")])

A condition is a :class:`Condition` (a description and a check) or any function of the graph
(optionally also of the pass's options, as a dict) returning None or True when it holds, and
False or a string saying what is wrong when it does not. `run_pipeline` checks a pass's
`requires` before it runs and its `ensures` after (docs/passes.md "Contracts").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from snnc.compiler.core.ir import EdgeKind, Form, Graph

Check = Callable[..., "bool | str | None"]


@dataclass(frozen=True)
class Condition:
    """A named condition on a graph (and the pass's options). `check` returns None (holds) or
    what is wrong."""

    text: str
    check: Check

    def __call__(self, g: Graph, options: Mapping[str, Any] | None = None) -> str | None:
        return failure(self.check, g, options)

    def __str__(self) -> str:
        return self.text


def failure(cond: Condition | Check, g: Graph,
            options: Mapping[str, Any] | None = None) -> str | None:
    """None when `cond` holds on `g` (with the pass's `options`), else what is wrong."""
    fn = cond.check if isinstance(cond, Condition) else cond
    params = parameters(fn)
    n_args = 1 if params is None else len(params)
    out = fn(g, dict(options or {})) if n_args >= 2 else fn(g)
    if out is None or out is True:
        return None
    if out is False:
        return "it does not hold"
    return str(out)


def parameters(fn: Callable) -> Mapping[str, inspect.Parameter] | None:
    """`inspect.signature(fn).parameters`, read once per callable (None when it has no
    readable signature): the pass manager asks for a pass's options and each condition's
    arity before and after every pass, and reading signatures was most of that cost."""
    try:
        return _parameters(fn)
    except TypeError:  # an unhashable callable: read each time
        return _parameters.__wrapped__(fn)


@functools.lru_cache(maxsize=512)
def _parameters(fn: Callable) -> Mapping[str, inspect.Parameter] | None:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None


def describe(cond: Condition | Check) -> str:
    """The text of a condition: its `text`, or a plain function's docstring or name."""
    if isinstance(cond, Condition):
        return cond.text
    doc = inspect.getdoc(cond)
    return doc.splitlines()[0] if doc else getattr(cond, "__name__", repr(cond))


def form_is(form: Form) -> Condition:
    """The graph is in `form` (ANN or SNN)."""
    def check(g: Graph) -> str | None:
        return None if g.form is form else f"the graph is in {g.form.value.upper()} form"
    return Condition(f"{form.value.upper()} form", check)


def lacks_ops(*ops: str) -> Condition:
    """No node has one of `ops`."""
    def check(g: Graph) -> str | None:
        found = g.by_op(*ops)
        if found:
            names = ", ".join(f"'{n.name}' ({n.op})" for n in found[:3])
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            return f"nodes {names}{more} remain"
        return None
    return Condition(f"no {' / '.join(ops)} node", check)


def no_edges(*kinds: EdgeKind) -> Condition:
    """No edge is of one of `kinds`."""
    def check(g: Graph) -> str | None:
        found = [e for e in g.edges if e.kind in kinds]
        if found:
            e = found[0]
            what = "/".join(k.value.upper() for k in kinds)
            return f"{len(found)} {what} edge(s) remain, e.g. '{e.src}' -> '{e.dst}'"
        return None
    return Condition(f"no {' / '.join(k.value.upper() for k in kinds)} edge", check)


def has_attrs(*keys: str) -> Condition:
    """The graph has the attributes `keys`."""
    def check(g: Graph) -> str | None:
        missing = [k for k in keys if k not in g.attrs]
        return f"graph attr(s) {', '.join(missing)} missing" if missing else None
    return Condition(f"graph attrs {', '.join(keys)}", check)


def outputs_are(*ops: str) -> Condition:
    """Every graph output is a node with one of `ops`."""
    def check(g: Graph) -> str | None:
        bad = [o for o in g.outputs if g.node(o).op not in ops]
        return (f"output '{bad[0]}' is a {g.node(bad[0]).op}" if bad else None)
    return Condition(f"every output is a {' / '.join(ops)}", check)


def every_edge_has_payload() -> Condition:
    """Every edge carries a payload (annotate-payloads ran)."""
    def check(g: Graph) -> str | None:
        bad = [e for e in g.edges if e.payload is None]
        return (f"{len(bad)} edge(s) without payload, e.g. '{bad[0].src}' -> '{bad[0].dst}'"
                if bad else None)
    return Condition("every edge has a payload", check)


def inputs_encoded() -> Condition:
    """Every graph input is read only by encoders."""
    def check(g: Graph) -> str | None:
        for n in g.input_nodes():
            # `g.users`, by one scan: not an index of every node's edges for one node
            readers = [e.dst for e in g.edges if n.name in (e.src, e.projection)]
            bad = [r for r in readers if g.node(r).op != "encoder"]
            if bad or not readers:
                return f"input '{n.name}' is read by '{bad[0] if bad else 'nothing'}'"
        return None
    return Condition("every input is read only by encoders", check)


def skips_have_sources() -> Condition:
    """Every DSC/ASC edge names an existing source at least one layer upstream."""
    kinds = (EdgeKind.ASC, EdgeKind.DSC)

    def check(g: Graph) -> str | None:
        has = g.has_node
        for e in g.edges:  # ~1,000 per check on densenet121, several checks per pipeline
            if e.kind in kinds and (e.hops < 1 or not has(e.src)):
                return f"skip edge '{e.src}' -> '{e.dst}' has hops {e.hops}"
        return None
    return Condition("every ASC/DSC edge has a source >= 1 layer upstream", check)


def either(*conds: Condition) -> Condition:
    """At least one of `conds` holds."""
    def check(g: Graph, options: dict) -> str | None:
        fails = [c(g, options) for c in conds]
        return None if any(f is None for f in fails) else "; ".join(f for f in fails if f)
    return Condition(" or ".join(c.text for c in conds), check)


def when(option: str, values: Iterable[Any], cond: Condition) -> Condition:
    """`cond`, checked only when the pass's option `option` is one of `values`."""
    vals = tuple(values)

    def check(g: Graph, options: dict) -> str | None:
        return cond(g, options) if options.get(option) in vals else None
    return Condition(f"{cond.text} (when {option} is {' or '.join(map(str, vals))})", check)
