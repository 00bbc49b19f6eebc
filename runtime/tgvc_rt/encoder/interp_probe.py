"""The decoder's interpolator in the encoder's loop: where does it get the motion wrong by itself?

The encoder runs the model set's ``interpolator`` (RIFE v4 IFNet, no tracks) on small copies of a
group's keyframes at a few in-between times, samples its backward flows at the selected tracks'
positions and compares them with the tracks' true displacements. A motion instance whose tracks the
interpolator already follows needs no bits: ``prune_predicted`` drops it, and the bits go to the
keyframes. Instances it misses (large, non-linear or occluded motion) are kept.

This module talks to the model only through ``models.interpolator`` (the graph's I/O conventions),
never through ``decoder/``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import OptionError
from ..models.interpolator import frames_output, image_input, padded_size, unsteered
from ..types import Tracks

EFFORTS = (0, 1, 2)  # 0: no interpolator in the loop; 1: keyframe plans tried with it; 2: also prune the
#                     tracks it predicts by itself


def check_effort(effort: int) -> None:
    if effort not in EFFORTS:
        raise OptionError(f"--effort {effort}: choose one of {', '.join(map(str, EFFORTS))}")


@dataclass(frozen=True)
class ProbeOptions:
    width: int = 256  # analysis width (keyframes scaled down, flows scaled back to full-res px)
    times: int = 3  # in-between frames probed per group (evenly spaced)
    keep_error_px: float = 2.0  # keep an instance the interpolator misses by more than this (median, px)

    def validate(self) -> None:
        if self.width < 16 or self.times < 1 or not self.keep_error_px >= 0:
            raise OptionError(f"bad interpolator probe options {self}")


class InterpolatorProbe:
    """RIFE alone on small copies of two keyframes: backward flows at chosen times, full-res px."""

    def __init__(self, session, options: ProbeOptions = ProbeOptions()):
        options.validate()
        self.session = session
        self.options = options

    def small(self, image: np.ndarray) -> np.ndarray:
        """``image`` scaled down to the analysis width (never up)."""
        height, width = image.shape[:2]
        scale = min(1.0, self.options.width / width)
        ws, hs = max(16, int(round(width * scale))), max(16, int(round(height * scale)))
        return image if (ws, hs) == (width, height) else cv2.resize(image, (ws, hs), interpolation=cv2.INTER_AREA)

    def _run(self, small_a: np.ndarray, small_b: np.ndarray, times: list[float]) -> dict[str, np.ndarray]:
        hp, wp = padded_size(*small_a.shape[:2])
        b = len(times)
        img0, img1 = image_input(small_a, hp, wp), image_input(small_b, hp, wp)
        feeds = {"img0": np.broadcast_to(img0, (b, 3, hp, wp)), "img1": np.broadcast_to(img1, (b, 3, hp, wp)),
                 "timestep": np.asarray(times, np.float32), **unsteered(b, hp, wp)}
        return self.session.run(feeds)

    def flows(self, key_a: np.ndarray, key_b: np.ndarray, times: list[float]) -> tuple[np.ndarray, float]:
        """float32 [T, 4, hs, ws] flows (t->A, t->B) on the small grid and the scale small/full."""
        small_a, small_b = self.small(key_a), self.small(key_b)
        hs, ws = small_a.shape[:2]
        flow = self._run(small_a, small_b, times)["flow"][:, :, :hs, :ws]
        return np.array(flow, np.float32), ws / key_a.shape[1]

    def frames(self, small_a: np.ndarray, small_b: np.ndarray, times: list[float]) -> np.ndarray:
        """uint8 [T, hs, ws, 3]: RIFE alone between two small copies (``small``) at ``times``."""
        hs, ws = small_a.shape[:2]
        return frames_output(self._run(small_a, small_b, times)["frame"], hs, ws)

    def track_errors(self, key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks) -> np.ndarray:
        """Per track, the largest miss (full-res px) of the interpolator's flows at the probed frames;
        0 where a track is not visible at a probed frame and a key."""
        n = tracks.num_frames - 1
        probe = sorted({int(round(n * (j + 1) / (self.options.times + 1))) for j in range(self.options.times)})
        probe = [f for f in probe if 0 < f < n]
        err = np.zeros(tracks.num_tracks, np.float32)
        if not probe or tracks.num_tracks == 0:
            return err
        flows, scale = self.flows(key_a, key_b, [f / n for f in probe])
        xy, vis = tracks.xy, tracks.vis
        for i, f in enumerate(probe):
            pos = (xy[:, f] + 0.5) * scale - 0.5  # full-res pixel centres -> small-copy coordinates
            mx, my = pos[:, 0:1].astype(np.float32), pos[:, 1:2].astype(np.float32)
            sampled = [cv2.remap(flows[i, c], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
                       for c in range(4)]
            pred = np.stack(sampled, axis=1) / scale  # [K, 4] full-res px
            true = np.concatenate([xy[:, 0] - xy[:, f], xy[:, n] - xy[:, f]], axis=1)
            miss = np.abs(pred - true)
            miss_a = np.where(vis[:, f] & vis[:, 0], np.hypot(miss[:, 0], miss[:, 1]), 0)
            miss_b = np.where(vis[:, f] & vis[:, n], np.hypot(miss[:, 2], miss[:, 3]), 0)
            err = np.maximum(err, np.maximum(miss_a, miss_b))
        return err


def prune_predicted(tracks: Tracks, errors: np.ndarray, keep_error_px: float) -> Tracks:
    """Drop the motion instances whose tracks the interpolator already follows (median miss below
    ``keep_error_px``); unclustered tracks (instance -1) are judged one by one. Order is kept."""
    keep = np.zeros(tracks.num_tracks, bool)
    for inst in np.unique(tracks.instance):
        members = tracks.instance == inst
        if inst < 0:
            keep |= members & (errors > keep_error_px)
        elif np.median(errors[members]) > keep_error_px:
            keep |= members
    return tracks.subset(np.flatnonzero(keep))
