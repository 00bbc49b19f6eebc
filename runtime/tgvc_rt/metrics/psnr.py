"""PSNR on 8-bit planes: per frame, mean, and the 6:1:1 weighted PSNR-YUV (JVET CTC style)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PsnrOptions:
    peak: float = 255.0    # peak signal value of the planes (8-bit)
    max_db: float = 100.0  # cap for identical frames (MSE = 0), so means stay finite


def mse_per_frame(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame of two [N, H, W] planes -> float64 [N]."""
    if ref.shape != test.shape:
        raise ValueError(f"plane shapes differ: {ref.shape} vs {test.shape}")
    diff = ref.astype(np.float64) - test.astype(np.float64)
    return np.mean(np.square(diff).reshape(diff.shape[0], -1), axis=1)


def psnr_from_mse(mse: np.ndarray, opts: PsnrOptions = PsnrOptions()) -> np.ndarray:
    """10*log10(peak^2 / mse), capped at opts.max_db where mse is 0 (or tiny)."""
    mse = np.asarray(mse, dtype=np.float64)
    floor = opts.peak ** 2 / 10.0 ** (opts.max_db / 10.0)
    return 10.0 * np.log10(opts.peak ** 2 / np.maximum(mse, floor))


def psnr_per_frame(ref: np.ndarray, test: np.ndarray, opts: PsnrOptions = PsnrOptions()) -> np.ndarray:
    """PSNR of each frame of two [N, H, W] uint8 planes -> float64 [N] (dB)."""
    return psnr_from_mse(mse_per_frame(ref, test), opts)


def psnr_yuv_per_frame(ref: tuple[np.ndarray, np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray, np.ndarray],
                       opts: PsnrOptions = PsnrOptions()) -> np.ndarray:
    """(6 * PSNR-Y + PSNR-U + PSNR-V) / 8 per frame, planes given as (Y, U, V) [N, h, w] each."""
    py, pu, pv = (psnr_per_frame(r, t, opts) for r, t in zip(ref, test))
    return (6.0 * py + pu + pv) / 8.0
