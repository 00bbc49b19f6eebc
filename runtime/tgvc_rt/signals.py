"""Stop signals: under the CLI, SIGINT and SIGTERM raise ``Interrupted`` in the main thread, so every
``finally`` on the way out runs (atomic outputs remove their temporary files).

The signal is also remembered, because a library can turn the exception into another one (arriving while
onnxruntime's extension module initialises, it becomes "ImportError: import numpy failed") or swallow it:
the CLI then still reports the interruption, and ``raise_if_stopped`` keeps an output from being committed
after a stop signal.
"""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException like KeyboardInterrupt, so no ``except Exception`` stops it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = 128 + signum   # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def _set_handler(handler) -> None:
    """Give SIGINT and SIGTERM ``handler``, except a signal the parent process ignores (it stays ignored)."""
    for s in STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, handler)


def _on_stop_signal(signum: int, _frame) -> None:
    """Remember the signal and raise ``Interrupted``; repeats are ignored so the clean-up runs to its end."""
    _received.append(signum)
    _set_handler(signal.SIG_IGN)
    raise Interrupted(signum)


def catch_stop_signals() -> None:
    """From now on SIGINT and SIGTERM raise ``Interrupted`` (main thread only)."""
    _set_handler(_on_stop_signal)


def ignore_stop_signals() -> None:
    """The work is over: a late SIGINT or SIGTERM changes nothing."""
    _set_handler(signal.SIG_IGN)


def raise_if_stopped() -> None:
    """Raise ``Interrupted`` if a stop signal has arrived (whatever became of its exception)."""
    if _received:
        raise Interrupted(_received[0])
