"""The stable text form of the IR: `print_ir` writes it, `parse` reads it back to an equal graph.

    graph basic_block(%x: f32[1,64,32,32]) ann {
      %conv1 = conv2d(%x) {out=64, k=(3,3), stride=(1,1), pad=(1,1)} [conv1.weight] : f32[1,64,32,32]
      %relu1 = relu(%conv1)                                                    : f32[1,64,32,32]
      %conv2 = conv2d(%relu1) {out=64, k=(3,3), stride=(1,1), pad=(1,1)} [conv2.weight] : f32[...]
      %add   = add(%conv2, %x ~ASC n=2)                                        : f32[1,64,32,32]
      return %add
    }

An operand is `%src`, then for a skip `~KIND n=HOPS`, `proj=%node` when a projection delivers
the value, per-edge attributes `key=value`, and in SNN form the payload (`binary`, `count`,
`graded`). Graph attributes (time steps, semantics, target) follow the form in braces. Lines
starting with `#` are comments. Parameters are listed by key in brackets; their values live in
safetensors/JSON, not in the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from snnc.compiler.core.errors import ParseError
from snnc.compiler.core.ir import (
    EMPTY, Attrs, Edge, EdgeKind, Form, Graph, GraphBuilder, Node, Payload,
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_KEYWORDS = {"true", "false", "none", "binary", "count", "graded"}


# -- printing ---------------------------------------------------------------------------------
def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (EdgeKind, Payload, Form)):
        v = v.value
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        if _IDENT.match(v) and v not in _KEYWORDS:
            return v
        return json.dumps(v)
    if isinstance(v, tuple):
        inner = ",".join(format_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    raise TypeError(f"cannot print attribute value {v!r}")


def format_attrs(attrs: Attrs) -> str:
    return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in attrs.items()) + "}"


def format_shape(shape: tuple[int, ...]) -> str:
    return "f32[" + ",".join(str(d) for d in shape) + "]"


def format_operand(e: Edge) -> str:
    parts = [f"%{e.src}"]
    if e.kind is not EdgeKind.DATA:
        parts.append(f"~{e.kind.value}")
    if e.kind is not EdgeKind.DATA or e.hops != 1:
        parts.append(f"n={e.hops}")
    if e.projection is not None:
        parts.append(f"proj=%{e.projection}")
    parts.extend(f"{k}={format_value(v)}" for k, v in e.attrs.items())
    if e.payload is not None:
        parts.append(e.payload.value)
    return " ".join(parts)


def format_node(g: Graph, n: Node) -> tuple[str, str]:
    """The line for `n`, split into (body, shape) so callers can align the shapes."""
    ops = ", ".join(format_operand(e) for e in g.inputs_of(n.name))
    body = f"%{n.name} = {n.op}({ops})"
    if n.attrs:
        body += " " + format_attrs(n.attrs)
    if n.params:
        body += " [" + ", ".join(n.params) + "]"
    return body, format_shape(n.shape)


def print_ir(g: Graph) -> str:
    """The graph as stable text, one line per node, shapes aligned."""
    ins = [n for n in g.nodes if n.op == "input"]
    header = ", ".join(
        f"%{n.name}: {format_shape(n.shape)}" + (" " + format_attrs(n.attrs) if n.attrs else "")
        for n in ins)
    head = f"graph {g.name}({header}) {g.form.value}"
    if g.attrs:
        head += " " + format_attrs(g.attrs)
    lines = [head + " {"]
    bodies = [format_node(g, n) for n in g.nodes if n.op != "input"]
    width = min(max((len(b) for b, _ in bodies), default=0), 90)
    for body, shape in bodies:
        lines.append(f"  {body.ljust(width)} : {shape}")
    lines.append("  return " + ", ".join(f"%{o}" for o in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- parsing ----------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<num>[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)
        (?![A-Za-z_]))
    | (?P<ref>%[A-Za-z0-9_.\-]+)
    | (?P<kind>~[A-Za-z0-9]+)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_.\-]*)
    | (?P<punct>[(){}\[\],=:])
    )""", re.VERBOSE)


