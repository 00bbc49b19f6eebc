"""What every group interpolator shares: checked keyframes, the window size, and stacking.

The interpolators are generators: they yield a group's frames one by one, in order (frame 0 is key A,
frame F-1 key B), and compute what the frames need (dense motion, blend weights, model inputs) a
window of frames at a time, so a decoder's memory does not grow with the group's length.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tgvc_rt.errors import OptionError

MOTION_WINDOW = 16
"""Most in-between frames whose dense motion (and what is derived from it) an interpolator computes at once;
the output does not depend on it."""
MOTION_CELLS = 1 << 16
"""Most motion-grid cells x frames computed at once (about 200 bytes each with their temporaries: 13 MB).
At CIF (a 72 x 88 grid) that is 10 frames, at 1280 x 720 one."""


def motion_window(grid: tuple[int, int]) -> int:
    """Frames per dense-motion window for a motion grid of ``grid`` (h, w) cells."""
    return max(1, min(MOTION_WINDOW, MOTION_CELLS // (grid[0] * grid[1])))


def check_keys(key_a: np.ndarray, key_b: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The two keyframes as uint8 [H, W, 3] of one size (an OptionError otherwise, or if the group has no
    frame)."""
    key_a = np.asarray(key_a)
    key_b = np.asarray(key_b)
    if key_a.shape != key_b.shape or key_a.ndim != 3 or key_a.shape[2] != 3:
        raise OptionError(f"keyframes must be two uint8 [H, W, 3] of one size, got {key_a.shape} {key_b.shape}")
    if num_frames < 1:
        raise OptionError("a group needs at least one frame")
    return np.ascontiguousarray(key_a, dtype=np.uint8), np.ascontiguousarray(key_b, dtype=np.uint8)


def collect(frames: Iterable[np.ndarray], num_frames: int) -> np.ndarray:
    """A group's frames from an interpolator, stacked: uint8 [F, H, W, 3]."""
    out = None
    count = 0
    for frame in frames:
        if count == num_frames:
            raise ValueError(f"the interpolator gave more than {num_frames} frames for a group of {num_frames}")
        if out is None:
            out = np.empty((num_frames, *frame.shape), np.uint8)
        out[count] = frame
        count += 1
    if count != num_frames:
        raise ValueError(f"the interpolator gave {count} frames for a group of {num_frames}")
    return out
