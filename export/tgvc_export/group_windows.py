"""Training windows from the real decoder's groups (warp_data.py): one window = one keyframe group.

A window of F = end - start + 1 frames carries, in normalised latent units,

* ``truth`` [F, C, h, w]: TAEF2 latents of the true frames (the target of the in-between frames);
* ``decoded`` [F, C, h, w]: TAEF2 latents of the decoded frames: the decoded keyframes at 0 and
  F-1 and the warp decoder's frames between them, i.e. exactly what the runtime decoder VAE-encodes
  (``decoder/diffusion.py``) and puts into ``cond`` (keyframes, channels 0..31) and the warp channel
  (33..64).

Augmentation: random spatial crop, horizontal flip, time reversal (same for both). All windows of a
batch share F (a group length drawn by frequency).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .warp_data import WarpClip


@dataclass(frozen=True)
class GroupWindowConfig:
    crop_h: int = 16  # latent crop height (128 px)
    crop_w: int = 20  # latent crop width (160 px)
    max_frames: int = 16  # groups longer than this are skipped (the decoder's window)
    min_frames: int = 3  # a group needs in-between frames
    hflip_prob: float = 0.5
    reverse_prob: float = 0.5


@dataclass
class GroupPool:
    """Normalised clips and an index of their usable groups: rows (clip index, start, end)."""
    truth: list[np.ndarray]
    decoded: list[np.ndarray]
    groups: np.ndarray  # int64 [G, 3]


def build_pool(clips: list[WarpClip], mean: np.ndarray, std: np.ndarray,
               cfg: GroupWindowConfig = GroupWindowConfig()) -> GroupPool:
    m, s = mean[None, :, None, None], std[None, :, None, None]
    truth, decoded, rows = [], [], []
    for i, c in enumerate(clips):
        truth.append(((c.truth - m) / s).astype(np.float32))
        decoded.append(((c.decoded - m) / s).astype(np.float32))
        f = c.groups[:, 1] - c.groups[:, 0] + 1
        ok = (f >= cfg.min_frames) & (f <= cfg.max_frames)
        rows += [(i, a, b) for a, b in c.groups[ok]]
    return GroupPool(truth, decoded, np.array(rows, dtype=np.int64).reshape(-1, 3))


def sample_group_windows(rng: np.random.Generator, pool: GroupPool, batch: int,
                         cfg: GroupWindowConfig = GroupWindowConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(truth, decoded), each float32 [B, F, C, crop_h, crop_w]; F drawn as a group length."""
    lengths = pool.groups[:, 2] - pool.groups[:, 1] + 1
    frames = lengths[rng.integers(len(lengths))]
    cand = np.flatnonzero(lengths == frames)
    tr, de = [], []
    for row in pool.groups[cand[rng.integers(len(cand), size=batch)]]:
        i, a, b = (int(v) for v in row)
        t, d = pool.truth[i][a:b + 1], pool.decoded[i][a:b + 1]
        ch, cw = min(cfg.crop_h, t.shape[2]), min(cfg.crop_w, t.shape[3])
        y0 = int(rng.integers(0, t.shape[2] - ch + 1))
        x0 = int(rng.integers(0, t.shape[3] - cw + 1))
        t, d = t[:, :, y0:y0 + ch, x0:x0 + cw], d[:, :, y0:y0 + ch, x0:x0 + cw]
        if rng.random() < cfg.hflip_prob:
            t, d = t[..., ::-1], d[..., ::-1]
        if rng.random() < cfg.reverse_prob:
            t, d = t[::-1], d[::-1]
        tr.append(_pad_to(t, cfg.crop_h, cfg.crop_w))
        de.append(_pad_to(d, cfg.crop_h, cfg.crop_w))
    return (np.ascontiguousarray(np.stack(tr), dtype=np.float32),
            np.ascontiguousarray(np.stack(de), dtype=np.float32))


def _pad_to(win: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = max(h - win.shape[2], 0), max(w - win.shape[3], 0)
    if ph == 0 and pw == 0:
        return win
    return np.pad(win, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
