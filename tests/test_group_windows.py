"""export/tgvc_export/group_windows.py: windows from real decoder groups (needs torch, skipped without)."""
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

from tgvc_export.group_windows import GroupWindowConfig, build_pool, sample_group_windows  # noqa: E402
from tgvc_export.warp_data import WarpClip  # noqa: E402


def _clip(n=20, h=10, w=12, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 32, h, w)).astype(np.float32)
    decoded = truth + 0.1 * rng.normal(size=truth.shape).astype(np.float32)
    groups = np.array([(0, 1), (1, 4), (4, 19)])  # F = 2 (skipped), 4, 16
    return WarpClip("x", 0.005, truth, decoded, groups)


def test_pool_skips_short_groups_and_normalises():
    mean, std = np.full(32, 1.0, np.float32), np.full(32, 2.0, np.float32)
    pool = build_pool([_clip()], mean, std)
    assert pool.groups.tolist() == [[0, 1, 4], [0, 4, 19]]
    np.testing.assert_allclose(pool.truth[0], (_clip().truth - 1.0) / 2.0, rtol=1e-6)


def test_windows_share_length_crop_and_keep_alignment():
    pool = build_pool([_clip()], np.zeros(32, np.float32), np.ones(32, np.float32))
    cfg = GroupWindowConfig(crop_h=8, crop_w=16)  # wider than the clip: edge padded
    rng = np.random.default_rng(0)
    for _ in range(5):
        truth, dec = sample_group_windows(rng, pool, 3, cfg)
        assert truth.shape == dec.shape and truth.shape[0] == 3 and truth.shape[1] in (4, 16)
        assert truth.shape[3:] == (8, 16)
        assert np.abs(truth - dec).max() < 1.0  # same frames, same crop, same flips
