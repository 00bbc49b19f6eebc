"""Plain data passed between the codec's stages.

Conventions used everywhere in tgvc_rt:

* A frame is ``uint8 [H, W, 3]`` RGB (BT.601 limited-range conversion from/to YUV, as OpenCV's
  ``COLOR_YUV2RGB_I420`` / ``COLOR_RGB2YUV_I420``). A clip is ``uint8 [N, H, W, 3]``.
* Pixel coordinates are (x, y) with the centre of pixel (i, j) at x = j, y = i.
* Latent coordinates (1/8 resolution) are ``u = (x + 0.5) / 8 - 0.5`` (the align_corners=False map).
* A keyframe *group* spans frames ``start .. end`` inclusive of both keyframes; its local frame
  index ``f`` runs over ``0 .. end - start`` (``F = end - start + 1`` frames).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VideoMeta:
    width: int
    height: int
    fps_num: int = 30
    fps_den: int = 1

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den


@dataclass
class Video:
    frames: np.ndarray  # uint8 [N, H, W, 3] RGB
    meta: VideoMeta

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class Tracks:
    """Point trajectories of one keyframe group.

    xy:       float32 [K, F, 2], (x, y) in pixels of the full frame at local frame f.
    vis:      bool    [K, F], whether the point is visible at f.
    instance: int32   [K], motion instance id (>= 0); -1 for unclustered/dense tracks.
    """

    xy: np.ndarray
    vis: np.ndarray
    instance: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32)
        self.vis = np.asarray(self.vis, dtype=bool)
        if self.instance is None:
            self.instance = np.full(self.xy.shape[0], -1, dtype=np.int32)
        self.instance = np.asarray(self.instance, dtype=np.int32)
        if self.xy.ndim != 3 or self.xy.shape[2] != 2:
            raise ValueError(f"tracks xy must be [K, F, 2], got {self.xy.shape}")
        if self.vis.shape != self.xy.shape[:2] or self.instance.shape != self.xy.shape[:1]:
            raise ValueError("tracks vis/instance shapes do not match xy")

    @property
    def num_tracks(self) -> int:
        return int(self.xy.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.xy.shape[1])

    @staticmethod
    def empty(num_frames: int) -> "Tracks":
        return Tracks(np.zeros((0, num_frames, 2), np.float32), np.zeros((0, num_frames), bool))

    def subset(self, index: np.ndarray) -> "Tracks":
        return Tracks(self.xy[index], self.vis[index], self.instance[index])


@dataclass(frozen=True)
class GroupSpan:
    """One keyframe group: frames start..end inclusive (both are keyframes)."""

    start: int
    end: int

    @property
    def num_frames(self) -> int:
        return self.end - self.start + 1


def groups_from_keyframes(keyframes: list[int]) -> list[GroupSpan]:
    """Consecutive keyframe indices -> groups. A single keyframe gives one 1-frame group."""
    if len(keyframes) == 1:
        return [GroupSpan(keyframes[0], keyframes[0])]
    return [GroupSpan(a, b) for a, b in zip(keyframes[:-1], keyframes[1:])]
