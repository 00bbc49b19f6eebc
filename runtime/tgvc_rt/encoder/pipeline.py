"""The encoder: frames -> keyframes + selected trajectories -> one .tgv stream.

read frames -> plan keyframes -> per group: track (fwd + bwd) -> select -> code tracks
            -> rate control (track share, keyframe budgets) -> code keyframes -> write .tgv

Long inputs are encoded in chunks of about ``EncodeOptions.chunk_seconds``: the encoder holds one chunk of
frames (plus half a chunk read ahead) and the compressed stream, never the whole input. Consecutive chunks
share their boundary frame, a keyframe; each chunk gets the budget of its own frames and codes its keyframes
as a new keyframe segment (starting with an intra keyframe), so a chunk is also a random-access point.
A clip no longer than one chunk and a half is encoded in one piece.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ..bitstream import Bitstream, GroupPayload, StreamHeader, write_bitstream
from ..codec import keyframe_formats
from ..codec.keyframe_sequence import KeyframeStreamOptions
from ..codec.trajectories import TrajectoryCodingOptions, encode_tracks
from ..errors import InputError, ModelSetError, OptionError
from ..models import default_model_set_hash
from ..progress import Advance, _noop
from ..types import GroupSpan, Tracks, Video, VideoMeta, groups_from_keyframes
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
    keyframe_stream: KeyframeStreamOptions | None = None  # the sequence codecs' settings (intra period, SVT-AV1
    #                                  preset, ...); None: by effort (keyframe_stream_options)
    seed: int | None = None          # decoder noise seed in the header (content_seed when None)
    model_set_hash: bytes = field(default_factory=default_model_set_hash)  # names the decoder's model set
    effort: int = 1                  # 0: no model in the loop, SVT-AV1 preset 4; 1: keyframe plans tried with the
    #                                  decoder's interpolator (keyframe_trial.py), keyframes coded at SVT-AV1 preset 2
    #                                  (EFFORT_AV1_PRESET); 2: also prunes the tracks it predicts by
    #                                  itself. 1 and 2 need the model set's interpolator. Effort 1 vs 0, JOD / VMAF at
    #                                  0.005 bpp: foreman 6.78 / 35.1 vs 6.54 / 36.8, bikes 6.28 / 39.1 vs 5.81 / 31.3,
    #                                  flower 7.50 / 58.7 vs 7.53 / 58.3, the other three unchanged: mean 6.35 / 36.2
    #                                  vs 6.24 / 35.1 (results/interp_sweep_trial.json, interp_sweep_gap.json), at
    #                                  2-3x the encode time. Pruning measured JOD at track share 0.1, without / with
    #                                  (keep 2 px): foreman 6.69 / 6.70, mobile 4.23 / 4.28, carphone 6.66 / 6.67,
    #                                  webcamtalk 6.15 / 6.15, flower 7.51 / 7.49, bikes 5.65 / 5.62 at 2x the time
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    model_set: str = "default"       # model set whose interpolator runs in the loop (effort >= 1)
    chunk_seconds: float = 10.0      # inputs are encoded in chunks of about this long (module docstring); the
    #                                  encoder's memory is that of one chunk and a half. 0: the whole input at once


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
    frames: int = 0
    chunks: int = 1
    width: int = 0
    height: int = 0

    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height * self.frames)


EFFORT_AV1_PRESET = 2  # SVT-AV1 preset of the final keyframe coding at effort >= 1 (effort 0 keeps the codec's 4).
#                        Six clips at 0.005 bpp, preset 2 vs 4: JOD better on all six (mean 6.47 vs 6.41, VMAF 37.7 vs
#                        36.9; results/interp_sweep_preset.json); foreman's keyframes took 19.8 s instead of 7.7 s


def keyframe_stream_options(options: EncodeOptions) -> KeyframeStreamOptions:
    """The keyframe coder's settings: ``options.keyframe_stream``, else the codec's defaults with the slower,
    better SVT-AV1 preset at effort 1 and 2."""
    if options.keyframe_stream is not None:
        return options.keyframe_stream
    defaults = KeyframeStreamOptions()
    return defaults if options.effort == 0 else replace(defaults, av1_preset=EFFORT_AV1_PRESET)


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


def _select_group(chunk: np.ndarray, span: GroupSpan, options: EncodeOptions,
                  probe: InterpolatorProbe | None) -> Tracks:
    frames = chunk[span.start: span.end + 1]
    if span.num_frames < 3:
        return Tracks.empty(span.num_frames)
    selected = select_tracks(track_group(frames, options.tracking), frames, options.selection)
    if probe is not None and options.effort >= 2 and selected.num_tracks:
        errors = probe.track_errors(frames[0], frames[-1], selected)
        selected = prune_predicted(selected, errors, options.probe.keep_error_px)
    return selected


def _code_tracks(selected: list[Tracks], budget: int, meta: VideoMeta,
                 options: EncodeOptions) -> tuple[list[bytes], int]:
    """Code every group's tracks, keeping the same fraction (the most important tracks) of each group,
    the largest fraction whose payloads fit ``budget``. Returns (payloads, tracks kept)."""
    w, h = meta.width, meta.height

    def kept(t: Tracks, permille: int) -> int:
        return min(t.num_tracks, max(options.rate.min_tracks_per_group, t.num_tracks * permille // 1000))

    def coded(permille: int) -> list[bytes]:
        return [encode_tracks(limit_tracks(t, kept(t, permille)), w, h, options.trajectories) for t in selected]

    keep = ratecontrol.fit_tracks(lambda p: sum(map(len, coded(p))), 1000, budget)
    return coded(keep), sum(kept(t, keep) for t in selected)


def _header(meta, num_frames: int, options: EncodeOptions, keyframes: list[int]) -> StreamHeader:
    """The stream header of a plan (the noise seed is fixed-size: the content seed goes in later)."""
    return StreamHeader(meta.width, meta.height, meta.fps_num, meta.fps_den, num_frames,
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
    """Encode a clip held in memory. ``advance(n)`` is called as frames are analysed (progress)."""
    return encode_frames(iter(video.frames), video.meta, options, advance)


def encode_frames(frames: Iterable[np.ndarray], meta: VideoMeta, options: EncodeOptions,
                  advance: Advance = _noop) -> EncodeResult:
    """Encode a stream of RGB uint8 frames, chunk by chunk (module docstring); the frames are read as needed."""
    keyframe_formats.check_codec(options.keyframe_codec)
    ratecontrol.target_bits(options.rate, meta.width, meta.height, 1, meta.fps)  # checks the options first
    if not options.chunk_seconds >= 0:
        raise OptionError(f"chunk length {options.chunk_seconds} s: must be >= 0")
    probe = _open_probe(options)
    seconds: dict[str, float] = {}
    plan = _StreamPlan()
    chunk_len = max(2, int(round(options.chunk_seconds * meta.fps))) if options.chunk_seconds else 0
    for chunk, offset in _chunks(iter(frames), chunk_len):
        _encode_chunk(chunk, offset, meta, options, probe, plan, seconds, advance)
    if plan.frames == 0:
        raise InputError("the video has no frames")
    advance(1)
    header = _header(meta, plan.frames, options, plan.keyframes)
    if options.seed is None:
        header = replace(header, noise_seed=content_seed(plan.coded, plan.payloads))
    groups = [GroupPayload(s.start, s.end, p) for s, p in zip(plan.spans, plan.payloads)]
    data = write_bitstream(Bitstream(header, plan.coded, groups))
    budget_bits = ratecontrol.target_bits(options.rate, meta.width, meta.height, plan.frames, meta.fps)
    return EncodeResult(data, plan.keyframes, sum(map(len, plan.coded.values())), sum(map(len, plan.payloads)),
                        plan.num_tracks, int(budget_bits // 8), budget_bits / (meta.width * meta.height * plan.frames),
                        seconds, frames=plan.frames, chunks=plan.chunks, width=meta.width, height=meta.height)


@dataclass
class _StreamPlan:
    """What the chunks encoded so far add up to (global frame indices)."""

    frames: int = 0
    chunks: int = 0
    keyframes: list[int] = field(default_factory=list)
    spans: list[GroupSpan] = field(default_factory=list)
    coded: dict[int, bytes] = field(default_factory=dict)
    payloads: list[bytes] = field(default_factory=list)
    num_tracks: int = 0


def _chunks(frames: Iterator[np.ndarray], chunk_len: int) -> Iterator[tuple[np.ndarray, int]]:
    """(frames of a chunk, index of its first frame). Chunks of ``chunk_len`` frames share their boundary
    frame; the last one takes what is left when that is under 1.5 chunks (``chunk_len`` 0: one chunk)."""
    buffer: list[np.ndarray] = []
    offset = 0
    for frame in frames:
        buffer.append(np.asarray(frame, np.uint8))
        if chunk_len and len(buffer) >= chunk_len + chunk_len // 2 + 1:
            yield np.stack(buffer[:chunk_len]), offset
            offset += chunk_len - 1
            buffer = buffer[chunk_len - 1:]  # the boundary frame starts the next chunk
    if buffer and (offset == 0 or len(buffer) > 1):
        yield np.stack(buffer), offset


def _framing(header_payload: int, first: bool, new_keyframes: list[int], spans: list[GroupSpan]) -> int:
    """Framing bytes a chunk adds: its keyframe and group sections (and, for the first, the preamble, header and
    end sections)."""
    total = ratecontrol.fixed_bytes(header_payload, new_keyframes, spans)
    return total if first else total - ratecontrol.fixed_bytes(header_payload, [], [])


def _encode_chunk(chunk: np.ndarray, offset: int, meta: VideoMeta, options: EncodeOptions,
                  probe: InterpolatorProbe | None, plan: _StreamPlan, seconds: dict[str, float],
                  advance: Advance) -> None:
    """Plan, track and code one chunk (local frame 0 is global frame ``offset``; for a chunk after the first it
    is the previous chunk's last keyframe, already coded) and add it to ``plan``."""
    n, first = len(chunk), offset == 0
    new_frames = n if first else n - 1
    bits = ratecontrol.target_bits(options.rate, meta.width, meta.height, new_frames, meta.fps)
    budget, bpp = int(bits // 8), bits / (meta.width * meta.height * new_frames)

    def new_keys(local: list[int]) -> list[int]:
        return local if first else local[1:]

    def header_len(local: list[int]) -> int:  # the stream's total length is known once its last chunk is read
        keys = plan.keyframes + [offset + k for k in new_keys(local)]
        return len(_header(meta, offset + n, options, keys).pack())

    t0 = time.perf_counter()
    if n <= 1:
        local = [0]
    elif probe is None:
        local = plan_keyframes(chunk, options.keyframes, bpp=bpp)
    else:
        def keyframe_budget(candidate: list[int]) -> int:
            framing = _framing(header_len(candidate), first, new_keys(candidate), groups_from_keyframes(candidate))
            return max(1, int((budget - framing) * (1.0 - options.rate.track_share)))

        local = choose_keyframes(chunk, options.keyframes, bpp, options.keyframe_codec, probe,
                                 keyframe_budget).keyframes
    spans = groups_from_keyframes(local)
    seconds["plan"] = seconds.get("plan", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    selected = []
    for span in spans:
        selected.append(_select_group(chunk, span, options, probe))
        advance(span.num_frames - 1)
    seconds["track"] = seconds.get("track", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    content = budget - _framing(header_len(local), first, new_keys(local), spans)
    payloads, num_tracks = _code_tracks(selected, int(options.rate.track_share * content), meta, options)
    seconds["code_tracks"] = seconds.get("code_tracks", 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    coded = encode_keyframes(chunk, new_keys(local), content - sum(map(len, payloads)), options.keyframe_codec,
                             keyframe_stream_options(options))
    seconds["code_keyframes"] = seconds.get("code_keyframes", 0.0) + time.perf_counter() - t0

    plan.keyframes += [offset + k for k in new_keys(local)]
    plan.spans += [GroupSpan(offset + s.start, offset + s.end) for s in spans]
    plan.coded.update((offset + k, v) for k, v in coded.items())
    plan.payloads += payloads
    plan.num_tracks += num_tracks
    plan.frames = offset + n
    plan.chunks += 1
