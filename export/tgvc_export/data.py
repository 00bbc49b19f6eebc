"""Training/validation clips: y4m reading (8-bit 4:2:0) and the clip split.

Frames are RGB uint8 [N, H, W, 3] with OpenCV's BT.601 conversion, as in tgvc_rt.types.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .paths import VIDEO_DIR  # noqa: F401  ($TGVC_DATA or ../shared/data)/videos

TRAIN_CLIPS = ("foreman_cif", "flower_416x240", "carphone_qcif", "bikes_640x272")
VAL_CLIPS = ("mobile_cif", "webcamtalk_416x240")  # held out from training


def read_y4m(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """8-bit 4:2:0 y4m -> RGB uint8 [N, H, W, 3]."""
    data = Path(path).read_bytes()
    end = data.index(b"\n")
    fields = data[:end].split()
    if fields[0] != b"YUV4MPEG2":
        raise ValueError(f"{path}: not a y4m file")
    w = int(next(f[1:] for f in fields if f.startswith(b"W")))
    h = int(next(f[1:] for f in fields if f.startswith(b"H")))
    frame_bytes = w * h * 3 // 2
    frames = []
    pos = end + 1
    while pos < len(data) and (max_frames is None or len(frames) < max_frames):
        pos = data.index(b"\n", pos) + 1  # skip "FRAME..." line
        yuv = np.frombuffer(data, np.uint8, frame_bytes, pos).reshape(h * 3 // 2, w)
        frames.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))
        pos += frame_bytes
    return np.stack(frames)


def crop_to_multiple(frames: np.ndarray, multiple: int = 8) -> np.ndarray:
    h, w = frames.shape[1] // multiple * multiple, frames.shape[2] // multiple * multiple
    return frames[:, :h, :w]


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range Y of RGB uint8/float in 0..255 (as OpenCV's RGB2YUV_I420)."""
    rgb = rgb.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr_y(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR of the luma of two RGB uint8 clips, over all frames."""
    mse = np.mean((luma(ref) - luma(test)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))
