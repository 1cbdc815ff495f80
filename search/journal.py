"""The search journal: an append-only JSON-lines file that loses no finished evaluation.

Records (one JSON object per line, each with a ``type``):

* ``header``: the search's settings and a fingerprint of its space, written once. ``--resume``
  refuses a journal whose fingerprint differs (a different model or space).
* ``round``: the k candidates proposed for round r, written *before* they are evaluated, so a
  resumed search finishes exactly the batch that was interrupted instead of proposing anew.
* ``eval``: one finished evaluation: candidate levels, decoded matrices, objective, drop,
  accuracies, energy, the cost report, firing rates, seed, wall time and a timestamp.
* ``rejected``: a candidate refused by a constraint (target limit, energy, cores) at proposal
  time, so it is not proposed again.

Every append is flushed and fsync'ed before the call returns. After ``kill -9`` the last line may
be torn (partly written): :func:`read_journal` drops it (and only it) with a warning, and opening
the journal for appending cuts it off, so the next record starts on a fresh line. A malformed
line anywhere else is an error naming the line.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snnc.compiler import SnncError

JOURNAL_NAME = "journal.jsonl"


class JournalError(SnncError):
    """The journal cannot be read or does not belong to this search."""


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to the journal")


class Journal:
    """Append-only writer of journal records at `path` (created with its directory)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()

    def _repair_tail(self) -> None:
        """Cut a torn last line (no newline: a write interrupted by kill -9) off the file, so
        appends start on a fresh line; that record was never acknowledged, so nothing is lost."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        warnings.warn(f"{self.path}: removing a torn last line ({len(data) - cut} bytes, an "
                      "interrupted write)", stacklevel=3)
        with open(self.path, "rb+") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (flush + fsync) before returning."""
        line = json.dumps(record, default=_default, sort_keys=True, allow_nan=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict[str, Any]]:
        """Every intact record (see :func:`read_journal`)."""
        return list(read_journal(self.path))


def read_journal(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the journal's records in order; a torn or blank line is skipped with a warning
    when it is followed by nothing but blank lines (the kill -9 case), an error otherwise."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    bad: list[int] = []
    out: list[dict[str, Any]] = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "type" not in rec:
                raise ValueError("not a record")
        except ValueError:
            bad.append(no)
            continue
        if bad:
            raise JournalError(f"{path}: line {bad[0]} is not a valid journal record but later "
                               "lines are; the journal was edited or corrupted. Move it away "
                               "and start a new search, or delete that line by hand.")
        out.append(rec)
    if bad:
        warnings.warn(f"{path}: ignoring a torn last line {bad[0]} (an interrupted write)",
                      stacklevel=2)
    yield from out
