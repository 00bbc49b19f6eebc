"""Training/validation clips: the clip split, cropping, luma PSNR.

Clips are read with the runtime's reader (``tgvc_rt.io.read_video``): RGB uint8 [N, H, W, 3] with
OpenCV's BT.601 conversion, as in tgvc_rt.types.
"""
from __future__ import annotations

import numpy as np

from .paths import VIDEO_DIR  # noqa: F401  ($TGVC_DATA or ../shared/data)/videos

TRAIN_CLIPS = ("foreman_cif", "flower_416x240", "carphone_qcif", "bikes_640x272")
VAL_CLIPS = ("mobile_cif", "webcamtalk_416x240")  # held out from training


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
