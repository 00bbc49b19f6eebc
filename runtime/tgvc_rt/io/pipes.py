"""``-`` as a file name: y4m from standard input, y4m to standard output.

Standard output carries nothing but the video while it is one: its file descriptor is pointed at
stderr for that time, so a library or child process that prints cannot corrupt the stream.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import BinaryIO, Iterator

from ..errors import InputError, OptionError

STDIO = "-"
STDIN_NAME = "<stdin>"


def is_stdio(path: str | os.PathLike) -> bool:
    """True for ``-``, the name of standard input or output."""
    return os.fspath(path) == STDIO


def stdin_binary() -> BinaryIO:
    """Standard input as a binary stream; InputError where there is none or it is a terminal."""
    if sys.stdin is None:
        raise InputError(f"{STDIN_NAME}: there is no standard input to read")
    if sys.stdin.isatty():
        raise InputError(f"{STDIN_NAME} is a terminal: pipe a y4m stream in "
                         f"(ffmpeg -i clip.mp4 -f yuv4mpegpipe - | tgvc-rt encode - -o clip.tgv)")
    return sys.stdin.buffer


def discard_output(fd: int) -> None:
    """Point ``fd`` at the null device: what is still buffered for it goes nowhere, and flushing or
    closing it can no longer block or fail (a reader that went away)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


@contextlib.contextmanager
def stdout_stream() -> Iterator[BinaryIO]:
    """Standard output as a binary stream for the block; meanwhile file descriptor 1 (``print``, C
    libraries, child processes) writes to stderr, and it is given back afterwards. If the block fails,
    what it left buffered is dropped rather than written (nothing blocks on a stalled reader on the
    way out); a reader that went away raises BrokenPipeError. OptionError if stdout is a terminal."""
    if os.isatty(1):
        raise OptionError("-o -: standard output is a terminal; pipe it into a program "
                          "(tgvc-rt decode clip.tgv -o - | ffplay -) or give an output file")
    _flush_stdout()
    saved = os.dup(1)
    f = os.fdopen(os.dup(saved), "wb")
    os.dup2(2, 1)
    try:
        yield f
        f.flush()
    except BaseException:
        discard_output(f.fileno())
        raise
    finally:
        f.close()
        _flush_stdout()
        os.dup2(saved, 1)
        os.close(saved)


class FlushingWriter:
    """A frame writer whose frames leave the process as each is written (a player downstream shows
    them as they are decoded, not when a buffer fills)."""

    def __init__(self, writer, f: BinaryIO):
        self.writer, self.f = writer, f

    def write(self, frame) -> None:
        self.writer.write(frame)
        self.f.flush()
