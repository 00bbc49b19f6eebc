"""The decoder's memory does not grow with a keyframe group's length (it works on windows of frames).

Each check decodes a crafted stream whose groups are L frames long and the same with 2L-frame groups,
consuming the frames without keeping them, and compares the peaks of the memory Python and NumPy
allocate (tracemalloc sees NumPy's and OpenCV's arrays, and ONNX Runtime's outputs). A decoder that made
a group's frames (or its dense motion, blend weights, latents) all at once needs about twice as much
for the long groups (the decoder before windowing: 120 and 238 MB in the warp check, 538 and 1042 MB
in the diffusion one); a windowed one needs the same for both. What does grow with the group, its
tracks (K x F points) and a few numbers per frame, is small beside one frame here.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from onnx_fixtures import build_tiny_model_set
from tgvc_rt.bitstream import Bitstream, GroupPayload, StreamHeader, write_bitstream
from tgvc_rt.decoder.dense_motion import GroupMotion, dense_motion
from tgvc_rt.decoder.diffusion import DiffusionOptions
from tgvc_rt.decoder.interpolate import InterpOptions
from tgvc_rt.decoder.interpolate import iter_group as interp_iter_group
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames
from tgvc_rt.codec.keyframe_formats import CODEC_IDS
from tgvc_rt.encoder.keyframe_rate import encode_keyframes
from tgvc_rt.codec.trajectories import encode_tracks
from tgvc_rt.types import Tracks

W, H = 320, 240
FRAME_BYTES = W * H * 3
L = 90  # frames of a short group, the long ones have 2L (diffusion: windows of 16 frames in both)


def _image(shift: float) -> np.ndarray:
    """A textured picture panned by ``shift`` px."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    x = x + shift
    img = np.stack([128 + 60 * np.sin(x / 9) * np.cos(y / 13), 128 + 50 * np.cos((x + y) / 17),
                    100 + 80 * ((x // 40 + y // 40) % 2)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _tracks(frames: int, seed: int) -> Tracks:
    """A grid of points panning with the camera, a block of them moving on their own and hidden for a while."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.linspace(16, W - 16, 10), np.linspace(16, H - 16, 8))
    start = np.stack([gx.ravel(), gy.ravel()], -1)
    t = np.arange(frames)
    xy = start[:, None] + np.stack([-0.25 * t, 0.05 * t], -1)[None]
    own = np.arange(len(start)) % 7 == 0
    xy[own] += np.stack([6 * np.sin(t / 5), 4 * np.cos(t / 7)], -1)[None]
    xy += rng.normal(0, 0.2, xy.shape)
    vis = np.ones(xy.shape[:2], bool)
    vis[own, frames // 3:frames // 2] = False
    return Tracks(xy.astype(np.float32), vis)


def _stream(gap: int, groups: int = 2) -> bytes:
    """A crafted stream of ``groups`` groups of ``gap + 1`` frames (AV1 intra keyframes)."""
    indices = [g * gap for g in range(groups + 1)]
    keys = np.stack([_image(0.25 * k) for k in indices])
    keyframes = encode_keyframes(keys, list(range(len(indices))), 3000 * len(indices), "av1")
    header = StreamHeader(width=W, height=H, fps_num=30, fps_den=1, num_frames=indices[-1] + 1,
                          keyframe_codec=CODEC_IDS["av1"], flags=0, model_set_hash=bytes(16), noise_seed=1,
                          num_keyframes=len(indices), num_groups=groups)
    payloads = [GroupPayload(a, b, encode_tracks(_tracks(b - a + 1, g), W, H))
                for g, (a, b) in enumerate(zip(indices[:-1], indices[1:]))]
    return write_bitstream(Bitstream(header, {k: keyframes[i] for i, k in enumerate(indices)}, payloads))


@pytest.fixture(scope="module")
def streams():
    return {n: _stream(n) for n in (L, 2 * L)}


def _peak(frames) -> tuple[int, int]:
    """(peak traced bytes while consuming ``frames`` (a zero-argument callable giving an iterator), frames)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        count = 0
        for frame in frames():
            assert frame.shape == (H, W, 3)
            count += 1
            del frame
        return tracemalloc.get_traced_memory()[1] - base, count
    finally:
        tracemalloc.stop()


def _check(peaks: dict[int, tuple[int, int]], frames_short: int) -> None:
    (short, n_short), (long, n_long) = peaks[L], peaks[2 * L]
    assert (n_short, n_long) == (frames_short, 2 * frames_short - 1)
    # the same peak for twice as long groups: what the longer group adds (its tracks and a few numbers per
    # frame) is well under one frame; a decoder holding a group's frames at once would add L of them
    assert long < short + FRAME_BYTES, (short, long)


def test_warp_decode_memory_does_not_grow_with_the_group(streams):
    peaks = {n: _peak(lambda n=n: iter_decoded_frames(streams[n], DecodeOptions(mode="warp"))) for n in streams}
    _check(peaks, 2 * L + 1)


def test_diffusion_decode_memory_does_not_grow_with_the_group(streams, tmp_path_factory):
    """Diffusion on the warp frames (a tiny model set without an interpolator): windows of 16 frames."""
    models = build_tiny_model_set(tmp_path_factory.mktemp("tiny"))
    options = DecodeOptions(mode="diffusion", model_set=str(models), check_model_set=False,
                            diffusion=DiffusionOptions(steps=1, strength=0.5))
    peaks = {n: _peak(lambda n=n: iter_decoded_frames(streams[n], options)) for n in streams}
    _check(peaks, 2 * L + 1)


def _fake_interpolator(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stands in for the IFNet (same inputs and outputs, a plain average): what is measured is the
    decoder's own buffers."""
    t = feeds["timestep"][:, None, None, None]
    frame = (1 - t) * feeds["img0"] + t * feeds["img1"] + 0 * feeds["flow_init"][:, :1]
    b, _, hp, wp = frame.shape
    return {"frame": frame, "flow": np.zeros((b, 4, hp, wp), np.float32),
            "mask": np.full((b, 1, hp, wp), 0.5, np.float32)}


@pytest.mark.parametrize("batch", [1, 4])
def test_interp_memory_does_not_grow_with_the_group(batch):
    keys = _image(0), _image(0.25 * L), _image(0.5 * L)
    options = InterpOptions(batch=batch)

    def frames(n):
        return interp_iter_group(keys[0], keys[n // L], _tracks(n + 1, 0), _fake_interpolator, options)

    peaks = {n: _peak(lambda n=n: frames(n)) for n in (L, 2 * L)}
    _check(peaks, L + 1)


def test_dense_motion_of_frame_ranges_equals_the_whole_group():
    """GroupMotion.frames gives, for any range and in any order, exactly the whole group's fields (the
    blur runs on the same channel chunks), with the global (camera) model in use."""
    tracks = _tracks(150, 0)
    full = dense_motion(tracks, H, W)
    motion = GroupMotion(tracks, H, W)
    assert motion.glob is not None and motion.has_prior
    fields = ("prior_a", "prior_b", "residual_a", "residual_b", "support", "occ_vis_a", "occ_vis_b")
    for start, stop in [(0, 1), (149, 150), (1, 17), (17, 18), (18, 90), (5, 12), (60, 150), (0, 150)]:
        part = motion.frames(start, stop)
        assert part.start == start
        for name in fields:
            assert np.array_equal(getattr(part, name), getattr(full, name)[start:stop]), (start, stop, name)
    with pytest.raises(ValueError):
        motion.frames(10, 10)
