"""ColorVideoVDP in a separate Python, plus the NumPy-only y4m plane reader the metrics share.

This file imports nothing but the standard library and NumPy at module level, so it can run as a
plain script under another interpreter (one that has ``pycvvdp`` + torch but not tgvc_rt's deps):

    python /path/to/tgvc_rt/metrics/cvvdp_worker.py REF.y4m TEST.y4m [FPS] [DISPLAY] [THREADS]

(FPS 0 or absent: the reference header's rate) prints one JSON object on stdout: ``{"jod": float, "seconds": float, "frames": int, "display": str}``
or ``{"error": "..."}`` (exit status 1).

``read_y4m_planes`` is also used in-process by tgvc_rt.metrics: the metrics are measured on the
file's own Y/U/V planes (no RGB round trip).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np

_HEADER_MAX = 4096
_MAX_DIM = 16384


class Y4mReadError(ValueError):
    """The y4m file is missing, malformed or not 8-bit 4:2:0 (mapped to InputError by callers)."""


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


def read_y4m_planes(path: str, max_frames: int | None = None) -> YuvClip:
    """Read an 8-bit 4:2:0 y4m file (any 420 variant) into planes; raises Y4mReadError."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise Y4mReadError(f"{path}: cannot read ({exc.strerror})") from None
    nl = data.find(b"\n", 0, _HEADER_MAX)
    if not data.startswith(b"YUV4MPEG2") or nl < 0:
        raise Y4mReadError(f"{path}: not a YUV4MPEG2 (.y4m) file")
    w = h = None
    fps_num, fps_den, chroma = 30, 1, "420"
    for tok in data[9:nl].split():
        key, val = chr(tok[0]), tok[1:].decode("ascii", "replace")
        try:
            if key == "W":
                w = int(val)
            elif key == "H":
                h = int(val)
            elif key == "F":
                fps_num, fps_den = (int(x) for x in val.split(":"))
            elif key == "C":
                chroma = val
        except ValueError:
            raise Y4mReadError(f"{path}: malformed y4m header field {tok!r}") from None
    if w is None or h is None or not (0 < w <= _MAX_DIM and 0 < h <= _MAX_DIM):
        raise Y4mReadError(f"{path}: y4m header has a missing or absurd frame size")
    if not chroma.startswith("420") or chroma.startswith("420p1"):
        raise Y4mReadError(f"{path}: y4m colour space C{chroma} is not 8-bit 4:2:0")
    if fps_num <= 0 or fps_den <= 0:
        fps_num, fps_den = 30, 1
    cw, ch = -(-w // 2), -(-h // 2)
    plane = w * h + 2 * cw * ch
    # Frame headers are normally bare "FRAME\n"; parse generally but fast-path the common case.
    ys, us, vs = [], [], []
    pos = nl + 1
    while pos < len(data) and (max_frames is None or len(ys) < max_frames):
        end = data.find(b"\n", pos, pos + _HEADER_MAX)
        if not data.startswith(b"FRAME", pos) or end < 0:
            raise Y4mReadError(f"{path}: corrupt y4m (frame {len(ys)} has no FRAME marker)")
        start = end + 1
        if start + plane > len(data):
            raise Y4mReadError(f"{path}: truncated y4m (frame {len(ys)} is incomplete)")
        raw = np.frombuffer(data, np.uint8, plane, start)
        ys.append(raw[: w * h].reshape(h, w))
        us.append(raw[w * h: w * h + cw * ch].reshape(ch, cw))
        vs.append(raw[w * h + cw * ch:].reshape(ch, cw))
        pos = start + plane
    if not ys:
        raise Y4mReadError(f"{path}: y4m file has no frames")
    return YuvClip(np.stack(ys), np.stack(us), np.stack(vs), fps_num, fps_den)


def yuv420_to_rgb(clip: YuvClip) -> np.ndarray:
    """BT.601 limited-range planes -> uint8 RGB [N, H, W, 3] (nearest chroma upsampling, the
    coefficients of OpenCV's I420 conversion, see tgvc_rt.types)."""
    n, h, w = clip.y.shape
    u = np.repeat(np.repeat(clip.u, 2, axis=1), 2, axis=2)[:, :h, :w].astype(np.float32) - 128.0
    v = np.repeat(np.repeat(clip.v, 2, axis=1), 2, axis=2)[:, :h, :w].astype(np.float32) - 128.0
    y = (clip.y.astype(np.float32) - 16.0) * 1.164
    rgb = np.stack([y + 1.596 * v, y - 0.391 * u - 0.813 * v, y + 2.018 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def run_cvvdp(ref_rgb: np.ndarray, test_rgb: np.ndarray, fps: float,
              display: str = "standard_4k", threads: int = 1) -> dict:
    """JOD of test against ref (uint8 [N, H, W, 3] each); needs pycvvdp + torch importable.

    threads: torch intra-op threads. 1 by default: on a busy 2-core machine two OpenMP threads
    spin-wait and ran 8x slower (webcamtalk, 19 frames: 160 s vs 20 s).
    """
    import pycvvdp  # noqa: PLC0415 (optional dependency)
    import torch  # noqa: PLC0415

    torch.set_num_threads(max(1, int(threads)))
    t0 = time.perf_counter()
    metric = pycvvdp.cvvdp(display_name=display, quiet=True, device=torch.device("cpu"))
    with torch.no_grad():
        jod, _stats = metric.predict(test_rgb, ref_rgb, dim_order="FHWC", frames_per_second=float(fps))
    return {"jod": float(jod), "seconds": time.perf_counter() - t0,
            "frames": int(ref_rgb.shape[0]), "display": display}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(json.dumps({"error": "usage: cvvdp_worker.py REF.y4m TEST.y4m [FPS] [DISPLAY] [THREADS]"}))
        return 2
    try:
        ref, test = read_y4m_planes(argv[0]), read_y4m_planes(argv[1])
        fps = float(argv[2]) if len(argv) > 2 and float(argv[2]) > 0 else ref.fps
        display = argv[3] if len(argv) > 3 else "standard_4k"
        threads = int(argv[4]) if len(argv) > 4 else 1
        if ref.y.shape != test.y.shape:
            raise Y4mReadError(f"size/frame count differ: ref {ref.y.shape}, test {test.y.shape}")
        out = run_cvvdp(yuv420_to_rgb(ref), yuv420_to_rgb(test), fps, display, threads)
    except Exception as exc:  # reported to the parent as JSON, one line
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
