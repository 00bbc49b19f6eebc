"""Per-track motion features for clustering tracks into motion instances (T-GVC's ~14 features).

Every feature is computed over the frames where the track is visible (a track needs at least one;
callers drop tracks with too few visible frames first). Positions are in pixels, velocities in
pixels per frame. :func:`standardise` turns them into zero-mean, unit-variance columns so that
HDBSCAN and K-means weigh them equally.
"""
from __future__ import annotations

import numpy as np

from ..types import Tracks

FEATURE_NAMES = (
    "start_x", "start_y",          # position at the first visible frame
    "end_x", "end_y",              # position at the last visible frame
    "velocity_x", "velocity_y",    # (end - start) / frames between them
    "max_displacement",            # largest distance from the start position over visible frames
    "mean_displacement",           # mean distance from the start position over visible frames
    "direction_cos", "direction_sin",  # direction of end - start (0, 0 for a track that stays put)
    "path_length",                 # sum of per-frame step lengths between consecutive visible frames
    "curvature",                   # 1 - |end - start| / path_length (0 = straight line)
    "acceleration",                # mean |second difference| of the position over visible frames
    "visibility_ratio",            # visible frames / all frames
)


def first_last_visible(vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and last visible frame of each track (0 and F-1 if never visible)."""
    f = vis.shape[1]
    first = np.argmax(vis, axis=1)
    last = f - 1 - np.argmax(vis[:, ::-1], axis=1)
    return first, last


def track_displacement(tracks: Tracks) -> np.ndarray:
    """Largest distance (px) of each visible point from the track's first visible position -> [K]."""
    first, _ = first_last_visible(tracks.vis)
    k = np.arange(tracks.num_tracks)
    start = tracks.xy[k, first]
    dist = np.linalg.norm(tracks.xy - start[:, None], axis=2)
    return np.where(tracks.vis, dist, 0.0).max(axis=1, initial=0.0)


def track_features(tracks: Tracks) -> np.ndarray:
    """Features of every track -> float64 [K, len(FEATURE_NAMES)] (see :data:`FEATURE_NAMES`)."""
    xy = tracks.xy.astype(np.float64)
    vis = tracks.vis
    n, f = vis.shape
    k = np.arange(n)
    first, last = first_last_visible(vis)
    start, end = xy[k, first], xy[k, last]
    span = np.maximum(last - first, 1)[:, None]
    chord = end - start
    chord_len = np.linalg.norm(chord, axis=1)
    dist = np.linalg.norm(xy - start[:, None], axis=2)
    nvis = np.maximum(vis.sum(axis=1), 1)
    max_disp = np.where(vis, dist, 0.0).max(axis=1, initial=0.0)
    mean_disp = np.where(vis, dist, 0.0).sum(axis=1) / nvis
    direction = np.where(chord_len[:, None] > 1e-6, chord / np.maximum(chord_len, 1e-6)[:, None], 0.0)
    step = np.linalg.norm(np.diff(xy, axis=1), axis=2)              # [K, F-1]
    both = vis[:, 1:] & vis[:, :-1]
    path = np.where(both, step, 0.0).sum(axis=1)
    curvature = np.where(path > 1e-6, 1.0 - chord_len / np.maximum(path, 1e-6), 0.0)
    acc = np.linalg.norm(np.diff(xy, n=2, axis=1), axis=2) if f > 2 else np.zeros((n, 0))
    three = vis[:, 2:] & vis[:, 1:-1] & vis[:, :-2]
    acceleration = np.where(three, acc, 0.0).sum(axis=1) / np.maximum(three.sum(axis=1), 1)
    return np.column_stack([
        start, end, chord / span, max_disp, mean_disp, direction, path,
        np.clip(curvature, 0.0, 1.0), acceleration, vis.sum(axis=1) / max(f, 1),
    ])


def standardise(features: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance columns; constant columns become 0."""
    if features.shape[0] == 0:
        return features.astype(np.float64)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    return (features - mean) / np.where(std > 1e-9, std, 1.0)
