"""Atomic output: write to a temporary file beside the target, rename on success, delete on failure."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import InputError
from ..signals import raise_if_stopped


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system shows it (Linux /proc), else set and
    restored at once under a lock."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_mode(target: Path) -> int:
    """Permissions for a new ``target``: those of the file it replaces, else 0o666 less the umask (as
    ``open`` would give; mkstemp's temporary files are 0o600)."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(target.stat().st_mode)
    return 0o666 & ~current_umask()


def check_output_folder(target: str | os.PathLike) -> Path:
    """The folder ``target`` will be written into; InputError if it does not exist (checked before the work)."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: output folder {folder} does not exist")
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    folder = check_output_folder(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=folder)
    tmp_path = Path(tmp)
    try:  # from right after mkstemp: an exception anywhere (SIGTERM raises one in the CLI) removes the file
        os.close(fd)
        yield tmp_path
        raise_if_stopped()  # never commit an output after SIGINT/SIGTERM, even if its exception got lost
        os.chmod(tmp_path, output_mode(target))
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike) -> Iterator[BinaryIO]:
    """Binary file object whose content appears at ``target`` only when the block succeeds."""
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_open(target) as f:
        f.write(data)
