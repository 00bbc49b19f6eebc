"""Dense point tracking (tgvc_rt.encoder.tracking) on synthetic clips with known motion."""
import cv2
import numpy as np
import pytest

from tgvc_rt.encoder.motion_fields import bilinear_sample
from tgvc_rt.encoder.tracking import TrackingOptions, grid_queries, track_group
from tgvc_rt.errors import InputError, OptionError

SHIFT = (1.3, -0.7)  # px per frame


def smooth_texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def translated_clip(n: int, h: int, w: int, v=SHIFT) -> np.ndarray:
    """Frame f shows the texture moved by f * v (content at p in frame 0 is at p + f v)."""
    big = smooth_texture(h + 64, w + 64)
    out = []
    for f in range(n):
        out.append(cv2.warpAffine(big, np.float32([[1, 0, 32 - v[0] * f], [0, 1, 32 - v[1] * f]]),
                                  (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP))
    return np.stack(out)


def _interior_error(tracks, n, h, w, v=SHIFT, margin=8):
    expected = tracks.xy[:, :1] + np.arange(n)[None, :, None] * np.float32(v)
    err = np.linalg.norm(tracks.xy - expected, axis=2)
    x, y = tracks.xy[..., 0], tracks.xy[..., 1]
    mask = tracks.vis & (x > margin) & (x < w - 1 - margin) & (y > margin) & (y < h - 1 - margin)
    return err[mask], mask


@pytest.mark.parametrize("method", ["dis", "lk"])
def test_subpixel_translation_recovered(method):
    n, h, w = 12, 96, 128
    clip = translated_clip(n, h, w)
    tracks = track_group(clip, TrackingOptions(method=method))
    assert tracks.num_frames == n and tracks.xy.dtype == np.float32
    assert np.all(tracks.instance == -1)
    err, mask = _interior_error(tracks, n, h, w)
    assert mask.sum() > 0.5 * mask.size * 0.5
    assert err.mean() < 0.25


def test_reverse_pass_tracks_start_on_last_frame_grid():
    n, h, w = 10, 64, 96
    clip = translated_clip(n, h, w, v=(-2.0, 0.0))  # content moves left, new texture enters right
    opts = TrackingOptions()
    tracks = track_group(clip, opts)
    q = grid_queries(w, h, opts.grid_step)
    assert tracks.num_tracks > len(q)  # content entering from the right is covered by reverse tracks
    rev = tracks.xy[len(q):, -1]
    assert np.isin(rev[:, 0], q[:, 0]).all() and np.isin(rev[:, 1], q[:, 1]).all()
    # the new tracks lie (almost all) in the strip of content unseen at frame 0
    assert np.mean(rev[:, 0] > w - 1 - 2.0 * n - opts.grid_step) > 0.8
    assert not tracks.vis[len(q):][rev[:, 0] > w - 2.0 * (n - 1), 0].any()
    # points that leave through the left edge turn invisible
    fwd = tracks.xy[: len(q)]
    left = fwd[:, 0, 0] < 2.0 * (n - 1) - 1
    assert not tracks.vis[: len(q)][left, -1].any()


def test_no_reverse_and_static_clip():
    clip = np.repeat(smooth_texture(48, 64)[None], 5, axis=0)
    tracks = track_group(clip, TrackingOptions(reverse=False, grid_step=8))
    assert tracks.num_tracks == len(grid_queries(64, 48, 8))
    assert np.abs(tracks.xy - tracks.xy[:, :1]).max() < 0.05
    assert tracks.vis.all()


def test_occlusion_makes_points_invisible():
    n, h, w = 8, 64, 96
    clip = translated_clip(n, h, w, v=(0.0, 0.0)).copy()
    rng = np.random.default_rng(3)
    for f in range(4, n):  # a new random patch appears over the centre from frame 4 on
        clip[f, 20:44, 30:66] = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    tracks = track_group(clip, TrackingOptions(reverse=False))
    x, y = tracks.xy[:, 0, 0], tracks.xy[:, 0, 1]
    inside = (x > 34) & (x < 62) & (y > 24) & (y < 40)
    assert inside.any()
    assert not tracks.vis[inside, 4:].any()
    assert tracks.vis[inside, :4].all()


def test_single_frame_group():
    clip = smooth_texture(32, 40)[None]
    tracks = track_group(clip)
    assert tracks.num_frames == 1 and tracks.vis.all()


def test_bad_inputs():
    with pytest.raises(InputError):
        track_group(np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(OptionError):
        track_group(np.zeros((2, 16, 16, 3), np.uint8), TrackingOptions(method="nope"))
    with pytest.raises(OptionError):
        track_group(np.zeros((2, 16, 16, 3), np.uint8), TrackingOptions(grid_step=0))


def test_bilinear_sample_matches_linear_field():
    yy, xx = np.mgrid[0:10, 0:12].astype(np.float32)
    field = np.stack([2 * xx + 1, 3 * yy - xx], axis=-1)
    pts = np.float32([[0.25, 0.5], [10.75, 8.5], [5.5, 3.25]])
    got = bilinear_sample(field, pts)
    want = np.stack([2 * pts[:, 0] + 1, 3 * pts[:, 1] - pts[:, 0]], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
