"""MS-SSIM (Wang, Simoncelli, Bovik 2003) on 8-bit luma, vectorised over frames.

Standard settings: Gaussian window 11x11, sigma 1.5, 'valid' filtering, K1 = 0.01, K2 = 0.03,
5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average downsampling between
scales. A frame too small for 5 scales (the coarsest scale must still be >= the window, e.g. 176x144
fits only 4) uses the first M weights renormalised to sum 1; the result reports M.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import correlate1d

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class MsssimOptions:
    window: int = 11            # Gaussian window size (pixels)
    sigma: float = 1.5          # Gaussian sigma (pixels)
    k1: float = 0.01            # SSIM stabiliser C1 = (k1 * peak)^2
    k2: float = 0.03            # SSIM stabiliser C2 = (k2 * peak)^2
    peak: float = 255.0         # dynamic range of the input
    weights: tuple[float, ...] = WANG_WEIGHTS  # per-scale exponents, finest first
    min_scales: int = 1         # refuse (ValueError) if fewer scales than this fit


@dataclass
class MsssimResult:
    per_frame: np.ndarray       # float64 [N]
    scales: int                 # scales actually used
    weights: tuple[float, ...]  # renormalised weights actually used

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_frame))


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def scales_that_fit(height: int, width: int, opts: MsssimOptions = MsssimOptions()) -> int:
    """How many scales keep the coarsest image at least one window wide and high."""
    m, h, w = 0, height, width
    while m < len(opts.weights) and min(h, w) >= opts.window:
        m, h, w = m + 1, h // 2, w // 2
    return m


def _filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation over axes 1, 2 of [N, H, W], keeping only the 'valid' region."""
    r = len(kernel) // 2
    y = correlate1d(correlate1d(x, kernel, axis=1, mode="nearest"), kernel, axis=2, mode="nearest")
    return y[:, r: x.shape[1] - r, r: x.shape[2] - r]


def _ssim_cs(a: np.ndarray, b: np.ndarray, kernel: np.ndarray, c1: float, c2: float):
    """Mean SSIM and mean contrast-structure term per frame of [N, H, W] float64 stacks."""
    mu_a, mu_b = _filter_valid(a, kernel), _filter_valid(b, kernel)
    var_a = _filter_valid(a * a, kernel) - mu_a ** 2
    var_b = _filter_valid(b * b, kernel) - mu_b ** 2
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b
    cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
    lum = (2.0 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    n = a.shape[0]
    return (lum * cs_map).reshape(n, -1).mean(axis=1), cs_map.reshape(n, -1).mean(axis=1)


def _downsample2(x: np.ndarray) -> np.ndarray:
    n, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2).mean(axis=(2, 4))


def ms_ssim(ref: np.ndarray, test: np.ndarray, opts: MsssimOptions = MsssimOptions()) -> MsssimResult:
    """MS-SSIM of each frame of two [N, H, W] (or [H, W]) planes; 1.0 = identical."""
    if ref.shape != test.shape:
        raise ValueError(f"plane shapes differ: {ref.shape} vs {test.shape}")
    a = np.asarray(ref, np.float64)
    b = np.asarray(test, np.float64)
    if a.ndim == 2:
        a, b = a[None], b[None]
    m = scales_that_fit(a.shape[1], a.shape[2], opts)
    if m < max(1, opts.min_scales):
        raise ValueError(f"frame {a.shape[2]}x{a.shape[1]} is too small for MS-SSIM "
                         f"(window {opts.window})")
    w = np.asarray(opts.weights[:m], np.float64)
    w = w / w.sum()
    kernel = gaussian_kernel(opts.window, opts.sigma)
    c1, c2 = (opts.k1 * opts.peak) ** 2, (opts.k2 * opts.peak) ** 2
    terms = []
    for j in range(m):  # loop over <= 5 scales, each vectorised over frames and pixels
        ssim, cs = _ssim_cs(a, b, kernel, c1, c2)
        terms.append(ssim if j == m - 1 else cs)
        if j < m - 1:
            a, b = _downsample2(a), _downsample2(b)
    vals = np.maximum(np.stack(terms, axis=1), 0.0)  # [N, m]; negative cs -> 0 (no NaN powers)
    return MsssimResult(np.prod(vals ** w[None, :], axis=1), m, tuple(float(x) for x in w))
