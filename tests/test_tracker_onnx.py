"""The shipped ONNX point tracker on a synthetic translating texture (onnxruntime only, no torch)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tgvc_rt.encoder.tracker_onnx import DEFAULT_TRACKER, track_points_onnx
from tgvc_rt.errors import InputError

pytestmark = pytest.mark.skipif(not DEFAULT_TRACKER.is_file(), reason="default model set not exported")

SHIFT = np.array([1.7, -1.2], np.float32)  # px per frame


def translating_clip(frames: int = 6, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """RGB uint8 [T, H, W, 3]: a smooth random texture moving by SHIFT px per frame."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h + 64, w + 64)).astype(np.float32), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255.0
    out = []
    for t in range(frames):
        m = np.float32([[1, 0, 32 - SHIFT[0] * t], [0, 1, 32 - SHIFT[1] * t]])
        grey = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        out.append(np.repeat(np.clip(grey + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return np.stack(out)


def test_tracks_translation():
    clip = translating_clip()
    qx, qy = np.meshgrid(np.arange(24, 104, 16), np.arange(24, 72, 16))
    queries = np.stack([qx.ravel(), qy.ravel()], 1).astype(np.float32)
    xy, vis = track_points_onnx(clip, queries)
    assert xy.shape == (len(queries), len(clip), 2) and xy.dtype == np.float32
    assert vis.shape == (len(queries), len(clip)) and vis.dtype == bool
    truth = queries[:, None] + SHIFT[None, None] * np.arange(len(clip))[None, :, None]
    assert np.abs(xy - truth).max() < 0.3
    assert vis.all()


def test_point_leaving_the_frame_is_lost():
    clip = translating_clip(frames=8)
    xy, vis = track_points_onnx(clip, np.array([[126.0, 50.0], [60.0, 50.0]], np.float32))
    assert vis[1].all()
    assert not vis[0, -1] and vis[0, 0]
    assert np.all(np.diff(vis[0].astype(int)) <= 0)  # cumulative: once lost, stays lost


def test_degenerate_sizes_and_errors():
    clip = translating_clip(frames=3)
    xy, vis = track_points_onnx(clip, np.zeros((0, 2), np.float32))
    assert xy.shape == (0, 3, 2) and vis.shape == (0, 3)
    xy, vis = track_points_onnx(clip[:1], np.array([[5.0, 6.0]], np.float32))
    assert xy.shape == (1, 1, 2) and vis.all()
    with pytest.raises(InputError):
        track_points_onnx(clip[..., 0], np.zeros((1, 2), np.float32))


def test_agrees_with_opencv_lk():
    clip = translating_clip()
    grey = clip[..., 0]
    queries = np.array([[30.0, 30.0], [64.5, 47.25], [90.0, 60.0]], np.float32)
    xy, _ = track_points_onnx(clip, queries)
    p = queries.reshape(-1, 1, 2)
    for t in range(1, len(clip)):
        p, status, _ = cv2.calcOpticalFlowPyrLK(grey[t - 1], grey[t], p, None, winSize=(11, 11), maxLevel=3)
        assert status.all()
        assert np.abs(p.reshape(-1, 2) - xy[:, t]).max() < 0.2
