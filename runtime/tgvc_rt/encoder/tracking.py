"""Dense point tracking over one keyframe group with classical CPU trackers (OpenCV).

Two passes, as in T-GVC's use of a point tracker run on the clip and on the reversed clip:

1. **forward**: query points on a regular grid at local frame 0 are chained through the clip;
2. **reverse**: query points on the same grid at frame F-1 are chained through the reversed clip
   (so regions revealed during the group are covered); by default only queries in grid cells that no
   forward track visible at F-1 reaches are kept (the others would duplicate forward tracks).

Methods:

* ``"dis"`` (default): DIS optical flow between consecutive frames, computed once forward
  (t -> t+1) and once backward (t+1 -> t). A point moves by the forward flow bilinearly sampled at
  its current sub-pixel position, then one small full-resolution LK solve refines it (removes
  DIS's sub-pixel drift). The reverse pass uses the same two flow stacks swapped; the
  forward-backward check uses the opposite flow stack.
* ``"lk"``: pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``) point by point, per frame.

Visibility: a point is visible while every step so far passed the forward-backward check (moving
forward and then back lands within ``fb_threshold`` px of where it started) and the appearance
check (``patch_threshold``), and it lies inside the frame. Chained flow cannot re-find a point once lost, so a point that fails stays invisible for the
rest of the pass; its position keeps following the flow (a plausible guess, never sent exactly).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError, OptionError
from ..types import Tracks
from .motion_fields import DIS_PRESETS, bilinear_sample, dis_flows, lk_refine, lk_step, to_gray


@dataclass
class TrackingOptions:
    grid_step: int = 8
    """Query grid spacing in pixels (queries at the cell centres, ``grid_step/2 + i*grid_step``).
    The paper uses a 64x64 grid at 512x320 (spacing 8 x 5); 8 gives 44x36 = 1584 queries at CIF."""
    method: str = "dis"
    """``"dis"`` (DIS optical flow chaining) or ``"lk"`` (pyramidal LK). Others plug in trackers of
    their own (e.g. an ONNX point tracker) by name in :data:`TRACKERS`."""
    fb_threshold: float = 1.0
    """Forward-backward error in pixels above which a point becomes invisible (for good)."""
    patch_threshold: float = 20.0
    """Appearance check: a step whose LK patch error (mean absolute grey-level difference between
    the window around the point before and after the step) exceeds this makes the point invisible.
    Catches occlusions that forward-backward consistency misses (e.g. an occluder with ~zero flow).
    Needs an LK solve: used by ``"lk"`` and by ``"dis"`` with ``dis_refine_window`` > 0."""
    dis_preset: str = "fast"
    """DIS quality preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (about 0.7 / 1.4 / 7 ms per
    flow field at CIF on one core)."""
    dis_finest_scale: int | None = 1
    """Finest DIS pyramid level (0 = full resolution, None = the preset's own, which is 2 for
    "fast"). Level 1 roughly halves the per-frame sub-pixel flow error of level 2 (0.05 vs 0.11 px
    on a translated texture), which matters because chaining accumulates it."""
    dis_refine_window: int = 9
    """After each DIS step, refine the point with one LK solve (window of this many pixels, full
    resolution only, starting from the DIS position); 0 turns it off. DIS alone drifts by a
    systematic ~0.03 px per frame (0.45 px after 15 frames of a (1.3, -0.7) px/frame translation);
    refined it is 0.04 px after 15 frames for ~1-2 ms more per frame at CIF."""
    lk_window: int = 15
    """LK search window size in pixels (method ``"lk"``)."""
    lk_levels: int = 3
    """LK pyramid levels above the base (method ``"lk"``)."""
    reverse: bool = True
    """Run the reverse pass from frame F-1 on the reversed clip."""
    reverse_only_uncovered: bool = True
    """Keep a reverse-pass query only if no forward track visible at frame F-1 ends in its grid
    cell (avoids a duplicate of most forward tracks)."""
    border: float = 0.0
    """A point closer than this many pixels to the frame edge counts as having left the frame."""


def grid_queries(width: int, height: int, step: int) -> np.ndarray:
    """Query points at the centres of a ``step`` pixel grid -> float32 [N, 2] (x, y), row-major."""
    xs = np.arange(step / 2.0 - 0.5, width - 0.5, step, dtype=np.float32)
    ys = np.arange(step / 2.0 - 0.5, height - 0.5, step, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _inside(xy: np.ndarray, width: int, height: int, border: float) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    return (x >= border) & (x <= width - 1 - border) & (y >= border) & (y <= height - 1 - border)


def _chain(start: np.ndarray, num_frames: int, size: tuple[int, int], options: TrackingOptions,
           step: Callable[[int, np.ndarray], tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Chain points ``start`` [N, 2] through ``num_frames`` frames of ``size`` (width, height).
    ``step(t, p)`` moves the points ``p`` from frame t to t+1 and returns ``(q, fb, patch_err, ok)``:
    the new positions, the forward-backward error (px), the patch error and whether the step found the
    point. A point is visible while every step so far found it within ``fb_threshold`` and
    ``patch_threshold`` and it lies inside the frame. Returns xy float32 [N, F, 2] and vis bool [N, F]."""
    width, height = size
    n = start.shape[0]
    xy = np.empty((n, num_frames, 2), np.float32)
    vis = np.empty((n, num_frames), bool)
    p = start.astype(np.float32)
    alive = _inside(p, width, height, options.border)
    xy[:, 0], vis[:, 0] = p, alive
    for t in range(num_frames - 1):
        q, fb, patch_err, ok = step(t, p)
        alive = alive & ok & (fb <= options.fb_threshold) & (patch_err <= options.patch_threshold) \
            & _inside(q, width, height, options.border)
        xy[:, t + 1], vis[:, t + 1] = q, alive
        p = q
    return xy, vis