class _Tokens:
    def __init__(self, text: str, lineno: int, source: str):
        self.text, self.lineno, self.source = text, lineno, source
        self.toks: list[tuple[str, str]] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if not m or m.end() == pos:
                self.fail(f"unexpected text at column {pos + 1}: {stripped[pos:pos + 20]!r}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, msg: str):
        raise ParseError(f"{self.source}:{self.lineno}: {msg}\n    {self.text.strip()}")

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            self.fail("unexpected end of line")
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        t = self.next()
        if t[1] != value:
            self.fail(f"expected {value!r}, found {t[1]!r}")

    def accept(self, value: str) -> bool:
        t = self.peek()
        if t is not None and t[1] == value and t[0] in ("punct", "ident"):
            self.i += 1
            return True
        return False

    def done(self) -> bool:
        return self.i >= len(self.toks)

    def value(self) -> Any:
        kind, text = self.next()
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
        if kind == "ident":
            return {"true": True, "false": False, "none": None}.get(text, text)
        if text == "(":
            items: list[Any] = []
            while not self.accept(")"):
                items.append(self.value())
                if not self.accept(","):
                    self.expect(")")
                    break
            return tuple(items)
        self.fail(f"expected a value, found {text!r}")

    def attrs(self) -> Attrs:
        self.expect("{")
        items: dict[str, Any] = {}
        while not self.accept("}"):
            kind, key = self.next()
            if kind != "ident":
                self.fail(f"expected an attribute name, found {key!r}")
            self.expect("=")
            items[key] = self.value()
            if not self.accept(","):
                self.expect("}")
                break
        return Attrs(items)

    def shape(self) -> tuple[int, ...]:
        kind, text = self.next()
        if text != "f32":
            self.fail(f"expected a shape like f32[1,3,32,32], found {text!r}")
        self.expect("[")
        dims: list[int] = []
        while not self.accept("]"):
            kind, text = self.next()
            if kind != "num":
                self.fail(f"expected a dimension, found {text!r}")
            dims.append(int(text))
            if not self.accept(","):
                self.expect("]")
                break
        return tuple(dims)


def _operand(t: _Tokens, dst: str, port: int) -> Edge:
    kind, text = t.next()
    if kind != "ref":
        t.fail(f"expected an operand like %name, found {text!r}")
    src = text[1:]
    ekind, hops, proj, payload = EdgeKind.DATA, 1, None, None
    extra: dict[str, Any] = {}
    while True:
        tok = t.peek()
        if tok is None or tok[1] in (",", ")"):
            break
        k, txt = t.next()
        if k == "kind":
            try:
                ekind = EdgeKind(txt[1:])
            except ValueError:
                t.fail(f"unknown edge kind {txt!r}; use one of "
                       + ", ".join("~" + e.value for e in EdgeKind))
        elif k == "ident" and txt in ("binary", "count", "graded"):
            payload = Payload(txt)
        elif k == "ident":
            t.expect("=")
            if txt == "n":
                hops = t.value()
            elif txt == "proj":
                pk, ptxt = t.next()
                if pk != "ref":
                    t.fail(f"proj= takes a node reference like %name, found {ptxt!r}")
                proj = ptxt[1:]
            else:
                extra[txt] = t.value()
        else:
            t.fail(f"unexpected {txt!r} in operand")
    return Edge(src, dst, port, ekind, hops, proj, payload, Attrs(extra) if extra else EMPTY)


def parse(text: str, *, source: str = "<text>") -> Graph:
    """Parse the text form back into a structure-only graph (params None)."""
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ParseError(f"{source}: empty IR text")
    lineno, head = lines[0]
    t = _Tokens(head, lineno, source)
    if t.next() != ("ident", "graph"):
        t.fail("the text must start with 'graph NAME(...)'")
    kind, name = t.next()
    if kind != "ident":
        t.fail(f"expected the graph's name, found {name!r}")
    b = GraphBuilder(name)
    t.expect("(")
    while not t.accept(")"):
        k, ref = t.next()
        if k != "ref":
            t.fail(f"expected an input like %x: f32[...], found {ref!r}")
        t.expect(":")
        shape = t.shape()
        attrs = t.attrs() if (t.peek() or ("", ""))[1] == "{" else EMPTY
        b.add(Node(ref[1:], "input", attrs, shape))
        if not t.accept(","):
            t.expect(")")
            break
    k, form = t.next()
    try:
        b.form = Form(form)
    except ValueError:
        t.fail(f"expected the form 'ann' or 'snn', found {form!r}")
    if t.peek() == ("punct", "{") and len(t.toks) - t.i > 1:
        b.attrs = t.attrs()
    t.expect("{")
    if not t.done():
        t.fail("unexpected text after '{'")
    ended = False
    for lineno, line in lines[1:]:
        t = _Tokens(line, lineno, source)
        if ended:
            t.fail("text after the closing '}'")
        first = t.peek()
        if first == ("punct", "}"):
            ended = True
            continue
        if first == ("ident", "return"):
            t.next()
            while not t.done():
                k, ref = t.next()
                if k != "ref":
                    t.fail(f"expected %name after return, found {ref!r}")
                b.outputs.append(ref[1:])
                t.accept(",")
            continue
        k, ref = t.next()
        if k != "ref":
            t.fail(f"expected a line like '%name = op(...) : f32[...]', found {ref!r}")
        t.expect("=")
        k, op = t.next()
        if k != "ident":
            t.fail(f"expected an op name, found {op!r}")
        name = ref[1:]
        t.expect("(")
        edges: list[Edge] = []
        while not t.accept(")"):
            edges.append(_operand(t, name, len(edges)))
            if not t.accept(","):
                t.expect(")")
                break
        attrs = t.attrs() if t.peek() == ("punct", "{") else EMPTY
        params: list[str] = []
        if t.accept("["):
            while not t.accept("]"):
                k, key = t.next()
                params.append(key)
                if not t.accept(","):
                    t.expect("]")
                    break
        t.expect(":")
        shape = t.shape()
        if not t.done():
            t.fail(f"unexpected {t.peek()[1]!r} after the shape")
        if name in b.nodes:
            t.fail(f"node %{name} is defined twice")
        b.add(Node(name, op, attrs, shape, tuple(params)), edges)
    if not ended:
        raise ParseError(f"{source}: missing the closing '}}'")
    return b.build(check=False)
