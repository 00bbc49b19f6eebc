"""Trajectory-guided interpolation with the model set's pretrained IFNet (``--mode interp``).

For each in-between frame f of a group (``t = f / (F-1)``) the ``interpolator`` model (RIFE v4
IFNet, ``docs/models.md``) interpolates from the two decoded keyframes, steered by the tracks:

* ``init_flow``: the tracks' dense backward flows (``dense_motion``, the same fields the warp decoder
  warps with) replace the first, coarsest block's flow where the tracks support them;
* ``guidance``: after every block the flow is pulled onto the tracks' displacements at their
  positions at ``t`` by a smooth correction field (Gaussian width from the track spacing).

Both are inputs of one ONNX graph; with both off this is RIFE alone. Frames are padded (edge
replication, bottom/right) to multiples of the model's ``pad``; track coordinates are unaffected.
Deterministic for a given backend: no randomness.

``iter_group`` yields the frames one by one, model batch by model batch, with the dense motion of
each batch computed for it alone (``GroupMotion``), so its memory does not grow with the group's
length; ``interpolate_group`` stacks them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from tgvc_rt.decoder.dense_motion import DenseMotionOptions, GroupMotion, track_sigma
from tgvc_rt.decoder.group import check_keys, collect
from tgvc_rt.errors import OptionError
from tgvc_rt.models.interpolator import (DEFAULT_PAD, frames_output, image_input, no_track_rows, pad_edges,
                                         padded_size)
from tgvc_rt.types import Tracks

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class InterpOptions:
    init_flow: bool = True  # (a) the tracks' dense flows replace the first block's flow where supported
    init_global: bool = True  # ... and everywhere when the tracks show camera motion (their global model;
    #                           flower at 0.005 bpp: JOD 7.51 -> 7.60)
    guidance: float = 1.0  # (b) strength of the per-block flow correction at the tracks (0 = off)
    guide_lambda: float = 0.02  # regulariser of the correction: far from tracks it fades to 0
    sigma_scale: float = 1.0  # correction width = this x the dense-motion Gaussian width
    batch: int = 1  # in-between frames per model call (results do not depend on it). CIF on 2 CPU cores, batch
    #                 1 / 2 / 4: 6.3 / 6.5 / 6.5 frames/s at a peak RSS of 291 / 414 / 667 MB: 1 for the edge
    pad: int = DEFAULT_PAD  # frame sides are padded to multiples of this (the model's coarsest stride)
    min_side: int = 200  # frames whose shorter side is below this are interpolated at 2x, then area-reduced
    #                      (RIFE sees too few pixels at its coarse scales: QCIF carphone at 0.005 bpp JOD 6.66 -> 6.92;
    #                      no gain at 416x240)
    max_side: int = 1000  # frames whose longer side is above this are interpolated at half size, the flows
    #                       and blend mask applied to the full-resolution keys (0 = never). bikes upscaled to
    #                       1280x544 at 0.005 bpp: 3x faster and JOD 6.74 vs 6.72, VMAF 55.9 vs 55.5; at CIF
    #                       it would cost 0.3 JOD (foreman 6.24 vs 6.54)
    motion: DenseMotionOptions = field(default_factory=DenseMotionOptions)

    def validate(self) -> None:
        if not self.guidance >= 0:
            raise OptionError(f"interpolation guidance must be >= 0, got {self.guidance}")
        if not self.guide_lambda > 0:
            raise OptionError(f"interpolation guidance lambda must be > 0, got {self.guide_lambda}")
        if self.batch < 1:
            raise OptionError(f"interpolation batch must be >= 1, got {self.batch}")


def track_constraints(tracks: Tracks, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions at f [K, 2], backward displacements to key A and key B [K, 4], weights [K, 2].

    A track constrains the flow to a key where it is visible both at f and in that key. K >= 1:
    with no tracks one zero-weight row is returned (the graph takes no empty axis).
    """
    n = tracks.num_frames - 1
    if tracks.num_tracks == 0:
        return no_track_rows()
    xy, vis = tracks.xy, tracks.vis
    pos = xy[:, f]
    disp = np.concatenate([xy[:, 0] - pos, xy[:, n] - pos], axis=1)
    weight = np.stack([vis[:, f] & vis[:, 0], vis[:, f] & vis[:, n]], axis=1).astype(np.float32)
    return pos.astype(np.float32), disp.astype(np.float32), weight


