"""Reading a .tgv stream from a file, and the video its header describes.

:func:`read_stream_file` returns a stream file's bytes (size-checked before reading);
``bitstream.read_bitstream`` parses and validates them. The decoder takes the parsed stream
(``decoder.pipeline.iter_decoded_frames``), so the CLI's ``decode``, which needs the header first,
parses the stream once.
"""
from __future__ import annotations

from pathlib import Path

from ..bitstream import Bitstream
from ..errors import InputError
from ..types import VideoMeta

MAX_STREAM_BYTES = 1 << 31


def read_stream_file(path) -> bytes:
    """The bytes of the .tgv file ``path``; InputError if it is missing or larger than any stream."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_STREAM_BYTES:
        raise InputError(f"{path}: {size} bytes is too large for a .tgv stream")
    return path.read_bytes()


def stream_meta(bs: Bitstream) -> VideoMeta:
    """The decoded video's size and frame rate, from the stream's header."""
    h = bs.header
    return VideoMeta(h.width, h.height, h.fps_num, h.fps_den)
