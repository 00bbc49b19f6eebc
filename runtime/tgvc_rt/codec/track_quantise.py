"""The decoder's view of a track set: integer positions on the coding grid, and what it rebuilds.

Shared by the trajectory encoder, the decoder and :func:`~.trajectories.reconstruct_tracks`, so the
three agree bit for bit:

* positions of visible points are quantised to ``q = rint(xy / step)`` on a grid of step
  ``step = step_code / 16`` px, clamped into the frame (``0 .. (W-1)/step``); non-finite visible
  points are treated as invisible;
* each instance (distinct ``instance`` value, in order of first appearance) has an integer mean
  motion per frame ``m[g, f]`` (median step of its tracks visible at f-1 and f, 0 at f = 0) and
  its running sum ``M[g, f]``; trajectories are predicted from it;
* invisible points are rebuilt by interpolating the motion-compensated position ``q - M`` linearly
  between the nearest visible frames (held constant before the first / after the last) and adding
  ``M`` back, so occluded points keep moving with their instance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Tracks


@dataclass
class QuantisedTracks:
    q: np.ndarray         # int64 [K, F, 2], grid positions (0 where invisible)
    vis: np.ndarray       # bool [K, F]
    instance: np.ndarray  # int32 [K]
    group: np.ndarray     # int64 [K], instance group 0..G-1 in order of first appearance
    step_code: int        # step = step_code / 16 px
    qmax: tuple[int, int]  # largest grid index in x and y


def grid_limits(width: int, height: int, step_code: int) -> tuple[int, int]:
    return ((width - 1) * 16) // step_code, ((height - 1) * 16) // step_code


def instance_groups(instance: np.ndarray) -> np.ndarray:
    """Group index per track: distinct instance values numbered in order of first appearance."""
    if instance.size == 0:
        return np.zeros(0, np.int64)
    _, first, inverse = np.unique(instance, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


INSTANCE_FLAG, VELOCITY_FLAG = 1, 2


def predict(q1, q2, p1, p2, f, mk1, mk2, mkf, flags: int, qmax) -> np.ndarray:
    """Integer prediction [n, 2] of points at frame(s) ``f`` from their last visible point ``q1``
    (frame ``p1``) and the one before, ``q2`` (frame ``p2``, -1 if none); ``mk*`` is the
    instance's cumulative motion at p1, p2 and f. Clamped into the grid."""
    pred = q1.copy()
    if flags & INSTANCE_FLAG:
        pred += mkf - mk1
    if flags & VELOCITY_FLAG:
        has = np.asarray(p2) >= 0
        c1 = q1 - mk1 if flags & INSTANCE_FLAG else q1
        c2 = q2 - mk2 if flags & INSTANCE_FLAG else q2
        frac = (f - p1) / np.maximum(p1 - p2, 1)
        vel = np.floor((c1 - c2) * np.reshape(frac, (-1, 1)) + 0.5).astype(np.int64)
        pred += np.where(has.reshape(-1, 1), vel, 0)
    return np.clip(pred, 0, np.array(qmax, np.int64))


def quantise(tracks: Tracks, width: int, height: int, step_code: int, flags: int = INSTANCE_FLAG,
             tolerance: float = 0.0) -> tuple[QuantisedTracks, np.ndarray]:
    """Grid positions of ``tracks`` and the cumulative instance motion ``M`` [G, F, 2].

    With ``tolerance`` (px) above half a step, each visible point after a track's first is chosen,
    among the grid points within ``tolerance`` of the true position, as the one nearest to its
    prediction (closed loop, so the prediction uses the chosen earlier points): small tracker
    jitter then costs no bits. Otherwise points are rounded to the nearest grid point."""
    qmax = grid_limits(width, height, step_code)
    hi = np.array(qmax, np.int64)
    vis = tracks.vis & np.isfinite(tracks.xy).all(axis=2)
    scaled = np.where(vis[..., None], tracks.xy.astype(np.float64), 0.0) * (16.0 / step_code)
    scaled = np.clip(scaled, 0, hi)
    q = np.rint(scaled).astype(np.int64)
    q[~vis] = 0
    qt = QuantisedTracks(q, vis, tracks.instance.astype(np.int32),
                         instance_groups(tracks.instance), step_code, qmax)
    n_groups = int(qt.group.max()) + 1 if qt.group.size else 0
    k, f = vis.shape
    m = group_motion(qt, n_groups) if flags & INSTANCE_FLAG else np.zeros((n_groups, f, 2), np.int64)
    motion = cumulative_motion(m)
    tol = tolerance * 16.0 / step_code
    if tol > 0.5 and k:
        mk = motion[qt.group]
        p1, p2 = previous_visible(vis)
        for frame in range(1, f):  # closed loop over frames, vectorised over tracks
            rows = np.flatnonzero(vis[:, frame] & (p1[:, frame] >= 0))
            a, b = p1[rows, frame], np.maximum(p2[rows, frame], 0)
            pred = predict(q[rows, a], q[rows, b], a, p2[rows, frame], frame, mk[rows, a],
                           mk[rows, b], mk[rows, frame], flags, qmax)
            lo = np.clip(np.ceil(scaled[rows, frame] - tol), 0, hi).astype(np.int64)
            up = np.clip(np.floor(scaled[rows, frame] + tol), 0, hi).astype(np.int64)
            q[rows, frame] = np.clip(pred, lo, np.maximum(lo, up))
    return qt, motion


