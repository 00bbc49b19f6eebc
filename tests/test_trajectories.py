"""Trajectory coding (tgvc_rt.codec.trajectories): exact round trips, caps, hostile input."""
import numpy as np
import pytest

from tgvc_rt.codec.trajectories import (PREDICTORS, TrajectoryCodingOptions,
                                          bits_per_track_point, decode_tracks, encode_tracks,
                                          reconstruct_tracks)
from tgvc_rt.errors import BitstreamError, OptionError
from tgvc_rt.types import Tracks

W, H = 352, 288


def real_like(rng, k=40, f=16, instances=4):
    """Tracks that move with their instance (plus jitter), some occluded, some entering late."""
    inst = np.sort(rng.integers(0, instances, k)).astype(np.int32)
    vel = rng.normal(0, 2.5, (instances, 2))
    start = rng.uniform(10, [W - 10, H - 10], (k, 2))
    t = np.arange(f)[None, :, None]
    xy = start[:, None] + vel[inst][:, None] * t + rng.normal(0, 0.3, (k, f, 2)).cumsum(axis=1)
    vis = (xy[..., 0] >= 0) & (xy[..., 0] <= W - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= H - 1)
    vis[: k // 5, f // 2:] = False            # occluded for good
    vis[k // 5: k // 4, : f // 3] = False      # revealed later
    vis[k // 4: k // 3, 5:8] = False           # a gap
    return Tracks(xy.astype(np.float32), vis, inst)


def random_tracks(rng, k, f, w, h):
    xy = rng.uniform(-30, max(w, h) + 30, (k, f, 2)).astype(np.float32)
    vis = rng.random((k, f)) < rng.random()
    inst = rng.integers(-1, 7, k).astype(np.int32)
    return Tracks(xy, vis, inst)


def assert_same(a: Tracks, b: Tracks):
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.vis, b.vis)
    np.testing.assert_array_equal(a.instance, b.instance)


@pytest.mark.parametrize("predictor", sorted(PREDICTORS) + ["auto"])
@pytest.mark.parametrize("tolerance", [0.0, 1.0])
def test_round_trip_real_like(predictor, tolerance):
    rng = np.random.default_rng(0)
    tracks = real_like(rng)
    opts = TrajectoryCodingOptions(step=0.5, predictor=predictor, tolerance=tolerance)
    data = encode_tracks(tracks, W, H, opts)
    dec = decode_tracks(data, tracks.num_frames, W, H)
    assert_same(dec, reconstruct_tracks(tracks, W, H, opts))
    err = np.abs(dec.xy - tracks.xy)[tracks.vis]
    assert err.max() <= max(0.25, tolerance) + 1e-5
    assert 0 < bits_per_track_point(tracks, len(data)) < 16


def test_round_trip_random_sizes_steps_and_instances():
    rng = np.random.default_rng(1)
    for _ in range(25):
        k, f = int(rng.integers(0, 30)), int(rng.integers(1, 20))
        w, h = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        tracks = random_tracks(rng, k, f, w, h)
        for predictor in ("previous", "instance_velocity", "auto"):
            opts = TrajectoryCodingOptions(step=int(rng.integers(1, 64)) / 16, predictor=predictor,
                                           tolerance=float(rng.choice([0.0, 0.8, 3.0])))
            dec = decode_tracks(encode_tracks(tracks, w, h, opts), f, w, h)
            assert_same(dec, reconstruct_tracks(tracks, w, h, opts))


def test_invisible_points_interpolated_and_nonfinite_dropped():
    xy = np.zeros((1, 5, 2), np.float32)
    xy[0, :, 0] = [10, np.nan, 999, 16, 18]
    xy[0, :, 1] = 20
    vis = np.array([[True, True, False, True, True]])
    rec = reconstruct_tracks(Tracks(xy, vis), W, H, TrajectoryCodingOptions(tolerance=0.0))
    np.testing.assert_array_equal(rec.vis, [[True, False, False, True, True]])
    np.testing.assert_allclose(rec.xy[0, :, 0], [10, 12, 14, 16, 18])


def test_empty_track_set_is_tiny():
    data = encode_tracks(Tracks.empty(16), W, H)
    assert len(data) <= 2
    dec = decode_tracks(data, 16, W, H)
    assert dec.num_tracks == 0 and dec.num_frames == 16
    assert bits_per_track_point(dec, len(data)) == 0.0


def test_tracks_that_are_never_visible():
    tracks = Tracks(np.full((3, 4, 2), 7, np.float32), np.zeros((3, 4), bool))
    dec = decode_tracks(encode_tracks(tracks, W, H), 4, W, H)
    assert_same(dec, reconstruct_tracks(tracks, W, H))
    assert not dec.vis.any()


def test_truncated_garbage_and_trailing_bytes_raise():
    rng = np.random.default_rng(2)
    tracks = real_like(rng)
    data = encode_tracks(tracks, W, H)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode_tracks(data[:n], 16, W, H)
    for extra in (b"\x00", b"\x01\x02"):
        with pytest.raises(BitstreamError):
            decode_tracks(data + extra, 16, W, H)
    for _ in range(300):  # garbage: an error or a valid track set, never a crash
        junk = rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8).tobytes()
        try:
            dec = decode_tracks(junk, 16, W, H)
            assert dec.xy.shape == (dec.num_tracks, 16, 2)
        except BitstreamError:
            pass
    for _ in range(300):  # bit flips
        b = bytearray(data)
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        try:
            decode_tracks(bytes(b), 16, W, H)
        except BitstreamError:
            pass


def test_caps_checked_before_allocating():
    with pytest.raises(BitstreamError):
        decode_tracks(b"\xff\xff\xff\xff\x0f", 16, W, H)   # K far above 65535
    with pytest.raises(BitstreamError):
        decode_tracks(b"\xff\xff\x03\x08\x01\x01", 16, W, H)  # K = 65535 is allowed, header cut
    with pytest.raises(BitstreamError):
        decode_tracks(b"\x00", 0, W, H)
    with pytest.raises(BitstreamError):
        decode_tracks(b"\x00", 16, 0, H)


def test_bad_options():
    tracks = real_like(np.random.default_rng(3), k=4)
    with pytest.raises(OptionError):
        encode_tracks(tracks, W, H, TrajectoryCodingOptions(step=0.3))
    with pytest.raises(OptionError):
        encode_tracks(tracks, W, H, TrajectoryCodingOptions(predictor="psychic"))
    bad = Tracks(tracks.xy, tracks.vis, np.full(4, -5, np.int32))
    with pytest.raises(OptionError):
        encode_tracks(bad, W, H)
