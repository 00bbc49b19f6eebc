"""YUV4MPEG2 (.y4m) reading and writing: the project's one y4m reader and writer.

Reads 8-bit 4:2:0 (any variant: 420, 420jpeg, 420mpeg2, 420paldv), 4:2:2, 4:4:4 and mono of any size;
10-bit and other layouts are refused with a clear error. Writes 8-bit 4:2:0. Frames are converted
to/from RGB with OpenCV's BT.601 limited-range I420 conversion (see tgvc_rt.types):
:func:`iter_y4m` (RGB frames, streaming, from a file or a pipe) and :class:`Y4mWriter`.
The metrics read a 4:2:0 file's own planes instead (:func:`read_y4m_planes`, no RGB round trip).

One exception: ``metrics/cvvdp_worker.py`` also runs as a script under a Python that may have neither
tgvc_rt nor OpenCV, so it walks the frames of files this module has already checked by itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..types import VideoMeta

MAX_DIM = 16384
HEADER_MAX = 4096
_CHROMA = {"420": (2, 2), "420jpeg": (2, 2), "420mpeg2": (2, 2), "420paldv": (2, 2),
           "422": (2, 1), "444": (1, 1), "mono": (0, 0)}


@dataclass(frozen=True)
class Y4mHeader:
    meta: VideoMeta
    chroma: str
    header_size: int

    @property
    def frame_size(self) -> int:
        w, h = self.meta.width, self.meta.height
        sx, sy = _CHROMA[self.chroma]
        if sx == 0:
            return w * h
        cw, ch = -(-w // sx), -(-h // sy)
        return w * h + 2 * cw * ch


def _parse_header(line: bytes, path: Path | str) -> Y4mHeader:
    if not line.startswith(b"YUV4MPEG2"):
        raise InputError(f"{path}: not a YUV4MPEG2 (.y4m) file")
    width = height = None
    fps_num, fps_den, chroma = 30, 1, "420"
    for token in line[len(b"YUV4MPEG2"):].split():
        key, val = chr(token[0]), token[1:].decode("ascii", "replace")
        try:
            if key == "W":
                width = int(val)
            elif key == "H":
                height = int(val)
            elif key == "F":
                num, den = val.split(":")
                fps_num, fps_den = int(num), int(den)
            elif key == "C":
                chroma = val
        except ValueError:
            raise InputError(f"{path}: malformed y4m header field {token!r}") from None
    if width is None or height is None or not (0 < width <= MAX_DIM and 0 < height <= MAX_DIM):
        raise InputError(f"{path}: y4m header has a missing or absurd frame size")
    if chroma not in _CHROMA:
        raise InputError(f"{path}: y4m colour space C{chroma} is not supported "
                         f"(8-bit 420/422/444/mono only; convert 10-bit input with ffmpeg -pix_fmt yuv420p)")
    if fps_num <= 0 or fps_den <= 0:
        fps_num, fps_den = 30, 1
    return Y4mHeader(VideoMeta(width, height, fps_num, fps_den), chroma, len(line) + 1)


def read_header(f: BinaryIO, path: Path | str) -> Y4mHeader:
    line = f.readline(HEADER_MAX)
    if not line.endswith(b"\n"):
        raise InputError(f"{path}: not a YUV4MPEG2 (.y4m) file (no header line)")
    return _parse_header(line[:-1], path)


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def read_y4m_header(path: str | os.PathLike) -> Y4mHeader:
    """The header of the y4m file ``path`` (InputError if it cannot be read or is not a y4m file)."""
    with _open(path) as f:
        return read_header(f, path)


def check_420(hdr: Y4mHeader, path: Path | str) -> None:
    """InputError unless the file is 8-bit 4:2:0 (any 420 variant)."""
    if _CHROMA[hdr.chroma] != (2, 2):
        raise InputError(f"{path}: y4m colour space C{hdr.chroma} is not 8-bit 4:2:0")


def _planes(raw: np.ndarray, hdr: Y4mHeader) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(Y, U, V) views of one frame's bytes; U and V are None for mono."""
    w, h = hdr.meta.width, hdr.meta.height
    y = raw[: w * h].reshape(h, w)
    sx, sy = _CHROMA[hdr.chroma]
    if sx == 0:
        return y, None, None
    cw, ch = -(-w // sx), -(-h // sy)
    return y, raw[w * h: w * h + cw * ch].reshape(ch, cw), raw[w * h + cw * ch:].reshape(ch, cw)


def _to_rgb(raw: np.ndarray, hdr: Y4mHeader) -> np.ndarray:
    w, h = hdr.meta.width, hdr.meta.height
    y, u, v = _planes(raw, hdr)
    sx, sy = _CHROMA[hdr.chroma]
    if u is None:
        u = v = np.full((h, w), 128, np.uint8)
    if sx == 2 and sy == 2 and w % 2 == 0 and h % 2 == 0:
        return cv2.cvtColor(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]).reshape(h * 3 // 2, w),
                            cv2.COLOR_YUV2RGB_I420)
    u = cv2.resize(u, (w, h), interpolation=cv2.INTER_LINEAR) if u.shape != (h, w) else u
    v = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR) if v.shape != (h, w) else v
    return _yuv444_to_rgb(y, u, v)


