"""Progress reporting: a rich bar on a terminal, silence with --quiet or without a TTY."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

Advance = Callable[[int], None]


def _noop(_: int = 1) -> None:
    return None


def eta_seconds(worked: float | None, completed: float, total: float | None) -> float | None:
    """Seconds left at the average rate so far: ``worked`` seconds (bar start to the latest advance) for
    ``completed`` units. None (no estimate) until the first unit, e.g. the first group, is done."""
    if worked is None or total is None or completed <= 0 or worked <= 0:
        return None
    return max(total - completed, 0.0) * worked / completed


def format_eta(seconds: float | None) -> str:
    """H:MM:SS like rich's own column, ``-:--:--`` without an estimate."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


def _eta_column():
    """A rich column with ``eta_seconds``. Rich's TimeRemainingColumn extrapolates the rate between recent
    advances: the decoder's frames arrive in one burst per group, so its first estimate (right after the
    first group) came from that burst and read about zero."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class AverageRateRemaining(ProgressColumn):
        max_refresh = 0.5

        def render(self, task) -> Text:
            left = eta_seconds(task.fields.get("worked"), task.completed, task.total)
            return Text(format_eta(left), style="progress.remaining")

    return AverageRateRemaining()


def _advancer(bar, task) -> Advance:
    """``advance(n)`` for ``task`` that also records the seconds worked since the bar started."""
    start = bar.get_time()

    def advance(n: int = 1) -> None:
        bar.update(task, advance=n, worked=bar.get_time() - start)

    return advance


@contextlib.contextmanager
def progress(description: str, total: int | None, quiet: bool = False) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a bar on stderr only when it is a terminal and not quiet (``total`` None:
    a count without an end)."""
    if quiet or not sys.stderr.isatty():
        yield _noop
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _eta_column(),
                  console=Console(stderr=True), transient=True) as bar:
        yield _advancer(bar, bar.add_task(description, total=total))