def _full_res(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w, C] reduced grid -> [C, H, W] full resolution (bilinear)."""
    up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
    return up.reshape(height, width, -1).transpose(2, 0, 1)


def iter_group(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, run: Runner,
               options: InterpOptions = InterpOptions()) -> Iterator[np.ndarray]:
    """The frames of one group in order, uint8 [H, W, 3] each; frame 0 is ``key_a``, frame F-1 ``key_b``.

    ``run`` executes the interpolator model (a backend session's ``run``). The model works at the
    frame's size, at 2x for small frames (``min_side``), or at half size for large ones
    (``max_side``: its flows and blend mask are then applied to the full-resolution keys).
    """
    key_a, key_b = check_keys(key_a, key_b, tracks.num_frames)
    yield key_a.copy()
    if tracks.num_frames == 1:
        return
    if tracks.num_frames > 2:
        yield from _inner_frames(key_a, key_b, tracks, run, options)
    yield key_b.copy()


def interpolate_group(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, run: Runner,
                      options: InterpOptions = InterpOptions()) -> np.ndarray:
    """Frames of one group, uint8 [F, H, W, 3]; frame 0 is ``key_a``, frame F-1 ``key_b`` (``iter_group``
    stacked)."""
    return collect(iter_group(key_a, key_b, tracks, run, options), tracks.num_frames)


def work_scale(height: int, width: int, options: InterpOptions) -> float:
    """The scale the model works at: 2 for small frames (``min_side``), 0.5 for large ones (``max_side``),
    else 1."""
    if min(height, width) < options.min_side:
        return 2.0
    if options.max_side and max(height, width) > options.max_side:
        return 0.5
    return 1.0


def scaled_inputs(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks,
                  work: float) -> tuple[np.ndarray, np.ndarray, Tracks, tuple[int, int]]:
    """The keys and tracks at the model's working scale, and that size (w, h)."""
    height, width = key_a.shape[:2]
    size = (max(1, int(round(width * work))), max(1, int(round(height * work))))
    if work == 1.0:
        return key_a, key_b, tracks, size
    mode = cv2.INTER_CUBIC if work > 1 else cv2.INTER_AREA
    keys = [cv2.resize(k, size, interpolation=mode) for k in (key_a, key_b)]
    return keys[0], keys[1], Tracks((tracks.xy + 0.5) * work - 0.5, tracks.vis, tracks.instance), size


def _inner_frames(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, run: Runner,
                  options: InterpOptions) -> Iterator[np.ndarray]:
    """Frames 1 .. F-2 of a group (F >= 3), in order."""
    height, width = key_a.shape[:2]
    work = work_scale(height, width, options)
    ka, kb, scaled, size = scaled_inputs(key_a, key_b, tracks, work)
    for frames, outputs in _model_outputs(ka, kb, scaled, run, options):
        if work == 1.0:
            out = frames_output(outputs["frame"], height, width)
        elif work > 1.0:
            big = frames_output(outputs["frame"], size[1], size[0])
            out = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in big]
        else:
            out = _apply_flows(key_a, key_b, outputs["flow"], outputs["mask"], size)
        yield from out


