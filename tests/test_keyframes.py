"""Keyframe planning: endpoints, gaps, scene cuts, rate-adaptive gap choice."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tgvc_rt.encoder.keyframes import KeyframeOptions, detect_scene_cuts, plan_keyframes
from tgvc_rt.errors import OptionError


def _scene(seed: int, n: int, speed: float, h: int = 72, w: int = 96) -> np.ndarray:
    """A smooth random texture panned by ``speed`` px per frame."""
    rng = np.random.default_rng(seed)
    big = cv2.resize(rng.integers(0, 256, (h // 6, (w + int(speed * n) + 8) // 6, 3), dtype=np.uint8),
                     (w + int(speed * n) + 8, h), interpolation=cv2.INTER_CUBIC)
    return np.stack([big[:, int(speed * f):int(speed * f) + w] for f in range(n)])


def _check_plan(keys: list[int], n: int, opts: KeyframeOptions) -> None:
    assert keys[0] == 0 and keys[-1] == n - 1 and keys == sorted(set(keys))
    assert max(np.diff(keys)) <= opts.max_gap


def test_static_clip_uses_long_gaps():
    frames = np.repeat(_scene(1, 1, 0), 40, axis=0)
    opts = KeyframeOptions()
    keys = plan_keyframes(frames, opts)
    _check_plan(keys, 40, opts)
    assert len(keys) <= 4  # 40 frames / 15


def test_single_and_two_frames():
    assert plan_keyframes(_scene(1, 1, 0)) == [0]
    assert plan_keyframes(_scene(1, 2, 1)) == [0, 1]
    with pytest.raises(OptionError):
        plan_keyframes(np.zeros((0, 8, 8, 3), np.uint8))


def test_scene_cut_gets_keyframes_on_both_sides():
    other = (_scene(2, 20, 0.5) * np.array([0.3, 0.6, 1.0])).astype(np.uint8)  # new colours
    clip = np.concatenate([_scene(1, 20, 0.5), other])
    assert detect_scene_cuts(clip) == [20]
    keys = plan_keyframes(clip)
    assert 19 in keys and 20 in keys
    _check_plan(keys, 40, KeyframeOptions())


def test_no_cut_in_a_smooth_pan():
    assert detect_scene_cuts(_scene(3, 30, 3.0)) == []


def test_fast_motion_gets_shorter_gaps_and_rate_matters():
    fast = _scene(4, 46, 6.0)
    slow = _scene(4, 46, 0.3)
    opts = KeyframeOptions()
    k_fast, k_slow = plan_keyframes(fast, opts), plan_keyframes(slow, opts)
    _check_plan(k_fast, 46, opts)
    _check_plan(k_slow, 46, opts)
    assert len(k_fast) > len(k_slow)
    # at a much lower rate keyframes are dearer: never more of them
    assert len(plan_keyframes(fast, opts, bpp=0.0005)) <= len(plan_keyframes(fast, opts, bpp=0.05))
    # non-adaptive: fixed long gaps
    fixed = plan_keyframes(fast, KeyframeOptions(adaptive_gap=False))
    assert len(fixed) <= len(k_fast)


def test_min_gap_respected_without_cuts():
    opts = KeyframeOptions(max_gap=15, min_gap=4)
    for n in (17, 18, 19, 31, 33):
        keys = plan_keyframes(_scene(5, n, 0.2), opts)
        _check_plan(keys, n, opts)
        assert min(np.diff(keys)) >= opts.min_gap


def test_bad_options():
    with pytest.raises(OptionError):
        plan_keyframes(_scene(1, 5, 0), KeyframeOptions(min_gap=8, max_gap=4))
    with pytest.raises(OptionError):
        plan_keyframes(_scene(1, 5, 0), bpp=0.0)
