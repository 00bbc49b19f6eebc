"""Keyframes coded as one tiny low-delay inter-predicted stream (AV1 or HEVC P frames).

Consecutive keyframes of a clip look alike, so instead of coding each one as a still image
(keyframe_image.py) the keyframe *sequence* is coded as a short video: an intra keyframe starts a
*segment*, the following keyframes of the segment are P frames predicted from the ones before (low
delay, no B frames, no reordering: keyframe i is access unit i). A fresh intra keyframe every
``intra_period`` keyframes bounds the damage of a lost payload and gives random access points.

Payload of one keyframe (the container's KEYFRAME section carries its length; codec id in the header):

    intra keyframe: byte 0 = 0x80 | flags, then the codec's access unit
        flags bits 0-3: scale level (index into keyframe_image.SCALES), the same for the segment
        bit 4: AV1 sequence header stored (else rebuilt from the coded size), bits 5-6: AV1 header
        variant when rebuilt (see av1_obu.py); HEVC: bits 4-6 are 0
    inter keyframe: the codec's access unit alone. Its first byte has bit 7 clear (the forbidden bit
        of an AV1 OBU header / of an HEVC NAL unit header), which tells it from an intra payload.

    The access units are stripped as keyframe_units.py describes (AV1: no temporal
    delimiter, sequence header rebuilt, last OBU without size field; HEVC: no leading start code).

Rate control (:func:`encode_keyframe_sequence`): one constant QP (AV1: qindex 0..255 with flat
per-layer offsets; HEVC: QP 0..51) and one scale level for the whole sequence; a bracketing secant
search finds the finest QP whose payloads fit the byte budget (3-7 encodes of the whole sequence)
at the largest scale level that fits at all, and at the next smaller one when that QP is coarse
(as the intra codec's scale ladder); the candidate with the best mean PSNR-Y wins.

Decoding (:class:`KeyframeSequenceDecoder`) is sequential: payloads must be given in stream order,
starting with an intra payload. Pictures are converted with OpenCV's BT.601 I420 conversions; odd
sizes are padded (edge) to even and cropped, downscaled pictures are upsampled (cubic).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tgvc_rt.codec.keyframe_image import SCALES, coded_size, from_coded, psnr_y, to_coded
from tgvc_rt.codec.keyframe_segments import MAX_QP, SegmentDecoder, SegmentEncoderOptions, encode_segment
from tgvc_rt.codec.keyframe_units import pack_av1, pack_hevc, unpack_av1, unpack_hevc
from tgvc_rt.errors import BitstreamError, OptionError

SEQUENCE_CODECS: tuple[str, ...] = ("av1-seq", "hevc-seq")
SEQUENCE_CODEC_IDS: dict[str, int] = {"av1-seq": 4, "hevc-seq": 5}
"""Header codec ids of the sequence codecs, next to keyframe_image.CODEC_IDS (1-3, intra codecs).
Kept here so that keyframe_image.py (whose functions accept any name in its CODEC_IDS) is unchanged."""
DEFAULT_SEQUENCE_CODEC = "av1-seq"  # chosen by benchmarks/keyframe_stream.py (results/keyframe_stream.json)

QP_PER_DOUBLING = {"av1-seq": 24.0, "hevc-seq": 6.0}
"""Rate search's first guess of the rate curve: the bytes double this many QP finer (measured on CIF)."""
MAX_PAYLOAD_BYTES = 16 << 20  # the decoder refuses larger payloads
MAX_SIDE = 8192  # the decoder refuses larger pictures
_INTRA, _LEVEL_MASK, _HEADER_STORED, _VARIANT_SHIFT = 0x80, 0x0F, 0x10, 5


