"""Dense motion between consecutive frames (classical OpenCV flow) and sampling it at points.

Plain helpers for :mod:`tgvc_rt.encoder.tracking`:

* :func:`to_gray` turns an RGB clip into the uint8 luma clip the flow methods work on.
* :func:`dis_flows` computes forward (t -> t+1) and backward (t+1 -> t) DIS optical flow for every
  consecutive pair, once, so both the forward and the reversed tracking pass reuse them.
* :func:`bilinear_sample` reads a flow field at sub-pixel point positions (pixel centres at integers,
  border values repeated outside the frame).
* :func:`lk_step` moves points one frame with pyramidal Lucas-Kanade and checks them backwards.
* :func:`lk_refine` polishes flow-predicted positions with one full-resolution LK solve.
"""
from __future__ import annotations

import cv2
import numpy as np

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 [F, H, W, 3] RGB -> uint8 [F, H, W] luma (BT.601 weights, as cv2.COLOR_RGB2GRAY)."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(frames.astype(np.float32) @ w + 0.5, 0, 255).astype(np.uint8)


def dis_flows(gray: np.ndarray, preset: str = "fast", finest_scale: int | None = 1
              ) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward DIS flow of a luma clip.

    Returns ``(fwd, bwd)``, both float32 [F-1, H, W, 2] (dx, dy) where ``fwd[t]`` maps frame t to t+1
    (frame t's pixel p lands at p + fwd[t][p]) and ``bwd[t]`` maps frame t+1 back to frame t.
    ``finest_scale`` overrides the preset's finest pyramid level (0 = full resolution; None keeps the
    preset's own, 2 for "fast"): level 1 halves the sub-pixel error of "fast" for ~2x its time.
    """
    dis = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])
    if finest_scale is not None:
        dis.setFinestScale(int(finest_scale))
    n, h, w = gray.shape
    fwd = np.empty((max(n - 1, 0), h, w, 2), np.float32)
    bwd = np.empty_like(fwd)
    for t in range(n - 1):
        fwd[t] = dis.calc(gray[t], gray[t + 1], None)
        bwd[t] = dis.calc(gray[t + 1], gray[t], None)
    return fwd, bwd


def bilinear_sample(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample ``field`` [H, W, C] at points ``xy`` [N, 2] (x, y) bilinearly -> float32 [N, C].

    Pixel centres are at integer coordinates; points outside the frame read the nearest border
    value (the positions are clamped first)."""
    h, w = field.shape[:2]
    x = np.clip(xy[:, 0], 0.0, w - 1.0)
    y = np.clip(xy[:, 1], 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = (x - x0)[:, None].astype(np.float32)
    ay = (y - y0)[:, None].astype(np.float32)
    top = field[y0, x0] * (1 - ax) + field[y0, x1] * ax
    bottom = field[y1, x0] * (1 - ax) + field[y1, x1] * ax
    return (top * (1 - ay) + bottom * ay).astype(np.float32)


def lk_step(
    prev: np.ndarray, nxt: np.ndarray, xy: np.ndarray, window: int = 15, levels: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move points ``xy`` [N, 2] from luma frame ``prev`` to ``nxt`` with pyramidal LK.

    Returns ``(new_xy, fb_error, ok, patch_error)``: the tracked positions, the forward-backward
    error in pixels (tracking ``new_xy`` back to ``prev``), LK's own success flags for both passes,
    and the forward patch error (mean absolute grey-level difference over the window)."""
    pts = np.ascontiguousarray(xy, dtype=np.float32).reshape(-1, 1, 2)
    if pts.shape[0] == 0:
        return xy.astype(np.float32), np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.01)
    kw = dict(winSize=(window, window), maxLevel=levels, criteria=crit)
    fwd, st1, err = cv2.calcOpticalFlowPyrLK(prev, nxt, pts, None, **kw)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, fwd, None, **kw)
    new_xy = fwd.reshape(-1, 2)
    fb = np.linalg.norm(back.reshape(-1, 2) - xy, axis=1).astype(np.float32)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & np.isfinite(new_xy).all(axis=1)
    return new_xy, fb, ok, err.ravel().astype(np.float32)


def lk_refine(prev: np.ndarray, nxt: np.ndarray, xy: np.ndarray, guess: np.ndarray,
              window: int = 9, min_eig: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Refine the positions ``guess`` [N, 2] in ``nxt`` of points ``xy`` [N, 2] of ``prev`` with one
    full-resolution LK solve started at ``guess``; points LK gives up on (too little texture:
    smallest eigenvalue of the window's normalised gradient matrix below ``min_eig``, or a move of a
    whole window) keep their guess. Also returns LK's patch error (mean absolute grey-level
    difference over the window, at the final position; 0 for points that kept their guess)."""
    if xy.shape[0] == 0:
        return guess, np.zeros(0, np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.01)
    init = np.ascontiguousarray(guess, dtype=np.float32).reshape(-1, 1, 2).copy()
    out, st, err = cv2.calcOpticalFlowPyrLK(
        prev, nxt, np.ascontiguousarray(xy, dtype=np.float32).reshape(-1, 1, 2), init,
        winSize=(window, window), maxLevel=0, criteria=crit, flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
        minEigThreshold=min_eig)
    out = out.reshape(-1, 2)
    ok = (st.ravel() == 1) & np.isfinite(out).all(axis=1) & (np.abs(out - guess).max(axis=1) < window)
    return np.where(ok[:, None], out, guess).astype(np.float32), np.where(ok, err.ravel(), 0.0)
