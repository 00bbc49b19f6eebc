"""Keyframes coded as still images with a real codec (AV1 intra by default).

At 0.005 bpp a CIF keyframe gets a few hundred bytes, below what AV1 reaches at its coarsest
quantiser at full resolution (~1.8 kB for a CIF frame at qp 63), so every codec here also codes a
*downscaled* picture and the decoder upsamples it back; the scale is part of the payload.

Payload layout (the container's keyframe section carries ``len(payload)`` and the codec id):

    byte 0: bits 0-3 scale level (index into SCALES), bit 4 "AV1 sequence header included",
            bits 5-6 AV1 header variant (when not included), bit 7 reserved (0)
    rest:   the codec's own stream. AV1: low-overhead OBUs without temporal delimiter and
            normally without sequence header (rebuilt from the size, see av1_obu.py).
            HEVC: Annex-B NAL units (VPS/SPS/PPS + one IDR). AVIF: the .avif file.

Pictures are converted with OpenCV's BT.601 ``COLOR_RGB2YUV_I420`` / ``COLOR_YUV2RGB_I420`` (the
project's convention); odd sizes are padded (edge replicate) to even and cropped after decoding.

Quality knob: ``quality`` is QP-like, larger = coarser, and packs the scale level:
``quality = qp + 64 * scale_level`` (see :func:`pack_quality`); plain ``0..63`` means full size.

:func:`encode_keyframe` codes a picture at a given quality, :func:`decode_keyframe` reads a payload
back; the encoder's search for the quality that fits a byte budget is ``encoder/keyframe_rate.py``.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from tgvc_rt.codec.av1_obu import (
    OBU_SEQUENCE_HEADER,
    build_sequence_header,
    split_obus,
    strip_headers,
)
from tgvc_rt.errors import BitstreamError, OptionError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told not to
import av  # noqa: E402  (after SVT_LOG)

from tgvc_rt.codec.keyframe_segments import yuv_frame  # noqa: E402

av.logging.set_level(av.logging.PANIC)

CODEC_IDS: dict[str, int] = {"av1": 1, "hevc": 2, "avif": 3}
DEFAULT_CODEC = "av1"  # chosen by benchmarks/keyframe_codec.py (see results/keyframe_codec.json)

SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.6875, 0.625, 0.5625, 0.5, 0.4375, 0.375,
                             0.3125, 0.25, 0.1875, 0.125)
"""Downscale factor per scale level (payload byte 0, bits 0-3)."""
_LEVEL_MASK, _HEADER_FLAG, _VARIANT_SHIFT, _RESERVED = 0x0F, 0x10, 5, 0x80

MAX_QP = 63
MAX_PAYLOAD_BYTES = 16 << 20  # decoder refuses larger keyframe payloads
MAX_SIDE = 8192  # decoder refuses larger pictures
MIN_CODED_SIDE = 16  # tiny pictures are padded up to this before coding


@dataclass(frozen=True)
class KeyframeCodecOptions:
    """Encoder settings (the decoder needs none of these): speed, and the rate search's
    (``search_scales``, ``qp_min``: read by ``encoder/keyframe_rate.py``)."""

    av1_preset: int = 6  # SVT-AV1 preset 0 (slow) .. 13 (fast); 6: ~20 ms per CIF picture, ~0.35 s per search
    hevc_preset: str = "fast"  # x265 preset
    avif_speed: int = 8  # Pillow/libavif speed 0..10
    search_scales: int = 2  # encode_keyframe_to_size tries this many fitting scale levels
    qp_min: int = 8  # encode_keyframe_to_size never goes finer than this


def pack_quality(qp: int, scale_level: int = 0) -> int:
    return int(qp) + 64 * int(scale_level)


def unpack_quality(quality: int) -> tuple[int, int]:
    qp, level = int(quality) % 64, int(quality) // 64
    if quality < 0 or level >= len(SCALES):
        raise OptionError(f"keyframe quality {quality} out of range 0..{64 * len(SCALES) - 1}")
    return qp, level


def coded_size(width: int, height: int, scale_level: int) -> tuple[int, int]:
    """Picture size actually coded for a ``width x height`` keyframe at ``scale_level`` (even)."""
    s = SCALES[scale_level]
    cw = max(MIN_CODED_SIDE, 2 * int(round(width * s / 2)))
    ch = max(MIN_CODED_SIDE, 2 * int(round(height * s / 2)))
    if s == 1.0:
        cw, ch = max(MIN_CODED_SIDE, width + width % 2), max(MIN_CODED_SIDE, height + height % 2)
    return cw, ch


def check_codec(codec: str) -> None:
    if codec not in CODEC_IDS:
        raise OptionError(f"unknown keyframe codec {codec!r} (choose from {', '.join(CODEC_IDS)})")


def to_coded(image: np.ndarray, scale_level: int) -> np.ndarray:
    """Resize (area) and pad (edge) the RGB image to its coded size."""
    h, w = image.shape[:2]
    cw, ch = coded_size(w, h, scale_level)
    if SCALES[scale_level] == 1.0:
        return np.pad(image, ((0, ch - h), (0, cw - w), (0, 0)), mode="edge")
    return cv2.resize(image, (cw, ch), interpolation=cv2.INTER_AREA)


def from_coded(rgb: np.ndarray, width: int, height: int, scale_level: int) -> np.ndarray:
    """Crop (full scale) or upscale (bicubic) a decoded coded-size picture back to width x height."""
    if SCALES[scale_level] == 1.0:
        return np.ascontiguousarray(rgb[:height, :width])
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)


def _encode_stream(rgb: np.ndarray, qp: int, codec: str, opts: KeyframeCodecOptions) -> bytes:
    h, w = rgb.shape[:2]
    if codec == "avif":
        buf = io.BytesIO()
        from PIL import Image

        pil_quality = int(round(100 * (MAX_QP - qp) / MAX_QP))
        Image.fromarray(rgb).save(buf, format="AVIF", quality=pil_quality, speed=opts.avif_speed)
        return buf.getvalue()
    name = "libsvtav1" if codec == "av1" else "libx265"
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = w, h, "yuv420p", Fraction(1, 30)
    if codec == "av1":
        ctx.options = {"preset": str(opts.av1_preset), "qp": str(qp), "svtav1-params": "rc=0"}
    else:
        ctx.options = {"preset": opts.hevc_preset,
                       "x265-params": f"qp={min(qp, 51)}:keyint=1:log-level=none:info=0"}
    packets = ctx.encode(yuv_frame(rgb, 0)) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


def encode_keyframe(image: np.ndarray, quality: int, codec: str = DEFAULT_CODEC,
                    options: KeyframeCodecOptions = KeyframeCodecOptions()) -> bytes:
    """Code one RGB uint8 [H, W, 3] picture. ``quality``: QP-like (see :func:`pack_quality`)."""
    check_codec(codec)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise OptionError(f"keyframe must be uint8 [H, W, 3], got {image.shape}")
    qp, level = unpack_quality(quality)
    coded = to_coded(image, level)
    stream = _encode_stream(coded, qp, codec, options)
    flags = level
    if codec == "av1":
        stream, variant = strip_headers(stream, coded.shape[1], coded.shape[0])
        flags |= _HEADER_FLAG if variant is None else variant << _VARIANT_SHIFT
    return bytes([flags]) + stream


def _decode_stream(stream: bytes, codec: str) -> np.ndarray:
    if codec == "avif":
        from PIL import Image

        with Image.open(io.BytesIO(stream), formats=["AVIF"]) as im:
            if im.width * im.height > MAX_SIDE * MAX_SIDE:
                raise BitstreamError("keyframe: AVIF picture too large")
            return np.asarray(im.convert("RGB"))
    ctx = av.CodecContext.create("libdav1d" if codec == "av1" else "hevc", "r")
    ctx.thread_count = 1
    frames = []
    packets = ctx.parse(stream) + ctx.parse(b"")
    if codec == "av1":  # one temporal unit = one packet; the parser may not split it
        packets = [av.Packet(stream)]
    for packet in packets:
        frames += ctx.decode(packet)
    frames += ctx.decode(None)
    if len(frames) != 1 or frames[0].format.name != "yuv420p":
        raise BitstreamError("keyframe: stream does not hold exactly one 8-bit 4:2:0 picture")
    fr = frames[0]
    if fr.width > MAX_SIDE or fr.height > MAX_SIDE or fr.width % 2 or fr.height % 2:
        raise BitstreamError(f"keyframe: unexpected coded size {fr.width}x{fr.height}")
    return cv2.cvtColor(fr.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)


def decode_keyframe(data: bytes, width: int, height: int, codec: str = DEFAULT_CODEC) -> np.ndarray:
    """Decode a payload of :func:`encode_keyframe` to RGB uint8 [height, width, 3].

    Deterministic; raises BitstreamError for any malformed or mismatching payload.
    """
    check_codec(codec)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise BitstreamError(f"keyframe: size {width}x{height} out of range")
    if not 2 <= len(data) <= MAX_PAYLOAD_BYTES:
        raise BitstreamError(f"keyframe: payload of {len(data)} bytes out of range")
    flags, stream = data[0], bytes(data[1:])
    level = flags & _LEVEL_MASK
    variant = (flags >> _VARIANT_SHIFT) & 0x03
    if (flags & _RESERVED or level >= len(SCALES) or (codec != "av1" and flags & ~_LEVEL_MASK)
            or (flags & _HEADER_FLAG and variant)):
        raise BitstreamError(f"keyframe: bad payload flags 0x{flags:02x}")
    cw, ch = coded_size(width, height, level)
    if codec == "av1":
        types = [t for t, _ in split_obus(stream)]
        if bool(flags & _HEADER_FLAG) != (OBU_SEQUENCE_HEADER in types):
            raise BitstreamError("keyframe: AV1 sequence header flag does not match the stream")
        if not flags & _HEADER_FLAG:
            stream = build_sequence_header(cw, ch, variant) + stream
    try:
        rgb = _decode_stream(stream, codec)
    except BitstreamError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError, SyntaxError) as err:
        raise BitstreamError(f"keyframe: {codec} payload does not decode ({type(err).__name__})") from None
    if rgb.shape[:2] != (ch, cw):
        raise BitstreamError(f"keyframe: decoded {rgb.shape[1]}x{rgb.shape[0]}, expected {cw}x{ch}")
    return from_coded(rgb, width, height, level)
