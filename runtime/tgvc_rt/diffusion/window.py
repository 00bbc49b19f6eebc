"""Diffusion windows over a keyframe group, and the UNet conditioning of one window.

**Windowing / overlap rule.** A group of F frames (keyframes at local frames 0 and F-1) is
covered by ``ceil((F - 1) / (window - 1))`` windows of at most ``window`` frames (16 by default,
the UNet's training length). Consecutive windows share exactly one frame, the last of one being the
first of the next (the paper's chaining rule); the F-1 frame intervals are split as evenly as
possible (window boundaries at ``round(linspace(0, F-1, n_windows + 1))``). Windows run in order:

* a window's first and last frames are its *anchors* (cond channels 0..31 and mask channel 32,
  and the guidance references r = 0, 1);
* at the group's ends the anchors are the decoded keyframes' latents;
* at an interior join frame j, the window ending at j uses the warp decoder's latent of frame j
  as its end anchor (the best estimate available) and *generates* frame j; the next window
  takes that generated latent as its start anchor and does not change it. Every frame is thus
  generated exactly once and the chain stays continuous across the join.

With F <= ``window`` there is a single window and the rule reduces to plain interpolation.
"""
from __future__ import annotations

import math

import numpy as np

from tgvc_rt.errors import OptionError

COND_CHANNELS = 65  # 32 anchor latents + 1 mask + 32 warp latents (docs/models.md)


def plan_windows(num_frames: int, window: int = 16) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` inclusive local frame ranges covering ``0 .. F-1`` (rule above)."""
    if window < 2:
        raise OptionError(f"diffusion window must be >= 2 frames, got {window}")
    F = int(num_frames)
    if F <= 0:
        return []
    if F <= window:
        return [(0, F - 1)]
    count = math.ceil((F - 1) / (window - 1))
    edges = np.round(np.linspace(0, F - 1, count + 1)).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def build_cond(first: np.ndarray, last: np.ndarray, warp_latents: np.ndarray) -> np.ndarray:
    """UNet ``cond`` of one window, float32 ``[F, 65, h, w]`` (docs/models.md).

    Channels 0..31: normalised anchor latents at frame 0 (``first``) and F-1 (``last``), zeros
    elsewhere; channel 32: mask, 1 at frames 0 and F-1; channels 33..64: the normalised latents of
    the warp decoder's frames (``warp_latents`` ``[F, 32, h, w]``, all frames).
    """
    F, C, h, w = warp_latents.shape
    cond = np.zeros((F, 2 * C + 1, h, w), dtype=np.float32)
    cond[0, :C] = first
    cond[F - 1, :C] = last
    cond[[0, F - 1], C] = 1.0
    cond[:, C + 1:] = warp_latents
    return cond
