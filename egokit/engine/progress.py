"""Rich progress bars that every long loop uses (silent on non-main processes)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def make_progress(console: Console | None = None, disable: bool = False, *extra_columns) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), *extra_columns, console=console, disable=disable, transient=False,
    )


class _Bar:
    def __init__(self, progress: Progress, task_id, on_advance=None) -> None:
        self._progress, self._task, self._on_advance = progress, task_id, on_advance

    def advance(self, n: int = 1, **fields) -> None:
        self._progress.update(self._task, advance=n, **fields)
        if self._on_advance is not None:
            self._on_advance()

    def update(self, **fields) -> None:
        self._progress.update(self._task, **fields)


@contextmanager
def task_progress(description: str, total: int | None, *, disable: bool = False,
                  console: Console | None = None, on_advance=None) -> Iterator[_Bar]:
    """A bar; ``on_advance()`` runs after every advance (a task checks there whether it was asked to stop)."""
    with make_progress(console, disable) as progress:
        yield _Bar(progress, progress.add_task(description, total=total), on_advance)
