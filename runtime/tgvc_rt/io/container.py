"""Compressed containers (mp4, mkv, webm, mov, avi) through PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..types import VideoMeta

# Output codec per container: visually near-lossless settings, the decoded video is the product.
_OUT_CODECS = {".mp4": ("libx264", {"crf": "12", "preset": "medium"}),
               ".mov": ("libx264", {"crf": "12", "preset": "medium"}),
               ".mkv": ("ffv1", {}),
               ".avi": ("ffv1", {}),
               ".webm": ("libvpx-vp9", {"crf": "15", "b": "0", "row-mt": "1"})}
CONTAINER_SUFFIXES = tuple(_OUT_CODECS)


def _quiet() -> None:
    import av.logging

    av.logging.set_level(av.logging.ERROR)


def iter_container(path: Path, max_frames: int | None = None) -> Iterator[tuple[VideoMeta, np.ndarray]]:
    import av

    _quiet()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"{path}: cannot open video ({e})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30, 1)
        n = 0
        try:
            for frame in container.decode(stream):
                if max_frames is not None and n >= max_frames:
                    return
                meta = VideoMeta(frame.width, frame.height, rate.numerator, rate.denominator)
                yield meta, frame.to_ndarray(format="rgb24")
                n += 1
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: corrupt video stream ({e})") from None


class ContainerWriter:
    """Streams RGB frames into a container chosen by the file suffix."""

    def __init__(self, path: Path, meta: VideoMeta, suffix: str):
        import av

        _quiet()
        codec, options = _OUT_CODECS[suffix]
        self.container = av.open(str(path), mode="w", format={".mkv": "matroska"}.get(suffix, suffix[1:]))
        self.stream = self.container.add_stream(codec, rate=Fraction(meta.fps_num, meta.fps_den))
        self.stream.width, self.stream.height = meta.width + (meta.width & 1), meta.height + (meta.height & 1)
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = options

    def write(self, frame: np.ndarray) -> None:
        import av

        h, w = frame.shape[:2]
        if (h, w) != (self.stream.height, self.stream.width):
            frame = np.pad(frame, ((0, self.stream.height - h), (0, self.stream.width - w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self.stream.encode(vf):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
