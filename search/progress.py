"""The live progress display of `snnc search` (rich): evaluations done, best so far, ETA."""

from __future__ import annotations

import math


class LiveProgress:
    """A context manager whose :meth:`update` is the search loop's progress callback."""

    def __init__(self, budget: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = Console(stderr=True)
        self.bar = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=self.console, transient=False)
        self.task = self.bar.add_task("search", total=budget, info="preparing")
        self.best = math.inf
        self.done = 0

    def __enter__(self) -> LiveProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def log(self, msg: str) -> None:
        """Print a line above the bar."""
        self.bar.console.print(msg)

    def update(self, kind: str, info: dict) -> None:
        """Search loop events: a proposed round, a finished evaluation, the end."""
        if kind == "eval":
            self.done += 1
            if info.get("status") == "ok":
                self.best = min(self.best, info["objective"])
            self.bar.update(self.task, completed=self.done,
                            info=f"best {self.best:.3g}  last: {info.get('describe', '')[:40]}")
        elif kind == "round":
            self.bar.update(self.task, info=f"round {info['round']} ({info.get('mode')}), "
                                            f"best {self.best:.3g}")
