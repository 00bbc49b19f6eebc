"""The non-generative decoder: bidirectional, occlusion-aware warping of the two keyframes.

For every in-between frame f of a group (t = f / (F-1)):

1. ``dense_motion`` turns the sparse tracks into backward flows to key A and key B (reduced grid);
   ``colour_support`` decides per cell between the tracked motion and the prior (zero/camera)
   motion by which lines up the two keys better (patch differences).
2. Occlusion of each pixel in each key, from three cues, all on the reduced grid:
   * forward-backward disagreement of the key-to-key flows: a pixel of key B whose flow to A and
     back does not return is not visible in A (and vice versa); frame f looks this up at the
     position it samples in the *other* key;
   * track visibility (tracks visible at f but hidden in a key, see dense_motion);
   * sampling positions outside the key.
3. Both keys are warped with ``cv2.remap`` (bilinear, replicated border) and blended with the
   temporal weights (1-t, t) scaled by (1 - occlusion) with a small floor, so a pixel hidden in
   one key comes from the other and a pixel hidden in both falls back to the temporal blend.

Frames 0 and F-1 are the keys themselves. With no tracks this is a plain cross-fade.
Deterministic (no randomness, only per-pixel independent OpenCV ops).

``iter_group`` yields the frames one by one and computes the dense motion window by window
(``group.motion_window``), so its memory does not grow with the group's length;
``interpolate_group`` stacks them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from tgvc_rt.decoder.dense_motion import DenseMotion, DenseMotionOptions, GroupMotion, grid_centres
from tgvc_rt.decoder.group import check_keys, collect, motion_window
from tgvc_rt.types import Tracks


@dataclass(frozen=True)
class WarpOptions:
    motion: DenseMotionOptions = field(default_factory=DenseMotionOptions)  # sparse -> dense
    fb_tolerance_px: float = 1.0  # forward-backward error up to this (px) counts as consistent
    fb_relative: float = 0.1  # ... plus this fraction of the flow magnitude
    fb_range_px: float = 3.0  # error this far above the tolerance means fully occluded
    use_fb_occlusion: bool = True  # use the forward-backward cue
    use_vis_occlusion: bool = True  # use the track-visibility cue
    min_weight: float = 0.02  # floor of each key's weight (relative to its temporal weight)
    colour_support: bool = True  # sharpen the tracks' support by comparing the warped keys
    support_temperature: float = 2.0  # grey levels of patch difference per unit of logit
    support_match_scale: float = 8.0  # evidence counts fully only if the better match is this good
    support_ambiguity_bias: float = 2.0  # logit pull towards the prior where neither matches
    support_patch: int = 3  # patch size (grid cells) of that comparison
    support_min_residual_px: float = 0.5  # below this the two hypotheses are the same picture


def _to_grid(pos: np.ndarray, height: int, width: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-res (x, y) positions -> float32 remap maps into an ``h x w`` grid."""
    mx = (pos[..., 0] + 0.5) * np.float32(w / width) - 0.5
    my = (pos[..., 1] + 0.5) * np.float32(h / height) - 0.5
    return mx.astype(np.float32), my.astype(np.float32)


def _outside(pos: np.ndarray, height: int, width: int) -> np.ndarray:
    x, y = pos[..., 0], pos[..., 1]
    return ((x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)).astype(np.float32)