@dataclass(frozen=True)
class KeyframeStreamOptions:
    """Encoder settings of the keyframe sequence codecs (the decoder needs none of these)."""

    av1_preset: int = 4  # SVT-AV1 preset 0 (slow) .. 13 (fast); 4: ~0.25 s a CIF keyframe for the whole search
    av1_hierarchical_levels: int = 3  # SVT-AV1 low-delay temporal layers (2..5)
    av1_keyframe_qindex_offset: int = -24  # intra keyframes' qindex relative to the (flat) inter ones
    hevc_preset: str = "fast"  # x265 preset
    threads: int = 1  # encoder threads per session (1: no thread-timing effects on the output)
    intra_period: int = 16  # at most this many keyframes per segment (one intra + inter ones); the
    #                         keyframes are split into ceil(K / intra_period) near-equal segments:
    #                         a 96-frame clip with a keyframe every 8 frames (13) gets 1 intra keyframe,
    #                         a 300-frame one gets 3 (one every ~4 s at 30 fps)
    search_scales: int = 2  # the rate search tries up to this many fitting scale levels (best PSNR-Y wins)
    rescale_above: float = 0.9  # ... the next (smaller) one only if the QP that fits is above this
    #                             fraction of the coarsest (measured: a smaller scale only won at
    #                             AV1 qindex >= 238 of 255)
    qp_min: int = 8  # the rate search never goes finer than this (knob units: AV1 qindex, HEVC QP)

    def segment_options(self) -> SegmentEncoderOptions:
        return SegmentEncoderOptions(av1_preset=self.av1_preset,
                                     av1_hierarchical_levels=self.av1_hierarchical_levels,
                                     av1_keyframe_qindex_offset=self.av1_keyframe_qindex_offset,
                                     hevc_preset=self.hevc_preset, threads=self.threads)


def _check_codec(codec: str) -> None:
    if codec not in SEQUENCE_CODECS:
        raise OptionError(f"unknown keyframe sequence codec {codec!r} (choose from {', '.join(SEQUENCE_CODECS)})")


