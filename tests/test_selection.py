"""Motion-aware track selection (tgvc_rt.encoder.selection) on synthetic tracks and clips."""
import cv2
import numpy as np
import pytest

from tgvc_rt.encoder.selection import SelectionOptions, limit_tracks, select_tracks
from tgvc_rt.encoder.track_features import FEATURE_NAMES, standardise, track_features
from tgvc_rt.encoder.tracking import track_group
from tgvc_rt.errors import OptionError
from tgvc_rt.types import Tracks


def texture(h, w, seed, sigma=1.5):
    img = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def square_clip(n=10, h=96, w=128, size=48, v=(2.0, 1.0)):
    """A textured square moving by v px/frame over a static textured background."""
    bg, fg = texture(h, w, 1), texture(size, size, 2)
    frames = np.repeat(bg[None], n, axis=0)
    for f in range(n):
        x, y = int(round(22 + v[0] * f)), int(round(22 + v[1] * f))
        frames[f, y:y + size, x:x + size] = fg
    return frames


def test_moving_square_selected_background_dropped():
    n, size, v = 10, 48, (2.0, 1.0)
    frames = square_clip(n, size=size, v=v)
    dense = track_group(frames)
    sel = select_tracks(dense, frames)
    n_inst = sel.instance.max() + 1
    assert sel.num_tracks >= 10 and sel.instance.min() == 0
    assert np.bincount(sel.instance).max() <= 15
    moved = sel.xy[:, -1] - sel.xy[:, 0]
    # one instance is the square: its tracks start on it and move with it
    square = [i for i in range(n_inst)
              if np.allclose(np.median(moved[sel.instance == i], axis=0), np.float32(v) * (n - 1),
                             atol=1.0)]
    assert len(square) == 1
    members = sel.instance == square[0]
    start = sel.xy[members, 0]
    on_square = (start[:, 0] > 21) & (start[:, 0] < 22 + size) \
        & (start[:, 1] > 21) & (start[:, 1] < 22 + size)
    assert members.sum() >= 10 and on_square.mean() > 0.9
    # the static background is dropped: no selected track stays put (tracks dragged along the
    # square's edges, a known weakness of flow chaining at occlusions, may form a second instance)
    assert np.linalg.norm(moved, axis=1).min() > 1.0


def test_static_clip_selects_nothing():
    frames = np.repeat(texture(64, 80, 3)[None], 6, axis=0)
    sel = select_tracks(track_group(frames), frames)
    assert sel.num_tracks == 0 and sel.num_frames == 6


def _synthetic_instances(rng, n_inst=3, per=40, f=8):
    xy, inst = [], []
    for i in range(n_inst):
        centre = rng.uniform(30, 200, 2)
        vel = rng.uniform(-4, 4, 2) + 5 * (i + 1)
        start = centre + rng.normal(0, 6, (per, 2))
        xy.append(start[:, None] + vel * np.arange(f)[None, :, None] + rng.normal(0, 0.1, (per, f, 2)))
        inst.append(np.full(per, i))
    return np.concatenate(xy).astype(np.float32), np.concatenate(inst)


def test_features_shape_and_standardise():
    rng = np.random.default_rng(0)
    xy, _ = _synthetic_instances(rng)
    vis = np.ones(xy.shape[:2], bool)
    vis[0, 5:] = False
    feats = track_features(Tracks(xy, vis))
    assert feats.shape == (xy.shape[0], len(FEATURE_NAMES)) and np.isfinite(feats).all()
    assert feats[0, FEATURE_NAMES.index("visibility_ratio")] == pytest.approx(5 / 8)
    z = standardise(feats)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-9)
    assert standardise(np.zeros((0, 3))).shape == (0, 3)


def test_selection_caps_and_renumbers():
    rng = np.random.default_rng(1)
    xy, _ = _synthetic_instances(rng, n_inst=3, per=60)
    tracks = Tracks(xy, np.ones(xy.shape[:2], bool))
    frames = np.repeat(texture(256, 256, 4)[None], xy.shape[1], axis=0)
    sel = select_tracks(tracks, frames, SelectionOptions(max_per_instance=5))
    ids = sel.instance
    assert set(ids.tolist()) == set(range(ids.max() + 1)) and ids.max() + 1 >= 2
    assert np.all(np.diff(ids) >= 0) and np.bincount(ids).max() <= 5
    capped = select_tracks(tracks, frames, SelectionOptions(max_per_instance=5, max_tracks=4))
    assert capped.num_tracks == 4
    again = select_tracks(tracks, frames, SelectionOptions(max_per_instance=5))
    np.testing.assert_array_equal(again.xy, sel.xy)  # deterministic


def test_limit_tracks_round_robin_stable():
    inst = np.array([0, 0, 0, 1, 1, 2, -1, -1], np.int32)
    k = inst.size
    xy = np.arange(k * 2 * 2, dtype=np.float32).reshape(k, 2, 2)
    tracks = Tracks(xy, np.ones((k, 2), bool), inst)
    out = limit_tracks(tracks, 3)
    np.testing.assert_array_equal(out.instance, [0, 1, 2])
    np.testing.assert_array_equal(out.xy[:, 0, 0], xy[[0, 3, 5], 0, 0])
    out = limit_tracks(tracks, 6)  # second round starts with instance 0's second track
    np.testing.assert_array_equal(out.xy[:, 0, 0], xy[[0, 1, 3, 4, 5, 6], 0, 0])
    assert limit_tracks(tracks, 20).num_tracks == k
    assert limit_tracks(tracks, 0).num_tracks == 0
    with pytest.raises(OptionError):
        limit_tracks(tracks, -1)


def test_empty_and_single_frame():
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    assert select_tracks(Tracks.empty(1), frames).num_tracks == 0
    assert select_tracks(Tracks.empty(5), np.zeros((5, 16, 16, 3), np.uint8)).num_tracks == 0
