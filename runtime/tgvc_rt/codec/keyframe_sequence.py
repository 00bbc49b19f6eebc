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

Encoding (:func:`encode_payloads`): every keyframe's payload at one constant QP (AV1: qindex 0..255
with flat per-layer offsets; HEVC: QP 0..51) and one scale level; the encoder's rate search that picks
them is ``encoder/keyframe_rate.py``.

Decoding (:class:`KeyframeSequenceDecoder`) is sequential: payloads must be given in stream order,
starting with an intra payload. Pictures are converted with OpenCV's BT.601 I420 conversions; odd
sizes are padded (edge) to even and cropped, downscaled pictures are upsampled (cubic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgvc_rt.codec.keyframe_image import SCALES, coded_size, from_coded
from tgvc_rt.codec.keyframe_segments import SegmentDecoder, SegmentEncoderOptions, encode_segment
from tgvc_rt.codec.keyframe_units import pack_av1, pack_hevc, unpack_av1, unpack_hevc
from tgvc_rt.errors import BitstreamError, OptionError

SEQUENCE_CODECS: tuple[str, ...] = ("av1-seq", "hevc-seq")
SEQUENCE_CODEC_IDS: dict[str, int] = {"av1-seq": 4, "hevc-seq": 5}
"""Header codec ids of the sequence codecs, next to keyframe_image.CODEC_IDS (1-3, intra codecs).
Kept here so that keyframe_image.py (whose functions accept any name in its CODEC_IDS) is unchanged."""
DEFAULT_SEQUENCE_CODEC = "av1-seq"  # chosen by benchmarks/keyframe_stream.py (results/keyframe_stream.json)

MAX_PAYLOAD_BYTES = 16 << 20  # the decoder refuses larger payloads
MAX_SIDE = 8192  # the decoder refuses larger pictures
_INTRA, _LEVEL_MASK, _HEADER_STORED, _VARIANT_SHIFT = 0x80, 0x0F, 0x10, 5


@dataclass(frozen=True)
class KeyframeStreamOptions:
    """Encoder settings of the keyframe sequence codecs (the decoder needs none of these): the
    sessions' speed and structure, and the rate search's (``search_scales``, ``rescale_above``,
    ``qp_min``: read by ``encoder/keyframe_rate.py``)."""

    av1_preset: int = 4  # SVT-AV1 preset 0 (slow) .. 13 (fast); 4: ~0.25 s a CIF keyframe for the whole search
    av1_hierarchical_levels: int = 3  # SVT-AV1 low-delay temporal layers (2..5)
    av1_keyframe_qindex_offset: int = -24  # intra keyframes' qindex relative to the (flat) inter ones
    hevc_preset: str = "fast"  # x265 preset
    threads: int = 1  # encoder threads per session (1: no thread-timing effects on the output)
    intra_period: int = 64  # at most this many keyframes per segment (one intra + inter ones); the
    #                         keyframes are split into ceil(K / intra_period) near-equal segments. The encoder
    #                         also starts a segment with every chunk (EncodeOptions.chunk_seconds, 10 s), which
    #                         bounds the time between intra keyframes (random access, recovery from a lost
    #                         keyframe). 64 rather than 16 where keyframes are dense, at 0.005 bpp: foreman (3-frame
    #                         gaps) JOD 6.78 -> 7.13, VMAF 35.1 -> 38.8, bikes 6.28 -> 6.32, the other four (at most
    #                         16 keyframes) unchanged; mean 6.35 -> 6.41 (results/interp_sweep_intra_period.json)
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


def check_codec(codec: str) -> None:
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


def encode_payloads(coded: list[np.ndarray], qp: int, level: int, codec: str,
                    opts: KeyframeStreamOptions) -> list[bytes]:
    """Payloads of every keyframe (pictures already at the coded size of ``level``, see
    ``keyframe_image.to_coded``) at one QP and scale level."""
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


def decode_keyframe_sequence(payloads: list[bytes], width: int, height: int, codec: str) -> list[np.ndarray]:
    decoder = KeyframeSequenceDecoder(width, height, codec)
    return [decoder.decode(p) for p in payloads]


class KeyframeSequenceDecoder:
    """Decodes the payloads of :func:`encode_keyframe_sequence` one after another (stream order).

    Deterministic; any malformed payload (or an inter payload without its segment) raises
    BitstreamError, after which only an intra payload can be decoded.
    """

    def __init__(self, width: int, height: int, codec: str):
        check_codec(codec)
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise BitstreamError(f"keyframe stream: size {width}x{height} out of range")
        self.width, self.height, self.codec = width, height, codec
        self._segment: SegmentDecoder | None = None
        self._level = 0

    def reset(self) -> None:
        """Drop the segment's decoder session and references: the next payload must be an intra one."""
        self._segment = None

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