def _sample(grid_map: np.ndarray, pos: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = grid_map.shape[:2]
    mx, my = _to_grid(pos, height, width, h, w)
    return cv2.remap(grid_map, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _fb_occlusion(flow_fwd: np.ndarray, flow_back: np.ndarray, centres: np.ndarray,
                  height: int, width: int, opts: WarpOptions) -> np.ndarray:
    """Soft map on the first key's grid: 1 where its content is not visible in the second key."""
    target = centres + flow_fwd
    back = _sample(flow_back, target, height, width)
    err = np.linalg.norm(flow_fwd + back, axis=-1)
    tol = opts.fb_tolerance_px + opts.fb_relative * np.linalg.norm(flow_fwd, axis=-1)
    occ = np.clip((err - tol) / opts.fb_range_px, 0.0, 1.0)
    return np.maximum(occ, _outside(target, height, width)).astype(np.float32)


def _grey_grid(key: np.ndarray, h: int, w: int) -> np.ndarray:
    grey = cv2.cvtColor(key, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def colour_support(dm: DenseMotion, key_a: np.ndarray, key_b: np.ndarray, opts: WarpOptions) -> DenseMotion:
    """Per cell, weigh "tracked motion" against "prior motion" by how well each lines up the keys.

    A cell of frame f that moves with the tracks samples matching patches from both keys along
    ``prior + residual``; a static (prior-following) cell matches along ``prior``. The difference
    of the two patch costs shifts the logit of the track support, which removes the motion that
    bleeds from tracked objects onto the static background (and fills gaps inside objects).
    """
    f_, h, w = dm.support.shape
    centres = grid_centres(dm.height, dm.width, h, w)
    ga, gb = _grey_grid(key_a, h, w), _grey_grid(key_b, h, w)
    support = dm.support.copy()
    k = (opts.support_patch, opts.support_patch)
    for f in range(f_):
        pa_s, pb_s = centres + dm.prior_a[f], centres + dm.prior_b[f]
        pa_m, pb_m = pa_s + dm.residual_a[f], pb_s + dm.residual_b[f]
        cost_s = cv2.blur(np.abs(_sample(ga, pa_s, dm.height, dm.width) - _sample(gb, pb_s, dm.height, dm.width)), k)
        cost_m = cv2.blur(np.abs(_sample(ga, pa_m, dm.height, dm.width) - _sample(gb, pb_m, dm.height, dm.width)), k)
        s = np.clip(support[f], 1e-3, 1 - 1e-3)
        conf = np.exp(-np.minimum(cost_s, cost_m) / opts.support_match_scale)
        logit = (np.log(s / (1 - s)) + conf * (cost_s - cost_m) / opts.support_temperature
                 - (1 - conf) * opts.support_ambiguity_bias)
        logit = np.clip(logit, -30, 30)
        moving = np.maximum(np.abs(dm.residual_a[f]).max(-1), np.abs(dm.residual_b[f]).max(-1))
        support[f] = np.where(moving > opts.support_min_residual_px, 1 / (1 + np.exp(-logit)), support[f])
    return replace(dm, support=support.astype(np.float32))


def key_occlusion(first: DenseMotion, last: DenseMotion, opts: WarpOptions) -> tuple[np.ndarray, np.ndarray]:
    """Forward-backward occlusion of the keys on the reduced grid, float32 [h, w] each: of key B's content
    in key A and of key A's content in key B. ``first`` and ``last`` hold frames 0 and F-1 (after
    ``colour_support``, if used) at their index 0; zeros with ``use_fb_occlusion`` off."""
    h, w = first.support.shape[1:]
    if not opts.use_fb_occlusion:
        zeros = np.zeros((h, w), np.float32)
        return zeros, zeros
    centres = grid_centres(first.height, first.width, h, w)
    flow_b0, flow_an = first.flow_b[0], last.flow_a[0]
    return (_fb_occlusion(flow_b0, flow_an, centres, first.height, first.width, opts),
            _fb_occlusion(flow_an, flow_b0, centres, first.height, first.width, opts))


def blend_weight(dm: DenseMotion, i: int, t: float, occ: tuple[np.ndarray, np.ndarray],
                 opts: WarpOptions) -> np.ndarray:
    """Weight of key B at ``dm``'s frame index ``i`` (an in-between frame at time ``t``) on the reduced
    grid, float32 [h, w] (key A gets 1 - that); ``occ`` from ``key_occlusion``."""
    occ_ab, occ_ba = occ
    h, w = dm.support.shape[1:]
    height, width = dm.height, dm.width
    centres = grid_centres(height, width, h, w)
    flow_a = dm.prior_a[i] + dm.support[i, ..., None] * dm.residual_a[i]
    flow_b = dm.prior_b[i] + dm.support[i, ..., None] * dm.residual_b[i]
    pos_a, pos_b = centres + flow_a, centres + flow_b
    occ_a = np.maximum(_sample(occ_ba, pos_b, height, width), _outside(pos_a, height, width))
    occ_b = np.maximum(_sample(occ_ab, pos_a, height, width), _outside(pos_b, height, width))
    if opts.use_vis_occlusion:
        occ_a = np.maximum(occ_a, dm.occ_vis_a[i])
        occ_b = np.maximum(occ_b, dm.occ_vis_b[i])
    wa = (1 - t) * (1 - occ_a + opts.min_weight)
    wb = t * (1 - occ_b + opts.min_weight)
    return np.asarray(wb / (wa + wb), np.float32)


def blend_weights(dm: DenseMotion, opts: WarpOptions) -> np.ndarray:
    """Weight of key B per frame of a whole group on the reduced grid, float32 [F, h, w] (``blend_weight``
    for every frame)."""
    f_, h, w = dm.support.shape
    n = f_ - 1
    occ = key_occlusion(_frame(dm, 0), _frame(dm, n), opts)
    alpha = np.zeros((f_, h, w), np.float32)
    alpha[n] = 1.0
    for f in range(1, n):
        alpha[f] = blend_weight(dm, f, f / n, occ, opts)
    return alpha


def _frame(dm: DenseMotion, i: int) -> DenseMotion:
    """Frame ``i`` of ``dm`` alone."""
    return replace(dm, **{k: getattr(dm, k)[i:i + 1] for k in ("prior_a", "prior_b", "residual_a", "residual_b",
                                                              "support", "occ_vis_a", "occ_vis_b")},
                   start=dm.start + i)


def _warp(key: np.ndarray, flow_grid: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    height, width = key.shape[:2]
    flow = cv2.resize(flow_grid, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.remap(key, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def iter_group(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks,
               options: WarpOptions = WarpOptions()) -> Iterator[np.ndarray]:
    """The frames of one group in order, uint8 [H, W, 3] each; frame 0 is ``key_a`` and frame F-1 ``key_b``.

    ``tracks`` are the group's decoded tracks (F = tracks.num_frames, K may be 0). Dense motion, colour
    support and blend weights are computed a window of frames at a time (``group.motion_window``).
    """
    key_a, key_b = check_keys(key_a, key_b, tracks.num_frames)
    yield key_a.copy()
    if tracks.num_frames == 1:
        return
    if tracks.num_frames > 2:
        yield from _inner_frames(key_a, key_b, tracks, options)
    yield key_b.copy()


def _inner_frames(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks,
                  options: WarpOptions) -> Iterator[np.ndarray]:
    """Frames 1 .. F-2 of a group (F >= 3), in order."""
    n = tracks.num_frames - 1
    height, width = key_a.shape[:2]
    motion = GroupMotion(tracks, height, width, options.motion)
    sharpen = options.colour_support and tracks.num_tracks

    def window(start: int, stop: int) -> DenseMotion:
        dm = motion.frames(start, stop)
        return colour_support(dm, key_a, key_b, options) if sharpen else dm

    occ = key_occlusion(window(0, 1), window(n, n + 1), options)
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    step = motion_window(motion.grid)
    for start in range(1, n, step):
        dm = window(start, min(start + step, n))
        flow_a, flow_b = dm.flow_a, dm.flow_b
        for i in range(dm.support.shape[0]):
            alpha = blend_weight(dm, i, (start + i) / n, occ, options)
            warped_a = _warp(key_a, flow_a[i], gx, gy)
            warped_b = _warp(key_b, flow_b[i], gx, gy)
            a = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
            yield cv2.blendLinear(warped_a, warped_b, 1.0 - a, a)


def interpolate_group(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks,
                      options: WarpOptions = WarpOptions()) -> np.ndarray:
    """Frames of one group, uint8 [F, H, W, 3]; frame 0 is ``key_a`` and frame F-1 ``key_b`` (``iter_group``
    stacked)."""
    return collect(iter_group(key_a, key_b, tracks, options), tracks.num_frames)
