"""Rate control: split a bits-per-pixel budget between trajectories and keyframes.

The budget of a clip is ``bpp * W * H * N`` bits. Fixed costs (preamble, header, section framing) come
off first. Trajectories are cheap but not free: they may take at most ``track_share`` of the budget;
if the selected tracks cost more, each group keeps fewer (the most important first). What is left
goes to the keyframes, coded one after another, each given the remaining bytes divided by the number
of keyframes still to code, so that a keyframe that comes in under its share passes the rest on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..bitstream import group_prefix, keyframe_prefix, section_overhead
from ..bitstream.sections import PREAMBLE
from ..errors import OptionError
from ..types import GroupSpan

TYPICAL_PAYLOAD = 1000  # bytes; only sets the width of a section's length varint in the estimate
MIN_BPP, MAX_BPP = 1e-4, 2.0


@dataclass
class RateOptions:
    bpp: float | None = 0.005       # target bits per pixel (of the whole clip)
    kbps: float | None = None       # alternative target in kbit/s (overrides bpp when given)
    track_share: float = 0.05       # largest share of the budget for trajectories. With the interp decoder
    #                                 (RIFE steered by the tracks) fewer tracks and more keyframe bits pay off on
    #                                 average: JOD at 0.005 bpp for shares 0.1 / 0.07 / 0.05 / 0.03: foreman 6.69 /
    #                                 6.66 / 6.54 / 6.48, mobile 4.23 / 4.32 / 4.48 / 4.51, webcamtalk 6.15 / 6.18 /
    #                                 6.17 / 6.18, carphone 6.92 / 6.90 / 6.88 / 6.84, flower 7.60 / 7.60 / 7.53 /
    #                                 7.47, bikes 5.65 / - / 5.81 / -; VMAF higher at 0.05 on four of five
    #                                 (benchmarks/results/interp_sweep_*.json). The warp decoder did best at 0.1.
    min_tracks_per_group: int = 0   # never shrink a group below this many tracks


def target_bits(options: RateOptions, width: int, height: int, num_frames: int, fps: float) -> float:
    """Bit budget of the whole stream (checks the options)."""
    if options.kbps is not None:
        if not (0.1 <= options.kbps <= 1e6):
            raise OptionError(f"--kbps {options.kbps}: must be within 0.1..1000000")
        bits = options.kbps * 1000.0 * num_frames / fps
    else:
        if options.bpp is None or not (MIN_BPP <= options.bpp <= MAX_BPP):
            raise OptionError(f"--bpp {options.bpp}: must be within {MIN_BPP}..{MAX_BPP}")
        bits = options.bpp * width * height * num_frames
    if not (0.0 < options.track_share < 1.0):
        raise OptionError(f"--track-share {options.track_share}: must be within (0, 1)")
    return bits


def keyframe_overhead(index: int) -> int:
    return section_overhead(TYPICAL_PAYLOAD) + len(keyframe_prefix(index))


def fixed_bytes(header_payload: int, keyframes: list[int], spans: list[GroupSpan]) -> int:
    """Bytes of framing that do not depend on content (within a byte or two per section)."""
    return (PREAMBLE.size + section_overhead(header_payload) + header_payload
            + sum(keyframe_overhead(k) for k in keyframes)
            + sum(section_overhead(TYPICAL_PAYLOAD // 4) + len(group_prefix(s.start, s.end)) for s in spans)
            + section_overhead(0))


def fit_tracks(payload_size: Callable[[int], int], max_tracks: int, budget: int, min_tracks: int = 0) -> int:
    """Largest track count n <= max_tracks with payload_size(n) <= budget (binary search, monotone
    in practice); at least ``min_tracks``."""
    if payload_size(max_tracks) <= budget:
        return max_tracks
    lo, hi = min_tracks, max_tracks  # payload_size(lo) is accepted as is, hi is too big
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if payload_size(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def keyframe_share(remaining_bytes: int, keyframes_left: int, minimum: int = 32) -> int:
    """Bytes for the next keyframe's image: an equal share of what is left, never below ``minimum``."""
    return max(minimum, remaining_bytes // max(1, keyframes_left))