def _apply_flows(key_a: np.ndarray, key_b: np.ndarray, flow: np.ndarray, mask: np.ndarray,
                 size: tuple[int, int]) -> np.ndarray:
    """Full-resolution frames from flows and blend masks found at the smaller ``size`` (w, h)."""
    height, width = key_a.shape[:2]
    sx, sy = width / size[0], height / size[1]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    frames = []
    for fl, m in zip(flow[:, :, :size[1], :size[0]], mask[:, 0, :size[1], :size[0]]):
        up = cv2.resize(np.ascontiguousarray(fl.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_LINEAR)
        up *= np.array([sx, sy, sx, sy], np.float32)
        warped_a = cv2.remap(key_a, gx + up[..., 0], gy + up[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_b = cv2.remap(key_b, gx + up[..., 2], gy + up[..., 3], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wa = cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
        frames.append(cv2.blendLinear(warped_a, warped_b, wa, 1.0 - wa))
    return np.stack(frames)


@dataclass
class BatchInputs:
    """The small, per-batch model inputs the host computes from the tracks (``iter_batch_inputs``); the
    full-resolution ones (``flow_init``, ``init_weight``) are made from ``grids`` where they are used:
    on the host (``_model_outputs``) or on the GPU (``decoder/device_loop.py``)."""

    frames: range                 # the in-between frame indices of this batch
    timestep: np.ndarray          # [b] float32, f / (F - 1)
    grids: np.ndarray | None      # [b, gh, gw, 5] float32: flow to key A (2), to key B (2), weight; None: no
    #                               initial flow (all-zero flow_init and init_weight)
    track_xy: np.ndarray          # [b, K, 2]
    track_flow: np.ndarray        # [b, K, 4]
    track_weight: np.ndarray      # [b, K, 2]


def guide_input(tracks: Tracks, options: InterpOptions) -> np.ndarray:
    """The model's ``guide`` input: (sigma px, lambda, strength)."""
    sigma = track_sigma(tracks, options.motion) * options.sigma_scale
    return np.array([sigma, options.guide_lambda, options.guidance], np.float32)


def iter_batch_inputs(tracks: Tracks, height: int, width: int, options: InterpOptions) -> Iterator[BatchInputs]:
    """Per model batch of in-between frames (F >= 3), the inputs that depend on the tracks."""
    f_ = tracks.num_frames
    use_init = options.init_flow and tracks.num_tracks > 0
    motion = GroupMotion(tracks, height, width, options.motion) if use_init else None
    camera = motion is not None and options.init_global and motion.has_prior
    inner = range(1, f_ - 1)
    for i in range(0, len(inner), options.batch):
        frames = inner[i:i + options.batch]
        grids = None
        if motion is not None:  # the dense motion of this batch's frames only
            dm = motion.frames(frames[0], frames[-1] + 1)
            flow_a, flow_b = dm.flow_a, dm.flow_b  # properties: build once
            grids = np.stack([np.concatenate([flow_a[j], flow_b[j],
                                              (np.ones_like(dm.support[j]) if camera else dm.support[j])[..., None]],
                                             axis=-1) for j in range(len(frames))]).astype(np.float32, copy=False)
        cons = [track_constraints(tracks, f) for f in frames]
        yield BatchInputs(frames, np.array([f / (f_ - 1) for f in frames], np.float32), grids,
                          np.stack([c[0] for c in cons]), np.stack([c[1] for c in cons]),
                          np.stack([c[2] for c in cons]))


def _model_outputs(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, run: Runner, options: InterpOptions):
    """Yield (in-between frame indices, model outputs) batch by batch for a group (F >= 3)."""
    height, width = key_a.shape[:2]
    hp, wp = padded_size(height, width, options.pad)
    img0, img1 = image_input(key_a, hp, wp), image_input(key_b, hp, wp)
    guide = guide_input(tracks, options)
    for batch in iter_batch_inputs(tracks, height, width, options):
        b = len(batch.frames)
        if batch.grids is None:
            flow_init = np.zeros((b, 4, hp, wp), np.float32)
            init_weight = np.zeros((b, 1, hp, wp), np.float32)
        else:
            full = np.stack([pad_edges(_full_res(g, height, width), hp, wp) for g in batch.grids])
            flow_init, init_weight = full[:, :4], full[:, 4:5]
        feeds = {
            "img0": np.broadcast_to(img0, (b, 3, hp, wp)), "img1": np.broadcast_to(img1, (b, 3, hp, wp)),
            "timestep": batch.timestep, "flow_init": flow_init, "init_weight": init_weight,
            "track_xy": batch.track_xy, "track_flow": batch.track_flow, "track_weight": batch.track_weight,
            "guide": guide,
        }
        yield batch.frames, run(feeds)