def _yuv444_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited range, the same coefficients as OpenCV's I420 conversion."""
    yf = (y.astype(np.float32) - 16.0) * 1.164
    uf, vf = u.astype(np.float32) - 128.0, v.astype(np.float32) - 128.0
    rgb = np.stack([yf + 1.596 * vf, yf - 0.391 * uf - 0.813 * vf, yf + 2.018 * uf], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rgb_to_i420(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3] -> (Y [H, W], U [ceil(H/2), ceil(W/2)], V) planes, any size."""
    h, w = frame.shape[:2]
    ph, pw = h + (h & 1), w + (w & 1)
    if (ph, pw) != (h, w):
        frame = cv2.copyMakeBorder(frame, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
    yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
    y = yuv[:ph][:h, :w]
    chroma = yuv[ph:].reshape(2, ph // 2, pw // 2)
    return np.ascontiguousarray(y), chroma[0], chroma[1]


def i420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of rgb_to_i420 (any size)."""
    h, w = y.shape
    ph, pw = 2 * u.shape[0], 2 * u.shape[1]
    if (ph, pw) == (h, w):
        return cv2.cvtColor(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]), cv2.COLOR_YUV2RGB_I420)
    yp = cv2.copyMakeBorder(y, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
    rgb = cv2.cvtColor(np.concatenate([yp, u.reshape(-1, pw), v.reshape(-1, pw)]), cv2.COLOR_YUV2RGB_I420)
    return rgb[:h, :w]


def _read_exact(f: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only where the input ends (a pipe or an unbuffered file can return less a call)."""
    chunks, left = [], size
    while left:
        chunk = f.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _iter_raw(f: BinaryIO, hdr: Y4mHeader, name: Path | str, max_frames: int | None) -> Iterator[np.ndarray]:
    """The raw bytes of each frame after the header, read strictly in order (never seeks, so ``f`` may be
    a pipe)."""
    n = 0
    while max_frames is None or n < max_frames:
        line = f.readline(HEADER_MAX)
        if not line:
            return
        if not line.startswith(b"FRAME"):
            raise InputError(f"{name}: corrupt y4m (frame {n} has no FRAME marker)")
        raw = _read_exact(f, hdr.frame_size)
        if len(raw) < hdr.frame_size:
            raise InputError(f"{name}: truncated y4m (frame {n} is incomplete)")
        yield np.frombuffer(raw, np.uint8)
        n += 1


def _iter_frames(f: BinaryIO, name: Path | str, max_frames: int | None) -> Iterator[tuple[Y4mHeader, np.ndarray]]:
    """The header, then RGB frames read strictly in order."""
    hdr = read_header(f, name)
    for raw in _iter_raw(f, hdr, name, max_frames):
        yield hdr, _to_rgb(raw, hdr)


def iter_y4m(source: str | os.PathLike | BinaryIO, max_frames: int | None = None
             ) -> Iterator[tuple[Y4mHeader, np.ndarray]]:
    """Yield (header, RGB frame) one at a time (bounded memory) from a file path or an open binary file
    object such as ``sys.stdin.buffer`` (read from where it stands, left open; errors name it by its
    ``name``)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _iter_frames(f, Path(source), max_frames)
    else:
        yield from _iter_frames(source, getattr(source, "name", "<stream>"), max_frames)


@dataclass
class YuvClip:
    """Raw 8-bit 4:2:0 planes of a y4m file."""

    y: np.ndarray  # uint8 [N, H, W]
    u: np.ndarray  # uint8 [N, ceil(H/2), ceil(W/2)]
    v: np.ndarray  # uint8 [N, ceil(H/2), ceil(W/2)]
    fps_num: int
    fps_den: int

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    @property
    def num_frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.y.shape[2]), int(self.y.shape[1])


def read_y4m_planes(path: str | os.PathLike, max_frames: int | None = None) -> YuvClip:
    """The planes of an 8-bit 4:2:0 y4m file (any 420 variant), first ``max_frames`` frames; InputError if
    it is missing, malformed, not 4:2:0 or has no frames."""
    with _open(path) as f:
        hdr = read_header(f, path)
        check_420(hdr, path)
        planes = [_planes(raw, hdr) for raw in _iter_raw(f, hdr, path, max_frames)]
    if not planes:
        raise InputError(f"{path}: y4m file has no frames")
    y, u, v = (np.stack(p) for p in zip(*planes))
    return YuvClip(y, u, v, hdr.meta.fps_num, hdr.meta.fps_den)


def write_frame(f: BinaryIO, planes) -> None:
    """One frame: the FRAME marker, then the planes (Y, U, V as the file's header lays them out)."""
    f.write(b"FRAME\n")
    for plane in planes:
        f.write(np.ascontiguousarray(plane).tobytes())


class Y4mWriter:
    """Streams RGB frames into an 8-bit 4:2:0 y4m file object."""

    def __init__(self, f: BinaryIO, meta: VideoMeta):
        self.f = f
        f.write(f"YUV4MPEG2 W{meta.width} H{meta.height} F{meta.fps_num}:{meta.fps_den} "
                f"Ip A1:1 C420jpeg\n".encode())

    def write(self, frame: np.ndarray) -> None:
        write_frame(self.f, rgb_to_i420(frame))
