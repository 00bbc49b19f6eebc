"""What every group interpolator shares: checked keyframes and the group's frame buffer."""
from __future__ import annotations

import numpy as np

from tgvc_rt.errors import OptionError


def group_frames(key_a: np.ndarray, key_b: np.ndarray, num_frames: int) -> np.ndarray:
    """uint8 [F, H, W, 3] for a group of ``num_frames`` frames, frame 0 = ``key_a`` and (F >= 2)
    frame F-1 = ``key_b``; the in-between frames are left for the interpolator to fill."""
    key_a = np.asarray(key_a)
    key_b = np.asarray(key_b)
    if key_a.shape != key_b.shape or key_a.ndim != 3 or key_a.shape[2] != 3:
        raise OptionError(f"keyframes must be two uint8 [H, W, 3] of one size, got {key_a.shape} {key_b.shape}")
    if num_frames < 1:
        raise OptionError("a group needs at least one frame")
    out = np.empty((num_frames, *key_a.shape), np.uint8)
    out[0] = key_a
    if num_frames > 1:
        out[-1] = key_b
    return out
