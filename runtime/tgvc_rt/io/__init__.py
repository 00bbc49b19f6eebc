"""Video input and output: y4m natively, common containers through PyAV; outputs are written atomically.
``-`` reads y4m from standard input and writes y4m to standard output (see .pipes)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from ..errors import InputError, OptionError
from ..types import Video, VideoMeta
from .atomic import atomic_open, atomic_path, check_output_folder, write_bytes_atomic
from .container import CONTAINER_SUFFIXES, ContainerWriter, iter_container
from .pipes import STDIN_NAME, FlushingWriter, is_stdio, stdin_binary, stdout_stream
from .y4m import Y4mWriter, i420_to_rgb, iter_y4m, read_y4m_header, rgb_to_i420

__all__ = ["read_video", "iter_frames", "open_video_writer", "parse_size", "atomic_open", "atomic_path",
           "check_output_folder", "write_bytes_atomic", "rgb_to_i420", "i420_to_rgb", "VIDEO_SUFFIXES", "is_stdio"]

VIDEO_SUFFIXES = (".y4m",) + CONTAINER_SUFFIXES
MAX_FRAMES_IN_MEMORY = 100_000


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'352x288' -> (352, 288); None stays None."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise OptionError(f"--resize expects WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise OptionError(f"--resize {text}: width and height must be within 16..16384")
    return w, h


def _check_input(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"{path}: unsupported input format {suffix or '(none)'}; "
                         f"use one of {', '.join(VIDEO_SUFFIXES)}")
    return suffix


def _source(path: Path, max_frames: int | None) -> Iterator[tuple[VideoMeta, np.ndarray]]:
    """(meta, RGB frame) from standard input (``-``, y4m only), a y4m file or a container."""
    if is_stdio(path):
        return ((h.meta, fr) for h, fr in iter_y4m(stdin_binary(), max_frames))
    if _check_input(path) == ".y4m":
        return ((h.meta, fr) for h, fr in iter_y4m(path, max_frames))
    return iter_container(path, max_frames)


def iter_frames(path: str | os.PathLike, max_frames: int | None = None,
                resize: tuple[int, int] | None = None) -> Iterator[tuple[VideoMeta, np.ndarray]]:
    """Yield (meta, RGB uint8 frame) from a y4m or container file, or y4m on standard input (``-``),
    optionally resized."""
    source = _source(Path(path), max_frames)
    for meta, frame in source:
        if resize is not None and (meta.width, meta.height) != resize:
            frame = cv2.resize(frame, resize, interpolation=cv2.INTER_AREA)
            meta = VideoMeta(resize[0], resize[1], meta.fps_num, meta.fps_den)
        yield meta, frame


def _started(path: str | os.PathLike, max_frames: int | None, resize: tuple[int, int] | None
             ) -> tuple[str | os.PathLike, VideoMeta, Iterator[np.ndarray]]:
    """(name for messages, meta, all frames) with the first frame already read: a missing, unreadable or empty
    input is an error here, before any work."""
    if max_frames is not None and max_frames <= 0:
        raise OptionError("--frames must be a positive number")
    name = STDIN_NAME if is_stdio(path) else path
    source = iter_frames(path, max_frames, resize)
    first = next(source, None)
    if first is None:
        raise InputError(f"{name}: the video has no frames")

    def frames() -> Iterator[np.ndarray]:
        yield first[1]
        for _, frame in source:
            yield frame

    return name, first[0], frames()


def open_frames(path: str | os.PathLike, max_frames: int | None = None, resize: tuple[int, int] | None = None
                ) -> tuple[VideoMeta, Iterator[np.ndarray], int | None]:
    """A video as a stream: (meta, iterator over its RGB uint8 frames, frame count where cheap to know: y4m
    files, else None). The first frame is read here, so a missing, unreadable or empty input is an error
    before any work; the rest are read as the iterator is consumed (the whole video is never in memory)."""
    _, meta, frames = _started(path, max_frames, resize)
    total = None
    if not is_stdio(path) and Path(path).suffix.lower() == ".y4m":
        frame_bytes = read_y4m_header(path).frame_size + len(b"FRAME\n")
        total = os.path.getsize(path) // frame_bytes
        total = min(total, max_frames) if max_frames else total
    return meta, frames, total


def read_video(path: str | os.PathLike, max_frames: int | None = None,
               resize: tuple[int, int] | None = None) -> Video:
    """Read a whole clip into memory as RGB uint8 [N, H, W, 3] (from standard input too: ``-``)."""
    name, meta, source = _started(path, max_frames, resize)
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) > MAX_FRAMES_IN_MEMORY:
            raise InputError(f"{name}: more than {MAX_FRAMES_IN_MEMORY} frames; use --frames")
    return Video(np.stack(frames), meta)


class FrameWriter(Protocol):
    def write(self, frame: np.ndarray) -> None: ...


@contextlib.contextmanager
def open_video_writer(path: str | os.PathLike, meta: VideoMeta) -> Iterator[FrameWriter]:
    """Frame sink for .y4m or a container; the file appears only once every frame is written. ``-``: y4m on
    standard output, each frame sent as it is written."""
    if is_stdio(path):
        with stdout_stream() as f:
            yield FlushingWriter(Y4mWriter(f, meta), f)
        return
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"{path}: unsupported output format {suffix or '(none)'}; "
                         f"use one of {', '.join(VIDEO_SUFFIXES)}")
    if suffix == ".y4m":
        with atomic_open(path) as f:
            yield Y4mWriter(f, meta)
        return
    with atomic_path(path, suffix=suffix) as tmp:
        writer = ContainerWriter(tmp, meta, suffix)
        try:
            yield writer
        finally:
            writer.close()
