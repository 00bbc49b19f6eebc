"""Motion-aware track selection: dense tracks -> a few hundred (or fewer) representative tracks.

Pipeline (T-GVC's, with a model-free importance):

1. candidates: tracks visible in at least ``min_visible_frames`` frames;
2. per-track features (:mod:`.track_features`), standardised;
3. HDBSCAN (``min_cluster_size`` 10, ``min_samples`` 6) -> motion instances (noise dropped);
4. importance and motion per instance (:mod:`.track_importance`: gradient energy carried by the
   instance relative to the average instance, and its median largest displacement);
5. keep instances with ``importance * motion > min_importance_motion`` and
   ``motion > min_motion`` px, ordered by ``importance * motion`` (most important first);
6. K-means (``max_per_instance`` clusters) over each kept instance's features; the member nearest
   each centroid is a representative; representatives are ordered by cluster size (largest first);
7. optional ``max_tracks`` cap via :func:`limit_tracks`.

The result is ordered by instance (0 = most important) and, inside an instance, by representative
priority; :func:`limit_tracks` relies on that order.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import HDBSCAN, KMeans
from threadpoolctl import threadpool_limits

from ..errors import OptionError
from ..types import Tracks
from .track_features import standardise, track_features
from .track_importance import gradient_energy, instance_scores


@dataclass
class SelectionOptions:
    min_cluster_size: int = 10
    """HDBSCAN ``min_cluster_size``: fewest tracks that form a motion instance (paper: 10)."""
    min_samples: int = 6
    """HDBSCAN ``min_samples``: density neighbourhood size (paper: 6)."""
    min_importance_motion: float = 0.3
    """Keep an instance only if importance x motion (px) exceeds this (paper: 0.3)."""
    min_motion: float = 3.0
    """... and its motion (median largest displacement of its tracks, px) exceeds this (paper: 3)."""
    max_per_instance: int = 15
    """Most representative tracks per kept instance, chosen by K-means (paper: 15)."""
    max_tracks: int = 48
    """Cap on the number of selected tracks (0 = none), applied with :func:`limit_tracks`. 48
    tracks of a 16-frame group code to ~100-400 bytes (benchmarks/track_coding.py), the budget of
    tracks at ~0.005 bpp; uncapped, busy CIF groups select 100-300 tracks (~1-2 kB)."""
    min_visible_frames: int = 2
    """Tracks visible in fewer frames are not candidates (their motion is unknown)."""
    energy_window: int = 8
    """Box size (px) over which gradient energy is averaged around a track; ~ the grid spacing."""
    seed: int = 0
    """Seed of K-means initialisation (deterministic results)."""


def _check(options: SelectionOptions) -> None:
    if options.min_cluster_size < 2 or options.min_samples < 1:
        raise OptionError("min_cluster_size must be >= 2 and min_samples >= 1")
    if options.max_per_instance < 1 or options.max_tracks < 0 or options.energy_window < 1:
        raise OptionError("max_per_instance and energy_window must be >= 1, max_tracks >= 0")


def cluster_instances(features: np.ndarray, options: SelectionOptions) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of standardised features [K, D]."""
    if features.shape[0] < max(options.min_cluster_size, 2):
        return np.full(features.shape[0], -1, np.int64)
    hdb = HDBSCAN(min_cluster_size=options.min_cluster_size, min_samples=options.min_samples,
                  copy=True)
    return hdb.fit_predict(features).astype(np.int64)


def representatives(features: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of at most ``count`` representative rows of ``features`` (K-means, member nearest
    each centroid), largest cluster first."""
    n = features.shape[0]
    if n <= count:
        return np.arange(n)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=count, n_init=1, random_state=seed).fit(features)
    d = ((features[:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2)
    nearest = np.argmin(d, axis=0)
    sizes = np.bincount(km.labels_, minlength=count)
    order = np.lexsort((nearest, -sizes))
    _, first = np.unique(nearest[order], return_index=True)
    return nearest[order][np.sort(first)]


def select_tracks(tracks: Tracks, frames: np.ndarray, options: SelectionOptions = SelectionOptions()
                  ) -> Tracks:
    """Motion-aware subset of dense ``tracks`` of the clip ``frames`` (uint8 [F, H, W, 3]).

    Per-track features -> HDBSCAN instances -> model-free importance per instance -> keep instances
    by importance x motion and motion thresholds -> K-means representatives per kept instance.
    Returns the subset, instance ids renumbered 0..I-1 (0 = highest importance x motion)."""
    _check(options)
    empty = Tracks.empty(tracks.num_frames)
    cand = np.flatnonzero(tracks.vis.sum(axis=1) >= options.min_visible_frames)
    if tracks.num_frames < 2 or cand.size == 0:
        return empty
    sub = tracks.subset(cand)
    feats = standardise(track_features(sub))
    labels = cluster_instances(feats, options)
    importance, motion = instance_scores(sub, labels, gradient_energy(frames, options.energy_window))
    score = importance * motion
    kept = np.flatnonzero((score > options.min_importance_motion) & (motion > options.min_motion))
    kept = kept[np.argsort(-score[kept], kind="stable")]
    chosen, inst = [], []
    for new_id, old_id in enumerate(kept):
        members = np.flatnonzero(labels == old_id)
        reps = members[representatives(feats[members], options.max_per_instance, options.seed)]
        chosen.append(reps)
        inst.append(np.full(reps.size, new_id, np.int32))
    if not chosen:
        return empty
    index = cand[np.concatenate(chosen)]
    out = Tracks(tracks.xy[index], tracks.vis[index], np.concatenate(inst))
    return limit_tracks(out, options.max_tracks) if options.max_tracks > 0 else out


def limit_tracks(tracks: Tracks, max_tracks: int) -> Tracks:
    """At most ``max_tracks`` tracks, keeping the most important ones in their original order.

    Priority is round-robin over instances: every instance's first track (in order), then every
    instance's second track, ...; within a round lower instance ids (more important) come first and
    unclustered tracks (instance -1) last. With :func:`select_tracks` output this keeps each
    instance's largest K-means clusters and drops instances' minor representatives before whole
    instances."""
    if max_tracks < 0:
        raise OptionError(f"max_tracks must be >= 0, got {max_tracks}")
    k = tracks.num_tracks
    if k <= max_tracks:
        return tracks
    inst = tracks.instance.astype(np.int64)
    prio = np.where(inst < 0, np.iinfo(np.int64).max, inst)
    order = np.argsort(prio, kind="stable")
    sorted_prio = prio[order]
    group_start = np.searchsorted(sorted_prio, sorted_prio, side="left")
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k) - group_start
    keep = np.lexsort((np.arange(k), prio, rank))[:max_tracks]
    return tracks.subset(np.sort(keep))