def chain_dis(gray: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, start: np.ndarray,
              options: TrackingOptions) -> tuple[np.ndarray, np.ndarray]:
    """Chain points ``start`` [N, 2] through luma clip ``gray`` [F, H, W] with its flow stacks
    (see :func:`dis_flows`), refining each step with LK if ``options.dis_refine_window`` > 0.
    Returns xy float32 [N, F, 2] and vis bool [N, F]."""

    def step(t: int, p: np.ndarray) -> tuple:
        q = p + bilinear_sample(fwd[t], p)
        back = q + bilinear_sample(bwd[t], q)
        patch_err = np.zeros(p.shape[0], np.float32)
        if options.dis_refine_window > 0:  # refine both ways so the check compares like with like
            guess = q
            q, patch_err = lk_refine(gray[t], gray[t + 1], p, q, options.dis_refine_window)
            back, _ = lk_refine(gray[t + 1], gray[t], q, back + (q - guess),
                                options.dis_refine_window)
        return q, np.linalg.norm(back - p, axis=1), patch_err, True

    f, height, width = gray.shape
    return _chain(start, f, (width, height), options, step)


def chain_lk(gray: np.ndarray, start: np.ndarray, options: TrackingOptions
             ) -> tuple[np.ndarray, np.ndarray]:
    """Chain points ``start`` [N, 2] through luma clip ``gray`` [F, H, W] with pyramidal LK."""

    def step(t: int, p: np.ndarray) -> tuple:
        q, fb, ok, patch_err = lk_step(gray[t], gray[t + 1], p, options.lk_window, options.lk_levels)
        return np.where(ok[:, None], q, p), fb, patch_err, ok  # a failed point stays put (invisible from now on)

    f, height, width = gray.shape
    return _chain(start, f, (width, height), options, step)


