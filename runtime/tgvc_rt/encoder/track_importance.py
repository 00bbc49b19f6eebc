"""How much a motion instance matters to the picture, without any learned model.

T-GVC measures an instance's importance as the change of a global image embedding when the instance
is removed. We cannot ship an embedding network in the encoder, so we measure the change directly in
the picture: if the decoder did not move an instance whose pixels really move by ``d``, its region
would be wrong by about ``|grad I| * |d|`` per pixel (first-order Taylor expansion of the warp
error). The error of dropping instance i therefore factors into

* ``motion_i``: how far its points move (median over its tracks of the largest displacement from
  the first visible position, px), and
* ``importance_i``: how much image structure it carries: the sum over its tracks of the local
  gradient energy around the track (box-filtered |grad luma|, averaged over the track's visible
  frames), relative to the mean of that sum over all instances (1 = an average instance).

A large textured region scores high, a flat one (sky, wall) low however large it is, so
``importance * motion`` is the instance's normalised first-order warp error, in pixels, and the
paper's rule "keep if importance x motion > 0.3 and motion > 3 px" keeps exactly the instances
whose omission the decoder would show. Dense tracks sample the picture on a regular grid, so each
track stands for a cell of about the same area and the sum over tracks is an area integral.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..types import Tracks
from .motion_fields import to_gray
from .track_features import track_displacement


def gradient_energy(frames: np.ndarray, window: int = 8) -> np.ndarray:
    """Box-filtered (``window`` px) gradient magnitude of the luma of each frame -> float32 [F, H, W]
    (grey levels per pixel)."""
    gray = to_gray(frames)
    out = np.empty(gray.shape, np.float32)
    for f, g in enumerate(gray):
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        out[f] = cv2.boxFilter(np.sqrt(gx * gx + gy * gy), -1, (window, window))
    return out


def track_energy(tracks: Tracks, energy: np.ndarray) -> np.ndarray:
    """Mean of ``energy`` [F, H, W] at each track's visible positions (nearest pixel) -> [K]."""
    f, h, w = energy.shape
    x = np.clip(np.rint(tracks.xy[..., 0]), 0, w - 1).astype(np.int64)
    y = np.clip(np.rint(tracks.xy[..., 1]), 0, h - 1).astype(np.int64)
    e = energy[np.arange(f)[None, :], y, x]
    return np.where(tracks.vis, e, 0.0).sum(axis=1) / np.maximum(tracks.vis.sum(axis=1), 1)


def instance_scores(tracks: Tracks, labels: np.ndarray, energy: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(importance [I], motion [I])`` of instances ``0 .. I-1`` given per-track ``labels``
    (-1 = noise, ignored). See the module docstring for the definitions."""
    n_inst = int(labels.max(initial=-1)) + 1
    if n_inst == 0:
        return np.zeros(0), np.zeros(0)
    member = labels >= 0
    e = track_energy(tracks, energy)
    total = np.bincount(labels[member], weights=e[member], minlength=n_inst)
    importance = total / max(float(total.mean()), 1e-9)
    disp = track_displacement(tracks)
    order = np.lexsort((disp[member], labels[member]))
    sorted_labels, sorted_disp = labels[member][order], disp[member][order]
    starts = np.searchsorted(sorted_labels, np.arange(n_inst))
    counts = np.bincount(sorted_labels, minlength=n_inst)
    last = max(len(sorted_disp) - 1, 0)
    padded = np.append(sorted_disp, 0.0)
    lo = padded[np.minimum(starts + (counts - 1) // 2, last)]
    hi = padded[np.minimum(starts + counts // 2, last)]
    return importance, np.where(counts > 0, 0.5 * (lo + hi), 0.0)
