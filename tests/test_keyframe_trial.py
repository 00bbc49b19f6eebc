"""Keyframe placement by trial (--effort 1): candidate plans, sampled times, and the choice itself."""
from __future__ import annotations

import numpy as np
import pytest

from tgvc_rt.encoder.interp_probe import InterpolatorProbe, ProbeOptions
from tgvc_rt.encoder.keyframe_trial import candidate_plans, choose_keyframes, sample_times
from tgvc_rt.encoder.keyframes import KeyframeOptions, plan_keyframes
from tgvc_rt.models import load_model_set

N, H, W = 48, 96, 128


def _background(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))


def _circling_square(period: int = 12, radius: float = 26.0) -> np.ndarray:
    """A white square circling every ``period`` frames over a still background: only short gaps see it."""
    frames = np.repeat(_background()[None], N, axis=0)
    for f in range(N):
        a = 2 * np.pi * f / period
        x, y = int(W / 2 + radius * np.cos(a)) - 8, int(H / 2 + radius * np.sin(a)) - 8
        frames[f, y:y + 16, x:x + 16] = 255
    return frames


@pytest.fixture(scope="module")
def probe():
    return InterpolatorProbe(load_model_set("default").session("interpolator"), ProbeOptions(width=W))


def _budget(bpp: float):
    return lambda plan: int(bpp * W * H * N / 8)


def test_sample_times():
    assert sample_times(2, 3) == []
    assert sample_times(4, 3) == [1, 2]
    assert sample_times(16, 3) == [4, 8, 11]
    assert sample_times(16, 1) == [8]


def test_candidates_start_with_the_heuristic_plan_and_are_distinct():
    frames = _circling_square()
    options = KeyframeOptions()
    plans = candidate_plans(frames, options, 0.05)
    assert plans[0] == plan_keyframes(frames, options, bpp=0.05)
    assert len({tuple(p) for p in plans}) == len(plans)
    assert any(max(np.diff(p)) == 3 for p in plans) and any(max(np.diff(p)) == 15 for p in plans)
    assert all(p[0] == 0 and p[-1] == N - 1 for p in plans)


def test_fast_circling_motion_gets_the_short_gap(probe):
    result = choose_keyframes(_circling_square(), KeyframeOptions(), 0.05, "av1-seq", probe, _budget(0.05))
    assert max(np.diff(result.keyframes)) == 3
    assert result.mse[result.candidates.index(result.keyframes)] == min(result.mse)


def test_still_clip_gets_the_long_gap(probe):
    frames = np.repeat(_background()[None], N, axis=0)
    result = choose_keyframes(frames, KeyframeOptions(), 0.05, "av1-seq", probe, _budget(0.05))
    assert max(np.diff(result.keyframes)) == 15
