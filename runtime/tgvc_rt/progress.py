"""Progress reporting: a rich bar on a terminal, silence with --quiet or without a TTY."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

Advance = Callable[[int], None]


def _noop(_: int = 1) -> None:
    return None


@contextlib.contextmanager
def progress(description: str, total: int, quiet: bool = False) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a bar on stderr only when it is a terminal and not quiet."""
    if quiet or not sys.stderr.isatty():
        yield _noop
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