def group_motion(qt: QuantisedTracks, num_groups: int) -> np.ndarray:
    """Per-group integer mean step ``m`` [G, F, 2] (median over tracks visible at f-1 and f,
    rounded; 0 at f = 0 and where no track qualifies)."""
    k, f = qt.vis.shape
    m = np.zeros((num_groups, f, 2), np.int64)
    if f < 2 or k == 0:
        return m
    both = qt.vis[:, 1:] & qt.vis[:, :-1]
    step = np.where(both[..., None], np.diff(qt.q, axis=1), np.nan).astype(np.float64)
    for g in range(num_groups):  # one median per instance (few), vectorised over tracks/frames
        sel = step[qt.group == g]
        has = both[qt.group == g].any(axis=0)
        med = np.zeros((f - 1, 2))
        if has.any():
            med[has] = np.nanmedian(sel[:, has], axis=0)
        m[g, 1:] = np.floor(med + 0.5).astype(np.int64)
    return m


def cumulative_motion(m: np.ndarray) -> np.ndarray:
    """``M[g, f] = sum_{t <= f} m[g, t]`` (m[:, 0] is 0)."""
    return np.cumsum(m, axis=1)


def previous_visible(vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every (k, f): the last visible frame before f (``p1``) and the one before that
    (``p2``); -1 where there is none."""
    k, f = vis.shape
    idx = np.where(vis, np.arange(f)[None, :], -1)
    last_incl = np.maximum.accumulate(idx, axis=1) if f else idx
    p1 = np.full((k, f), -1, np.int64)
    p1[:, 1:] = last_incl[:, :-1]
    p2 = np.full((k, f), -1, np.int64)
    has = p1 >= 1
    p2[has] = np.take_along_axis(last_incl, np.maximum(p1 - 1, 0), axis=1)[has]
    return p1, p2


def assemble(qt: QuantisedTracks, motion: np.ndarray) -> Tracks:
    """Float tracks the decoder shows: visible points at ``q * step``, invisible ones interpolated
    in the motion-compensated domain (see the module docstring). ``motion`` is ``M`` [G, F, 2]."""
    k, f = qt.vis.shape
    step = qt.step_code / 16.0
    if k == 0:
        return Tracks(np.zeros((0, f, 2), np.float32), np.zeros((0, f), bool), np.zeros(0, np.int32))
    mk = motion[qt.group].astype(np.float64) if motion.shape[0] else np.zeros((k, f, 2))
    comp = qt.q.astype(np.float64) - mk
    frames = np.arange(f)[None, :]
    idx = np.where(qt.vis, frames, -1)
    prev = np.maximum.accumulate(idx, axis=1)
    nxt = np.minimum.accumulate(np.where(qt.vis, frames, f)[:, ::-1], axis=1)[:, ::-1]
    prev_ok, next_ok = prev >= 0, nxt < f
    lo = np.where(prev_ok, prev, np.where(next_ok, nxt, 0))
    hi = np.where(next_ok, nxt, lo)
    span = np.maximum(hi - lo, 1)
    w = np.where(hi > lo, (frames - lo) / span, 0.0)[..., None]
    c_lo = np.take_along_axis(comp, lo[..., None], axis=1)
    c_hi = np.take_along_axis(comp, hi[..., None], axis=1)
    filled = c_lo * (1.0 - w) + c_hi * w + mk
    xy = np.where(qt.vis[..., None], qt.q.astype(np.float64), filled) * step
    xy[~qt.vis.any(axis=1)] = 0.0
    return Tracks(xy.astype(np.float32), qt.vis.copy(), qt.instance.copy())
