"""Warp decoder: dense motion from sparse tracks + bidirectional occlusion-aware blending."""
from __future__ import annotations

import numpy as np
import pytest

from tgvc_rt.decoder.dense_motion import dense_motion
from tgvc_rt.decoder.warp import WarpOptions, interpolate_group
from tgvc_rt.types import Tracks

H, W, F, S = 144, 192, 9, 56  # frame size, group length, square side
X0, Y0 = 30, 32  # the square's top-left corner at frame 0


def _square_box(f: int, shift: float = 3.0) -> tuple[slice, slice]:
    """Rows and columns the square covers at frame ``f``."""
    x = int(round(X0 + shift * f))
    return slice(Y0, Y0 + S), slice(x, x + S)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    noise = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def _square_scene(shift: float = 3.0):
    """Textured SxS square moving right by ``shift`` px/frame over a static textured background."""
    rng = np.random.default_rng(7)
    bg = _texture(rng, H, W)
    fg = _texture(rng, S, S)
    frames = np.empty((F, H, W, 3), np.uint8)
    x0, y0 = X0, Y0
    for f in range(F):
        frames[f] = bg
        frames[f][_square_box(f, shift)] = fg
    # tracks: a 5x5 grid on the square + a sparse grid on the background (static)
    gy, gx = np.meshgrid(np.linspace(3, S - 4, 6), np.linspace(3, S - 4, 6), indexing="ij")
    sq = np.stack([gx.ravel() + x0, gy.ravel() + y0], -1)
    t = np.arange(F, dtype=np.float32)
    sq_xy = sq[:, None, :] + np.stack([shift * t, 0 * t], -1)[None]
    by, bx = np.meshgrid(np.arange(8, H, 24), np.arange(8, W, 24), indexing="ij")
    bgp = np.stack([bx.ravel(), by.ravel()], -1).astype(np.float32)
    keep = ~((bgp[:, 0] > x0 - 4) & (bgp[:, 0] < x0 + S + shift * F + 4) & (bgp[:, 1] > y0 - 4) & (bgp[:, 1] < y0 + S + 4))
    bg_xy = np.repeat(bgp[keep][:, None, :], F, axis=1)
    xy = np.concatenate([sq_xy, bg_xy]).astype(np.float32)
    inst = np.concatenate([np.zeros(len(sq_xy), np.int32), np.full(len(bg_xy), -1, np.int32)])
    return frames, Tracks(xy, np.ones(xy.shape[:2], bool), inst)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_static_tracks_identity():
    frames, tracks = _square_scene()
    static = Tracks(np.repeat(tracks.xy[:, :1], F, axis=1), tracks.vis, tracks.instance)
    out = interpolate_group(frames[0], frames[0], static)
    assert out.shape == (F, H, W, 3)
    assert np.array_equal(out, np.repeat(frames[:1], F, axis=0))


def test_endpoints_are_keyframes_and_deterministic():
    frames, tracks = _square_scene()
    out1 = interpolate_group(frames[0], frames[-1], tracks)
    out2 = interpolate_group(frames[0], frames[-1], tracks)
    assert np.array_equal(out1[0], frames[0]) and np.array_equal(out1[-1], frames[-1])
    assert np.array_equal(out1, out2)


def test_translating_square_beats_crossfade():
    """The tracked square moves with its tracks at full strength (mean error < 3 grey levels on it).

    The frame as a whole gains less than the square: the strip the square uncovers next to its trailing
    edge is only visible in key B and takes some of the square's motion (the price of the low
    ``prior_weight`` that real clips with sparse tracks need, docs/decoder.md).
    """
    frames, tracks = _square_scene()
    mid = F // 2
    out = interpolate_group(frames[0], frames[-1], tracks)
    fade = interpolate_group(frames[0], frames[-1], Tracks.empty(F))
    p_warp, p_fade = _psnr(out[mid], frames[mid]), _psnr(fade[mid], frames[mid])
    assert p_warp > p_fade + 1.0, (p_warp, p_fade)
    for f in range(1, F - 1):  # every in-between frame improves, and the square is where it should be
        assert _psnr(out[f], frames[f]) > _psnr(fade[f], frames[f])
        square = _square_box(f)
        assert np.abs(out[f][square].astype(float) - frames[f][square]).mean() < 3.0, f


def test_no_tracks_is_crossfade():
    frames, _ = _square_scene()
    out = interpolate_group(frames[0], frames[-1], Tracks.empty(F))
    t = 0.5
    mid = (F - 1) // 2
    expect = np.rint((1 - t) * frames[0].astype(np.float32) + t * frames[-1].astype(np.float32))
    assert np.abs(out[mid].astype(np.int16) - expect.astype(np.int16)).max() <= 1


def test_global_motion_moves_untracked_regions():
    """Camera pan: tracks on a sparse grid, the whole field follows (not only near tracks)."""
    rng = np.random.default_rng(3)
    big = _texture(rng, H, W + 40)
    frames = np.stack([big[:, 3 * f:3 * f + W] for f in range(F)])  # content moves left 3 px/frame
    gy, gx = np.meshgrid(np.arange(10, H, 30), np.arange(10, W, 30), indexing="ij")
    p = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
    xy = p[:, None, :] - np.stack([3.0 * np.arange(F), np.zeros(F)], -1)[None].astype(np.float32)
    tracks = Tracks(xy, np.ones(xy.shape[:2], bool))
    dm = dense_motion(tracks, H, W)
    # backward flow to key A at frame 4 is +12 px in x everywhere, even far from tracks
    np.testing.assert_allclose(dm.flow_a[4][..., 0], 12.0, atol=0.5)
    out = interpolate_group(frames[0], frames[-1], tracks)
    fade = interpolate_group(frames[0], frames[-1], Tracks.empty(F))
    inner = (slice(None), slice(30, W - 30))
    assert _psnr(out[4][inner], frames[4][inner]) > _psnr(fade[4][inner], frames[4][inner]) + 5.0


def test_regions_without_tracks_stay_static():
    frames, tracks = _square_scene()
    on_square = tracks.instance == 0
    dm = dense_motion(tracks.subset(np.flatnonzero(on_square)), H, W)
    # far corner of the frame: no motion
    assert np.abs(dm.flow_a[:, -3:, -3:]).max() < 0.2
    # centre of the square at frame 4 moves back by 8 px to key A
    cy, cx = int((32 + S / 2) * dm.flow_a.shape[1] / H), int((30 + 12 + S / 2) * dm.flow_a.shape[2] / W)
    assert abs(dm.residual_a[4, cy, cx, 0] + 12.0) < 1.0
    assert dm.support[4, cy, cx] > 0.7


def test_invisible_tracks_and_options():
    frames, tracks = _square_scene()
    vis = tracks.vis.copy()
    vis[:5, -3:] = False  # some tracks vanish at the end
    t2 = Tracks(tracks.xy, vis, tracks.instance)
    out = interpolate_group(frames[0], frames[-1], t2, WarpOptions(use_fb_occlusion=False))
    assert out.shape == (F, H, W, 3)


@pytest.mark.parametrize("f_", [1, 2, 3])
def test_short_groups(f_):
    frames, tracks = _square_scene()
    sub = Tracks(tracks.xy[:, :f_], tracks.vis[:, :f_], tracks.instance)
    out = interpolate_group(frames[0], frames[f_ - 1], sub)
    assert out.shape[0] == f_ and np.array_equal(out[0], frames[0])
    assert np.array_equal(out[-1], frames[f_ - 1])