def segment_starts(num_keyframes: int, intra_period: int) -> list[int]:
    """Indices of the intra keyframes: ceil(K / intra_period) near-equal segments."""
    if intra_period < 1:
        raise OptionError(f"keyframe intra period {intra_period}: must be >= 1")
    count = -(-num_keyframes // intra_period)
    return [i * num_keyframes // count for i in range(count)]


def is_intra_payload(payload: bytes) -> bool:
    """Whether a payload starts a segment (decodable without the payloads before it)."""
    return len(payload) > 0 and bool(payload[0] & _INTRA)


def _encode_all(coded: list[np.ndarray], qp: int, level: int, codec: str,
                opts: KeyframeStreamOptions) -> list[bytes]:
    """Payloads of every keyframe at one QP and scale level."""
    ch, cw = coded[0].shape[:2]
    starts = segment_starts(len(coded), opts.intra_period)
    payloads: list[bytes] = []
    for a, b in zip(starts, starts[1:] + [len(coded)]):
        units = encode_segment(coded[a:b], qp, codec, opts.segment_options())
        for i, unit in enumerate(units):
            if codec == "hevc-seq":
                stream, flags = pack_hevc(unit), level
            else:
                stream, variant = pack_av1(unit, i == 0, cw, ch)
                flags = level | (_HEADER_STORED if variant is None else variant << _VARIANT_SHIFT)
            payloads.append(bytes([_INTRA | flags]) + stream if i == 0 else stream)
    return payloads


def _next_qp(lo: int, lo_bytes: int | None, hi: int, hi_bytes: int, recent: list[tuple[int, int]],
             budget: int, qp_per_doubling: float) -> int:
    """Next QP to try inside the bracket (``lo`` too big, ``hi`` fits): a secant step on log(bytes)
    through the two most recent encodes (or the typical slope), taken from the bracket end nearer
    the budget."""
    slope = -np.log(2.0) / qp_per_doubling  # d log(bytes) / d qp
    if len(recent) == 2 and recent[0][0] != recent[1][0] and min(recent[0][1], recent[1][1]) > 0:
        local = (np.log(recent[1][1]) - np.log(recent[0][1])) / (recent[1][0] - recent[0][0])
        slope = local if local < 0 else slope
    base, size = hi, hi_bytes
    if lo_bytes is not None and abs(np.log(lo_bytes / budget)) < abs(np.log(hi_bytes / budget)):
        base, size = lo, lo_bytes
    step = (np.log(budget) - np.log(max(size, 1))) / slope
    return int(min(hi - 1, max(lo + 1, round(base + step))))


def _fit_qp(coded: list[np.ndarray], level: int, budget: int, codec: str, opts: KeyframeStreamOptions,
            start: int | None = None) -> tuple[list[bytes], int, int] | None:
    """(payloads, qp, encodes) of the finest QP that fits ``budget``, or None if the coarsest does not.

    Bracketing search (bytes fall as the QP rises), first encode at ``start`` when given (a QP that
    probably fits) else at the coarsest QP: secant steps on log(bytes), and a bisection step after
    two steps in a row that did not halve the bracket, so it ends in a few encodes on a smooth rate
    curve and within ~3 log2(range) on any.
    """
    hi = MAX_QP[codec] if start is None else start
    best = _encode_all(coded, hi, level, codec, opts)
    hi_bytes, encodes = sum(map(len, best)), 1
    if hi_bytes > budget and hi != MAX_QP[codec]:
        return _fit_qp(coded, level, budget, codec, opts)
    if hi_bytes > budget:
        return None
    lo, lo_bytes = min(opts.qp_min, hi) - 1, None  # invariant: lo does not fit (qp_min - 1 by fiat), hi fits
    recent, slow_steps = [(hi, hi_bytes)], 0
    while hi - lo > 1:
        width = hi - lo
        if slow_steps >= 2:
            mid, slow_steps = (lo + hi) // 2, 0
        else:
            mid = _next_qp(lo, lo_bytes, hi, hi_bytes, recent, budget, QP_PER_DOUBLING[codec])
        payloads = _encode_all(coded, mid, level, codec, opts)
        size, encodes = sum(map(len, payloads)), encodes + 1
        if size <= budget:
            hi, hi_bytes, best = mid, size, payloads
        else:
            lo, lo_bytes = mid, size
        recent = [recent[-1], (mid, size)]
        slow_steps = slow_steps + 1 if 2 * (hi - lo) > width else 0
    return best, hi, encodes


def decode_keyframe_sequence(payloads: list[bytes], width: int, height: int, codec: str) -> list[np.ndarray]:
    decoder = KeyframeSequenceDecoder(width, height, codec)
    return [decoder.decode(p) for p in payloads]


def encode_keyframe_sequence(images: list[np.ndarray], budget_bytes: int, codec: str = DEFAULT_SEQUENCE_CODEC,
                             options: KeyframeStreamOptions = KeyframeStreamOptions()) -> tuple[list[bytes], dict]:
    """Code RGB uint8 [H, W, 3] keyframes (display order) as one low-delay stream within a byte budget.

    Returns one payload per keyframe (keyframe i's access unit; their total is the largest that
    fits ``budget_bytes``, or the smallest possible when nothing fits) and ``info``: ``qp`` (the
    quantiser knob: AV1 qindex, HEVC QP), ``scale_level`` (keyframe_image.SCALES), ``bytes``, ``fits``,
    ``psnr_y`` (per keyframe, of the decoded reconstruction against the input), ``mean_psnr_y``,
    ``intra`` (per keyframe), ``encodes`` (whole-sequence encodes of the search) and ``seconds``.
    """
    t0 = time.perf_counter()
    _check_codec(codec)
    if not images:
        raise OptionError("no keyframes to code")
    images = [np.ascontiguousarray(im, dtype=np.uint8) for im in images]
    h, w = images[0].shape[:2]
    if any(im.ndim != 3 or im.shape != (h, w, 3) for im in images) or min(h, w) < 1:
        raise OptionError(f"keyframes must all be uint8 [H, W, 3] of one size, got {images[0].shape} ...")
    candidates: list[tuple[list[bytes], int, int]] = []
    encodes = 0
    for level in range(len(SCALES)):
        if level and coded_size(w, h, level) == coded_size(w, h, level - 1):
            continue
        coded = [to_coded(im, level) for im in images]
        fit = _fit_qp(coded, level, budget_bytes, codec, options, candidates[-1][1] if candidates else None)
        encodes += 1 if fit is None else fit[2]
        if fit is not None:
            candidates.append((fit[0], fit[1], level))
            if len(candidates) >= options.search_scales or fit[1] < options.rescale_above * MAX_QP[codec]:
                break
        elif candidates:
            break
    fits = bool(candidates)
    if not fits:  # nothing fits: the smallest stream there is
        level = len(SCALES) - 1
        coded = [to_coded(im, level) for im in images]
        candidates = [(_encode_all(coded, MAX_QP[codec], level, codec, options), MAX_QP[codec], level)]
        encodes += 1
    scored = []
    for payloads, qp, level in candidates:
        decoded = decode_keyframe_sequence(payloads, w, h, codec)
        scored.append([psnr_y(a, b) for a, b in zip(images, decoded)])
    pick = int(np.argmax([np.mean(s) for s in scored]))
    payloads, qp, level = candidates[pick]
    info = dict(codec=codec, qp=qp, scale_level=level, scale=SCALES[level],
                bytes=sum(map(len, payloads)), budget_bytes=int(budget_bytes), fits=fits,
                psnr_y=scored[pick], mean_psnr_y=float(np.mean(scored[pick])),
                intra=[is_intra_payload(p) for p in payloads], encodes=encodes,
                candidates=[dict(qp=q, scale_level=lv, bytes=sum(map(len, p)), mean_psnr_y=float(np.mean(s)))
                            for (p, q, lv), s in zip(candidates, scored)],
                seconds=time.perf_counter() - t0)
    return payloads, info


class KeyframeSequenceDecoder:
    """Decodes the payloads of :func:`encode_keyframe_sequence` one after another (stream order).

    Deterministic; any malformed payload (or an inter payload without its segment) raises
    BitstreamError, after which only an intra payload can be decoded.
    """

    def __init__(self, width: int, height: int, codec: str):
        _check_codec(codec)
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise BitstreamError(f"keyframe stream: size {width}x{height} out of range")
        self.width, self.height, self.codec = width, height, codec
        self._segment: SegmentDecoder | None = None
        self._level = 0

    def decode(self, payload: bytes) -> np.ndarray:
        """The next keyframe, RGB uint8 [height, width, 3]."""
        payload = bytes(payload)
        if not 2 <= len(payload) <= MAX_PAYLOAD_BYTES:
            raise BitstreamError(f"keyframe stream: payload of {len(payload)} bytes out of range")
        try:
            return self._decode(payload)
        except BitstreamError:
            self._segment = None  # references are lost until the next intra payload
            raise

    def _decode(self, payload: bytes) -> np.ndarray:
        intra = is_intra_payload(payload)
        if intra:
            flags, stream = payload[0] & ~_INTRA, payload[1:]
            level, variant = flags & _LEVEL_MASK, (flags >> _VARIANT_SHIFT) & 0x03
            if (level >= len(SCALES) or (self.codec == "hevc-seq" and flags & ~_LEVEL_MASK)
                    or (flags & _HEADER_STORED and variant)):
                raise BitstreamError(f"keyframe stream: bad intra payload flags 0x{payload[0]:02x}")
            cw, ch = coded_size(self.width, self.height, level)
            self._segment, self._level = None, level
            segment = SegmentDecoder(self.codec, cw, ch)
            header_variant = None if flags & _HEADER_STORED else variant
        elif self._segment is None:
            raise BitstreamError("keyframe stream: inter payload without a preceding intra payload")
        else:
            segment, stream, header_variant = self._segment, payload, None
        if self.codec == "hevc-seq":
            unit = unpack_hevc(stream, intra)
        else:
            unit = unpack_av1(stream, intra, header_variant, segment.width, segment.height)
        rgb = segment.decode(unit)
        self._segment = segment
        return from_coded(rgb, self.width, self.height, self._level)