def _uncovered(queries: np.ndarray, ends: np.ndarray, size: tuple[int, int], step: int) -> np.ndarray:
    """Mask of ``queries`` whose grid cell contains none of the points ``ends``."""
    width, height = size
    nx, ny = -(-width // step), -(-height // step)
    occupied = np.zeros((ny, nx), bool)
    cx = np.clip((ends[:, 0] + 0.5) // step, 0, nx - 1).astype(np.int64)
    cy = np.clip((ends[:, 1] + 0.5) // step, 0, ny - 1).astype(np.int64)
    occupied[cy, cx] = True
    qx = np.clip((queries[:, 0] + 0.5) // step, 0, nx - 1).astype(np.int64)
    qy = np.clip((queries[:, 1] + 0.5) // step, 0, ny - 1).astype(np.int64)
    return ~occupied[qy, qx]


def _both_ways(gray: np.ndarray, options: TrackingOptions,
               chain: Callable[[bool, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> list:
    """Grid queries tracked forward from frame 0 and, on the reversed clip, from frame F-1 (only
    where no forward track ends, if ``reverse_only_uncovered``). ``chain(reverse, start)`` tracks
    ``start`` along the clip or the reversed clip and returns (xy [N, F, 2], vis [N, F])."""
    f, height, width = gray.shape
    queries = grid_queries(width, height, options.grid_step)
    passes = [chain(False, queries)]
    if options.reverse and f > 1:
        start = queries
        if options.reverse_only_uncovered:
            xy, vis = passes[0]
            start = queries[_uncovered(queries, xy[vis[:, -1], -1], (width, height), options.grid_step)]
        rxy, rvis = chain(True, start)
        passes.append((rxy[:, ::-1], rvis[:, ::-1]))
    return passes


def _track_dis(gray: np.ndarray, options: TrackingOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    fwd, bwd = dis_flows(gray, options.dis_preset, options.dis_finest_scale)
    return _both_ways(gray, options, lambda reverse, start: (
        chain_dis(gray[::-1], bwd[::-1], fwd[::-1], start, options) if reverse
        else chain_dis(gray, fwd, bwd, start, options)))


def _track_lk(gray: np.ndarray, options: TrackingOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    return _both_ways(gray, options, lambda reverse, start: chain_lk(gray[::-1] if reverse else gray, start, options))


def _track_onnx(gray: np.ndarray, options: TrackingOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """The model set's ONNX tracker (pyramidal LK in a graph), forward and on the reversed clip."""
    from .tracker_onnx import track_points_onnx

    rgb = np.repeat(gray[..., None], 3, axis=-1)  # the tracker takes RGB and converts to grey itself
    return _both_ways(gray, options, lambda reverse, start: track_points_onnx(rgb[::-1] if reverse else rgb, start))


TRACKERS = {"dis": _track_dis, "lk": _track_lk, "onnx": _track_onnx}
"""Tracker name -> ``fn(gray [F, H, W] uint8, options) -> list of (xy [N, F, 2], vis [N, F])``."""


def _check(frames: np.ndarray, options: TrackingOptions) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[3] != 3 or frames.shape[0] < 1:
        shape = getattr(frames, "shape", None)
        raise InputError(f"track_group needs uint8 frames [F, H, W, 3] with F >= 1, got {shape}")
    if options.method not in TRACKERS:
        raise OptionError(f"unknown tracking method {options.method!r} (have {sorted(TRACKERS)})")
    if not 1 <= int(options.grid_step) <= min(frames.shape[1:3]):
        raise OptionError(f"grid_step must be in 1..{min(frames.shape[1:3])}, got {options.grid_step}")
    if not options.fb_threshold > 0:
        raise OptionError(f"fb_threshold must be > 0, got {options.fb_threshold}")
    if options.method == "dis" and options.dis_preset not in DIS_PRESETS:
        raise OptionError(f"unknown dis_preset {options.dis_preset!r} (have {sorted(DIS_PRESETS)})")


def track_group(frames: np.ndarray, options: TrackingOptions = TrackingOptions()) -> Tracks:
    """Dense tracks of one keyframe group.

    frames: uint8 [F, H, W, 3] RGB of one keyframe group (local frame 0 and F-1 are keyframes).
    Queries on a grid at frame 0 tracked forward, plus queries on a grid at frame F-1 tracked on the
    reversed clip (so regions revealed later are covered); forward-backward consistency ->
    visibility. Returns dense Tracks (instance = -1) with xy for all F frames, forward-pass tracks
    first (row-major grid order), then the reverse-pass ones."""
    _check(frames, options)
    passes = TRACKERS[options.method](to_gray(frames), options)
    xy = np.concatenate([p[0] for p in passes], axis=0)
    vis = np.concatenate([p[1] for p in passes], axis=0)
    return Tracks(np.ascontiguousarray(xy), np.ascontiguousarray(vis))
