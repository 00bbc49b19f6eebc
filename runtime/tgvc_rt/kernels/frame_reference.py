"""NumPy reference of the frame kernels (``image_input.cu``, ``flow_upsample.cu``, ``frame_output.cu``).

Each function computes, in float32 and in the same order, what its kernel computes, and equals the
host code path the interpolating decoder runs today:

* ``image_input``: ``tgvc_rt.models.interpolator.image_input`` without the batch axis;
* ``flow_upsample``: ``pad_edges(_full_res(grid, H, W), Hp, Wp)`` of ``tgvc_rt.decoder.interpolate``,
  i.e. ``cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR)`` of a 5-channel float32 grid with
  OpenCV's own coefficients (``linear_taps``), then edge padding;
* ``frame_output``: ``tgvc_rt.models.interpolator.frames_output``, and with ``reduce=2`` the uint8
  frames reduced by ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` (exact 2x: the rounded-up mean
  of each 2 x 2 block).

Pure NumPy (no OpenCV, no CUDA): the tests compare it with both the host path and the kernels, and
a host emulation of the device decode loop can use it in place of the kernels.
"""
from __future__ import annotations

import numpy as np

DTYPES = {"float32": np.float32, "float16": np.float16}


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    return a.astype(DTYPES[dtype], copy=False)


def _edge_index(n: int, size: int) -> np.ndarray:
    """Source index of each of ``n`` padded positions over ``size`` real ones (bottom/right edge)."""
    return np.minimum(np.arange(n), size - 1)


def image_input(frame: np.ndarray, hp: int, wp: int, dtype: str = "float32") -> np.ndarray:
    """uint8 [H, W, 3] -> [3, hp, wp] in [0, 1] (x * float32(1/255)), edge-padded bottom/right."""
    height, width = frame.shape[:2]
    rows, cols = _edge_index(hp, height), _edge_index(wp, width)
    out = frame[rows][:, cols].transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
    return _cast(out, dtype)


def linear_taps(n_in: int, n_out: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps along one axis: (i0, i1, w0, w1), output ``d`` = w0 src[i0] + w1 src[i1].

    f = float32((d + 0.5) * (1 / (n_out / n_in)) - 0.5) in double, s = floor(f), f -= s in float32,
    weights (1 - f, f). ``clamp`` (OpenCV's horizontal pass): s < 0 -> (0, 0), s >= n_in - 1 ->
    (n_in - 1, 0); otherwise (its vertical pass) f is kept and only the indices are clamped.
    """
    scale = 1.0 / (n_out / n_in)
    f = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f)
    f = f - s
    s = s.astype(np.int64)
    if clamp:
        f[s < 0] = 0
        s[s < 0] = 0
        f[s >= n_in - 1] = 0
        s[s >= n_in - 1] = n_in - 1
    return np.clip(s, 0, n_in - 1), np.clip(s + 1, 0, n_in - 1), np.float32(1) - f, f


def flow_upsample(grid: np.ndarray, height: int, width: int, hp: int, wp: int, *, unit_weight: bool = False,
                  dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """float32 [h, w, C] (C = 5: flow_a, flow_b, weight; or 4) -> (flow [4, hp, wp], weight [1, hp, wp]):
    bilinear to height x width as cv2.resize(INTER_LINEAR) does, edge-padded to hp x wp.
    ``unit_weight`` (or C == 4): the weight channel is a grid of ones, interpolated the same way."""
    grid = np.asarray(grid, np.float32)
    h, w, c = grid.shape
    if c not in (4, 5):
        raise ValueError(f"the motion grid has 4 or 5 channels, got {c}")
    if unit_weight or c == 4:
        grid = np.concatenate([grid[..., :4], np.ones((h, w, 1), np.float32)], axis=-1)
    x0, x1, a0, a1 = (t[_edge_index(wp, width)] for t in linear_taps(w, width, clamp=True))
    y0, y1, b0, b1 = (t[_edge_index(hp, height)] for t in linear_taps(h, height, clamp=False))
    planes = grid.transpose(2, 0, 1)  # [5, h, w]
    rows = planes[:, :, x0] * a0 + planes[:, :, x1] * a1  # [5, h, wp]
    out = rows[:, y0] * b0[:, None] + rows[:, y1] * b1[:, None]  # [5, hp, wp]
    return _cast(out[:4], dtype), _cast(out[4:5], dtype)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """clip(rint(x * 255), 0, 255) as uint8 (x float32; rint rounds half to even)."""
    return np.clip(np.rint(frames.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)


def frame_output(frames: np.ndarray, height: int, width: int, reduce: int = 1) -> np.ndarray:
    """[B, 3, hp, wp] in [0, 1] (float32 or float16) -> uint8 [B, height, width, 3]; ``reduce`` 2: the
    frames span 2 height x 2 width and each output pixel is (a + b + c + d + 2) >> 2 of its 2 x 2 block."""
    if reduce not in (1, 2):
        raise ValueError(f"reduce is 1 or 2, got {reduce}")
    u8 = to_uint8(frames[:, :, :reduce * height, :reduce * width]).transpose(0, 2, 3, 1)
    if reduce == 1:
        return np.ascontiguousarray(u8)
    b = u8.shape[0]
    s = u8.reshape(b, height, 2, width, 2, 3).astype(np.int32).sum(axis=(2, 4))
    return ((s + 2) >> 2).astype(np.uint8)
