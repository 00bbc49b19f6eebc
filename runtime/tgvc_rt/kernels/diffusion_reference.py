"""NumPy reference of the diffusion kernels (``latent_affine.cu``, ``gaussian_blur.cu``,
``residual_output.cu``).

Each function computes, in float32 and in the same order, what its kernel computes, and equals the
host code path the diffusion decoder runs today:

* ``normalise`` / ``denormalise``: ``tgvc_rt.backends.base.Autoencoder.encode``'s
  ``(latent - mean) / std`` and ``decode_float``'s ``zn * std + mean`` (bit for bit);
* ``gaussian_blur``: ``cv2.GaussianBlur(img, (0, 0), sigma)`` of a float32 H x W x 3 image, on
  planes [P, H, W]: OpenCV's kernel size and float taps (``gaussian_taps``, equal to
  ``cv2.getGaussianKernel``), BORDER_REFLECT_101, a row pass then OpenCV's symmetric column pass,
  accumulated with fused multiply-adds as OpenCV's AVX2 code does. Within a few float32 ulps of cv2
  everywhere; for kernels of more than 5 taps (sigma >= 0.5625, the decoder's 4 included) equal to
  cv2 (AVX2 build) bit for bit except at the last < 8 floats of each interleaved row, which OpenCV's
  scalar tail rounds a little differently (OpenCV filters 3- and 5-tap kernels by other code);
* ``residual_change`` / ``residual_compose``: the ``output == "residual"`` branch of
  ``tgvc_rt.decoder.diffusion.iter_diffused`` (``change = both[:n] - both[n:]`` of the decoder's
  images times float32(255), then ``clip(rint(warp + change), 0, 255)``), bit for bit.

Pure NumPy (no OpenCV, no CUDA): the tests compare it with both the host path and the kernels.
"""
from __future__ import annotations

import math

import numpy as np


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, np.float32).reshape((1, -1) + (1,) * (ndim - 2))


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 [N, C, ...] -> (x - mean[c]) / std[c] (encoder latents -> normalised latents)."""
    x = np.asarray(x, np.float32)
    return (x - _per_channel(mean, x.ndim)) / _per_channel(std, x.ndim)


def denormalise(zn: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 [N, C, ...] -> zn * std[c] + mean[c] (normalised latents -> decoder input)."""
    zn = np.asarray(zn, np.float32)
    return zn * _per_channel(std, zn.ndim) + _per_channel(mean, zn.ndim)


# ---- Gaussian blur ---------------------------------------------------------------------------
def gaussian_ksize(sigma: float) -> int:
    """OpenCV's kernel size for a float image and ksize (0, 0): cvRound(sigma * 8 + 1) | 1."""
    if not 0.0 < float(sigma) < 1e6:
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    return int(np.rint(float(sigma) * 4 * 2 + 1)) | 1


def gaussian_taps(sigma: float) -> np.ndarray:
    """float32 [ksize] = cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F) (OpenCV's bit-exact double
    computation: exp(x^2 * -0.125 / sigma^2) for x = 2 (i - (n - 1) / 2), normalised by 1 / sum)."""
    n = gaussian_ksize(sigma)
    sigma = float(sigma)
    scale2 = -0.125 / (sigma * sigma)
    half = (n - 1) // 2
    values = [math.exp(float(x * x) * scale2) for x in range(1 - n, 0, 2)]
    total = 0.0
    for v in values:
        total += v
    mul = 1.0 / (total * 2 + 1.0)
    taps = np.empty(n, np.float32)
    for i, v in enumerate(values):
        taps[i] = taps[n - 1 - i] = np.float32(v * mul)
    taps[half] = np.float32(mul)
    return taps


def fma32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add a * b + c, rounded once (as fmaf / __fmaf_rn).

    a * b is exact in float64; the float64 sum is made round-to-odd from its exact error (TwoSum),
    which then rounds to float32 as the exact value would."""
    a, b, c = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    even = (s.view(np.int64) & 1) == 0
    s = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def reflect101(i: np.ndarray, n: int) -> np.ndarray:
    """OpenCV's borderInterpolate(i, n, BORDER_REFLECT_101), reflected repeatedly when needed."""
    i = np.asarray(i, np.int64)
    if n == 1:
        return np.zeros_like(i)
    while ((i < 0) | (i >= n)).any():
        i = np.where(i < 0, -i, np.where(i >= n, 2 * n - 2 - i, i))
    return i


def gaussian_rows(planes: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """The row pass over [..., H, W]: s = x[-r] k[0], then s = fma(x[j - r], k[j], s), j = 1 .. n - 1."""
    n, width = len(taps), planes.shape[-1]
    r = n // 2
    xs = np.arange(width)
    acc = planes[..., reflect101(xs - r, width)] * taps[0]
    for j in range(1, n):
        acc = fma32(planes[..., reflect101(xs - r + j, width)], taps[j], acc)
    return acc


def gaussian_cols(planes: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """The symmetric column pass over [..., H, W]: s = t[0] k[r], then s = fma(t[+i] + t[-i], k[r + i], s)."""
    r, height = len(taps) // 2, planes.shape[-2]
    ys = np.arange(height)
    acc = planes * taps[r]
    for i in range(1, r + 1):
        pair = planes[..., reflect101(ys + i, height), :] + planes[..., reflect101(ys - i, height), :]
        acc = fma32(pair, taps[r + i], acc)
    return acc


def gaussian_blur(planes: np.ndarray, sigma: float) -> np.ndarray:
    """float32 planes [..., H, W] -> each plane as cv2.GaussianBlur(plane, (0, 0), sigma) blurs it."""
    taps = gaussian_taps(sigma)
    return gaussian_cols(gaussian_rows(np.asarray(planes, np.float32), taps), taps)


# ---- residual output -------------------------------------------------------------------------
def residual_change(dz: np.ndarray, dw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decoder images dz, dw [B, 3, Hp, Wp] in [0, 1] (float32 or float16) -> float32 change planes
    [B, 3, height, width] = dz * float32(255) - dw * float32(255)."""
    k = np.float32(255.0)
    a = np.asarray(dz)[:, :, :height, :width].astype(np.float32) * k
    b = np.asarray(dw)[:, :, :height, :width].astype(np.float32) * k
    return a - b


def residual_compose(change: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """float32 change [B, 3, H, W] + uint8 warp frames [B, H, W, 3] -> uint8 [B, H, W, 3] =
    clip(rint(float32(warp) + change), 0, 255); NaN gives 0."""
    v = warp.astype(np.float32) + np.asarray(change, np.float32).transpose(0, 2, 3, 1)
    return np.clip(np.rint(np.nan_to_num(v, nan=0.0)), 0, 255).astype(np.uint8)
