"""ColorVideoVDP in a separate Python: the JOD of two decoded clips, and their BT.601 RGB conversion.

This file imports nothing but the standard library and NumPy at module level, so it can run as a
plain script under another interpreter (one that has ``pycvvdp`` + torch but maybe neither tgvc_rt nor
OpenCV); ``metrics.cvvdp`` runs it so, after checking both files' headers with the project's y4m reader
(``tgvc_rt.io.y4m``: 8-bit 4:2:0, one size), and passes the size and frame rate:

    python .../tgvc_rt/metrics/cvvdp_worker.py REF.y4m TEST.y4m WIDTH HEIGHT FPS [DISPLAY] [THREADS]

It prints one JSON object on stdout: ``{"jod": float, "seconds": float, "frames": int, "display": str}``
or ``{"error": "..."}`` (exit status 1). In process, ``metrics.cvvdp`` reads the planes with
``tgvc_rt.io.y4m.read_y4m_planes`` and uses :func:`yuv420_to_rgb` and :func:`run_cvvdp` from here.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np


def read_planes(path: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y [N, H, W], U and V [N, ceil(H/2), ceil(W/2)] planes of an 8-bit 4:2:0 y4m file of ``width`` x
    ``height`` whose header the caller has checked with ``tgvc_rt.io.y4m``.

    Not a y4m reader: this script may run where tgvc_rt cannot be imported, so it keeps the least it
    needs, skipping the header and each FRAME line; a frame that is cut short or not where the size
    puts it is a ValueError.
    """
    with open(path, "rb") as f:
        data = f.read()
    cw, ch = -(-width // 2), -(-height // 2)
    luma, chroma = width * height, cw * ch
    frames, pos = [], data.index(b"\n") + 1
    while pos < len(data):
        start = data.find(b"\n", pos) + 1
        if not data.startswith(b"FRAME", pos) or not 0 < start <= len(data) - luma - 2 * chroma:
            raise ValueError(f"{path}: frame {len(frames)} is missing or incomplete")
        frames.append(np.frombuffer(data, np.uint8, luma + 2 * chroma, start))
        pos = start + luma + 2 * chroma
    raw = np.stack(frames)
    return (raw[:, :luma].reshape(-1, height, width), raw[:, luma:luma + chroma].reshape(-1, ch, cw),
            raw[:, luma + chroma:].reshape(-1, ch, cw))


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range 4:2:0 planes (as :func:`read_planes` gives) -> uint8 RGB [N, H, W, 3] (nearest
    chroma upsampling, the coefficients of OpenCV's I420 conversion, see tgvc_rt.types). The arithmetic
    is that of ``tgvc_rt.io.y4m``'s 4:4:4 conversion, written again here for the script's sake
    (tests/test_metrics.py checks that they agree)."""
    n, h, w = y.shape
    u = np.repeat(np.repeat(u, 2, axis=1), 2, axis=2)[:, :h, :w].astype(np.float32) - 128.0
    v = np.repeat(np.repeat(v, 2, axis=1), 2, axis=2)[:, :h, :w].astype(np.float32) - 128.0
    y = (y.astype(np.float32) - 16.0) * 1.164
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
    if len(argv) < 5:
        print(json.dumps({"error": "usage: cvvdp_worker.py REF.y4m TEST.y4m WIDTH HEIGHT FPS [DISPLAY] [THREADS]"}))
        return 2
    try:
        width, height, fps = int(argv[2]), int(argv[3]), float(argv[4])
        display = argv[5] if len(argv) > 5 else "standard_4k"
        threads = int(argv[6]) if len(argv) > 6 else 1
        ref, test = read_planes(argv[0], width, height), read_planes(argv[1], width, height)
        if len(ref[0]) != len(test[0]):
            raise ValueError(f"frame counts differ: ref {len(ref[0])}, test {len(test[0])}")
        out = run_cvvdp(yuv420_to_rgb(*ref), yuv420_to_rgb(*test), fps, display, threads)
    except Exception as exc:  # reported to the parent as JSON, one line
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
