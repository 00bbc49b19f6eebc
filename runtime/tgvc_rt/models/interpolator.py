"""I/O conventions of the model set's ``interpolator`` (docs/models.md), shared by decoder and encoder.

The graph takes frames whose sides are multiples of ``pad`` (the manifest's ``pad``, 64 for RIFE
v4): frames are edge-padded at the bottom/right, which leaves pixel coordinates unchanged. Track
inputs need K >= 1 rows; "no tracks" is one zero-weight row. ``guide`` = (sigma px, lambda,
strength); strength 0 switches the flow guidance off, an all-zero ``init_weight`` the initial flow.
"""
from __future__ import annotations

import numpy as np

DEFAULT_PAD = 64


def padded_size(height: int, width: int, pad: int = DEFAULT_PAD) -> tuple[int, int]:
    return -(-height // pad) * pad, -(-width // pad) * pad


def pad_edges(a: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """Edge-pad the last two axes of ``a`` to ``hp x wp`` (bottom/right)."""
    h, w = a.shape[-2:]
    if (h, w) == (hp, wp):
        return a
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, hp - h), (0, wp - w)], mode="edge")


def image_input(frame: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [1, 3, hp, wp] in [0, 1]."""
    return pad_edges(frame.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255), hp, wp)[None]


def no_track_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's track inputs that constrain nothing: one zero-weight row of track_xy [1, 2],
    track_flow [1, 4] and track_weight [1, 2] (the graph takes no empty K axis)."""
    return np.zeros((1, 2), np.float32), np.zeros((1, 4), np.float32), np.zeros((1, 2), np.float32)


def unsteered(batch: int, hp: int, wp: int) -> dict[str, np.ndarray]:
    """The steering inputs of ``batch`` frames of ``hp x wp`` with both steerings off (plain RIFE)."""
    xy, flow, weight = no_track_rows()
    return {"flow_init": np.zeros((batch, 4, hp, wp), np.float32),
            "init_weight": np.zeros((batch, 1, hp, wp), np.float32),
            "track_xy": np.repeat(xy[None], batch, 0), "track_flow": np.repeat(flow[None], batch, 0),
            "track_weight": np.repeat(weight[None], batch, 0), "guide": np.array([1.0, 1.0, 0.0], np.float32)}


def frames_output(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """float [B, 3, hp, wp] in [0, 1] -> uint8 [B, height, width, 3]."""
    out = frame[:, :, :height, :width].transpose(0, 2, 3, 1) * np.float32(255.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
