"""Bounded refusal messages of the front ends (docs/frontends.md, "Validation and limits").

A refusal is one short paragraph plus a list of at most `MAX_GROUPS` lines: problems are
grouped by op type with their count, the first reason and the first few node names, so a
network with hundreds of unsupported nodes still gets a message that fits on a screen.
"""

from __future__ import annotations

import re

MAX_GROUPS = 10
MAX_NAMES = 3
MAX_LINE = 240


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + "..."


def _short(who: str) -> str:
    """node 'layer1/conv' (op Conv) -> layer1/conv: the quoted name, else all of it."""
    m = re.search(r"'([^']*)'", who)
    return m.group(1) if m else who


def problem_list(problems: list[tuple[str, str, str]]) -> str:
    """'\\n  '-joined lines for (who, op label, reason) triples, grouped by op label: a lone
    node keeps its own line ``who: reason``; several share ``N x op: reason [a, b, c and M
    more]``."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for who, op, reason in problems:
        groups.setdefault(op, []).append((who, reason))
    lines = []
    for op, items in list(groups.items())[:MAX_GROUPS]:
        if len(items) == 1:
            lines.append(_clip(f"{items[0][0]}: {items[0][1]}"))
            continue
        reasons = {r for _, r in items}
        other = " (and other reasons)" if len(reasons) > 1 else ""
        names = ", ".join(_short(w) for w, _ in items[:MAX_NAMES])
        more = f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else ""
        lines.append(_clip(f"{len(items)} x {op}: {items[0][1]}{other} [{names}{more}]"))
    rest = list(groups.values())[MAX_GROUPS:]
    if rest:
        lines.append(f"... and {len(rest)} more op type(s) ({sum(map(len, rest))} node(s))")
    return "\n  ".join(lines)
