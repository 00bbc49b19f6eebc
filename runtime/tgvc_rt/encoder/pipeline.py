"""The encoder: frames -> keyframes + selected trajectories -> one .tgv stream.

read frames -> plan keyframes -> per group: track (fwd + bwd) -> select -> code tracks
            -> rate control (track share, keyframe budgets) -> code keyframes -> write .tgv
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace

from ..bitstream import Bitstream, GroupPayload, StreamHeader, write_bitstream
from ..codec import keyframe_formats
from ..codec.trajectories import TrajectoryCodingOptions, encode_tracks
from ..errors import ModelSetError
from ..models import default_model_set_hash
from ..progress import Advance, _noop
from ..types import GroupSpan, Tracks, Video, groups_from_keyframes
from . import ratecontrol
from .keyframe_rate import encode_keyframes
from .interp_probe import InterpolatorProbe, ProbeOptions, check_effort, prune_predicted
from .keyframe_trial import choose_keyframes
from .keyframes import KeyframeOptions, plan_keyframes
from .selection import SelectionOptions, limit_tracks, select_tracks
from .tracking import TrackingOptions, track_group


@dataclass
class EncodeOptions:
    rate: ratecontrol.RateOptions = field(default_factory=ratecontrol.RateOptions)
    keyframes: KeyframeOptions = field(default_factory=KeyframeOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    selection: SelectionOptions = field(default_factory=SelectionOptions)
    trajectories: TrajectoryCodingOptions = field(default_factory=TrajectoryCodingOptions)
    keyframe_codec: str = keyframe_formats.DEFAULT_CODEC   # see codec/keyframe_formats.py
    seed: int | None = None          # decoder noise seed in the header (content_seed when None)
    model_set_hash: bytes = field(default_factory=default_model_set_hash)  # names the decoder's model set
    effort: int = 1                  # 0: no model in the loop; 1: keyframe plans tried with the decoder's
    #                                  interpolator (keyframe_trial.py); 2: also prunes the tracks it predicts by
    #                                  itself. 1 and 2 need the model set's interpolator. Effort 1 vs 0, JOD / VMAF at
    #                                  0.005 bpp: foreman 6.78 / 35.1 vs 6.54 / 36.8, bikes 6.28 / 39.1 vs 5.81 / 31.3,
    #                                  flower 7.50 / 58.7 vs 7.53 / 58.3, the other three unchanged: mean 6.35 / 36.2
    #                                  vs 6.24 / 35.1 (results/interp_sweep_trial.json, interp_sweep_gap.json), at
    #                                  2-3x the encode time. Pruning measured JOD at track share 0.1, without / with
    #                                  (keep 2 px): foreman 6.69 / 6.70, mobile 4.23 / 4.28, carphone 6.66 / 6.67,
    #                                  webcamtalk 6.15 / 6.15, flower 7.51 / 7.49, bikes 5.65 / 5.62 at 2x the time
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    model_set: str = "default"       # model set whose interpolator runs in the loop (effort >= 1)


@dataclass
class EncodeResult:
    data: bytes
    keyframes: list[int]
    keyframe_bytes: int
    track_bytes: int
    num_tracks: int
    target_bytes: int
    target_bpp: float
    seconds: dict[str, float]

    def bpp(self, video: Video) -> float:
        return len(self.data) * 8 / (video.meta.width * video.meta.height * len(video))


def _open_probe(options: EncodeOptions) -> InterpolatorProbe | None:
    check_effort(options.effort)
    if options.effort == 0:
        return None
    from ..models import load_model_set

    models = load_model_set(options.model_set)
    if not models.has("interpolator"):
        raise ModelSetError(f"--effort {options.effort} runs the decoder's interpolator, which model set "
                            f"{options.model_set!r} lacks; encode with --effort 0")
    return InterpolatorProbe(models.session("interpolator"), options.probe)


def _select_group(video: Video, span: GroupSpan, options: EncodeOptions,
                  probe: InterpolatorProbe | None) -> Tracks:
    frames = video.frames[span.start: span.end + 1]
    if span.num_frames < 3:
        return Tracks.empty(span.num_frames)
    selected = select_tracks(track_group(frames, options.tracking), frames, options.selection)
    if probe is not None and options.effort >= 2 and selected.num_tracks:
        errors = probe.track_errors(frames[0], frames[-1], selected)
        selected = prune_predicted(selected, errors, options.probe.keep_error_px)
    return selected


def _code_tracks(selected: list[Tracks], budget: int, video: Video,
                 options: EncodeOptions) -> tuple[list[bytes], int]:
    """Code every group's tracks, keeping the same fraction (the most important tracks) of each group,
    the largest fraction whose payloads fit ``budget``. Returns (payloads, tracks kept)."""
    w, h = video.meta.width, video.meta.height

    def kept(t: Tracks, permille: int) -> int:
        return min(t.num_tracks, max(options.rate.min_tracks_per_group, t.num_tracks * permille // 1000))

    def coded(permille: int) -> list[bytes]:
        return [encode_tracks(limit_tracks(t, kept(t, permille)), w, h, options.trajectories) for t in selected]

    keep = ratecontrol.fit_tracks(lambda p: sum(map(len, coded(p))), 1000, budget)
    return coded(keep), sum(kept(t, keep) for t in selected)


def _header(video: Video, options: EncodeOptions, keyframes: list[int]) -> StreamHeader:
    """The stream header of a plan (the noise seed is fixed-size: the content seed goes in later)."""
    meta = video.meta
    return StreamHeader(meta.width, meta.height, meta.fps_num, meta.fps_den, len(video),
                        keyframe_formats.CODEC_IDS[options.keyframe_codec], 0, options.model_set_hash,
                        options.seed or 0, len(keyframes), len(groups_from_keyframes(keyframes)))


def content_seed(coded_keyframes: dict[int, bytes], payloads: list[bytes]) -> int:
    """The noise seed of an encode given none: the first 4 bytes of SHA-256 over the coded keyframes (in
    frame order) and the track payloads, so one clip with one set of options always gives the same stream."""
    digest = hashlib.sha256()
    for index in sorted(coded_keyframes):
        digest.update(coded_keyframes[index])
    for payload in payloads:
        digest.update(payload)
    return int.from_bytes(digest.digest()[:4], "big")


def encode_video(video: Video, options: EncodeOptions, advance: Advance = _noop) -> EncodeResult:
    """Encode a whole clip. ``advance(n)`` is called as frames are analysed (progress)."""
    n, meta = len(video), video.meta
    seconds: dict[str, float] = {}
    bits = ratecontrol.target_bits(options.rate, meta.width, meta.height, n, meta.fps)
    budget, bpp = int(bits // 8), bits / (meta.width * meta.height * n)

    keyframe_formats.check_codec(options.keyframe_codec)
    probe = _open_probe(options)
    t0 = time.perf_counter()
    if n <= 1:
        keyframes = [0]
    elif probe is None:
        keyframes = plan_keyframes(video.frames, options.keyframes, bpp=bpp)
    else:
        def keyframe_budget(plan: list[int]) -> int:
            framing = ratecontrol.fixed_bytes(len(_header(video, options, plan).pack()), plan,
                                              groups_from_keyframes(plan))
            return max(1, int((budget - framing) * (1.0 - options.rate.track_share)))

        keyframes = choose_keyframes(video.frames, options.keyframes, bpp, options.keyframe_codec, probe,
                                     keyframe_budget).keyframes
    spans = groups_from_keyframes(keyframes)
    seconds["plan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    selected = []
    for span in spans:
        selected.append(_select_group(video, span, options, probe))
        advance(span.num_frames - 1)
    seconds["track"] = time.perf_counter() - t0

    header = _header(video, options, keyframes)
    t0 = time.perf_counter()
    content = budget - ratecontrol.fixed_bytes(len(header.pack()), keyframes, spans)
    payloads, num_tracks = _code_tracks(selected, int(options.rate.track_share * content), video, options)
    track_bytes = sum(map(len, payloads))
    seconds["code_tracks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    coded_keyframes = encode_keyframes(video.frames, keyframes, content - track_bytes, options.keyframe_codec)
    seconds["code_keyframes"] = time.perf_counter() - t0
    advance(1)

    if options.seed is None:
        header = replace(header, noise_seed=content_seed(coded_keyframes, payloads))
    groups = [GroupPayload(s.start, s.end, p) for s, p in zip(spans, payloads)]
    data = write_bitstream(Bitstream(header, coded_keyframes, groups))
    return EncodeResult(data, keyframes, sum(map(len, coded_keyframes.values())), track_bytes,
                        num_tracks, budget, bpp, seconds)
