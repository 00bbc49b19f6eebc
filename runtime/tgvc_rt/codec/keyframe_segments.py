"""Low-delay encoder sessions (SVT-AV1, x265) and decoders for the keyframe sequence codecs.

One *segment* (an intra keyframe and the inter keyframes predicted from it) is one encoder session:
low-delay prediction, P frames only, no frame reordering, no scene-cut or periodic intra frames, so
input picture i gives exactly one output packet i (checked; encoder delay is handled by flushing).
Constant QP: a single quantiser knob per segment (the encoders add their usual intra offsets).

Pictures are converted with OpenCV's BT.601 ``COLOR_RGB2YUV_I420`` / ``COLOR_YUV2RGB_I420``.
Used by encoder and decoder: only numpy, cv2 and av here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from tgvc_rt.errors import BitstreamError, OptionError

os.environ.setdefault("SVT_LOG", "1")  # keep SVT-AV1's banner off stderr
import av  # noqa: E402  (after SVT_LOG)

av.logging.set_level(av.logging.PANIC)

MAX_QP = {"av1-seq": 255, "hevc-seq": 51}
"""Coarsest quantiser of each sequence codec; the knob runs 0..MAX_QP (AV1: base qindex, HEVC: QP)."""
DECODER_SIZE_SLACK = 64  # the decoder accepts coded pictures at most this much wider/taller than expected


@dataclass(frozen=True)
class SegmentEncoderOptions:
    """Speed/structure settings of one encoder session (the decoder needs none of these)."""

    av1_preset: int = 4  # SVT-AV1 preset 0 (slow) .. 13 (fast)
    av1_hierarchical_levels: int = 3  # SVT-AV1 temporal layers in low delay (2..5; 3 is its default)
    av1_keyframe_qindex_offset: int = -24  # intra keyframe qindex relative to the inter ones (flat otherwise)
    hevc_preset: str = "fast"  # x265 preset
    threads: int = 1  # encoder threads (SVT-AV1 lp, x265 pools/frame-threads); 1 is deterministic


def yuv_frame(rgb: np.ndarray, pts: int) -> av.VideoFrame:
    """An even-sized RGB picture as a yuv420p VideoFrame (OpenCV BT.601 conversion)."""
    h, w = rgb.shape[:2]
    flat = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).reshape(-1)
    n, c = w * h, (w // 2) * (h // 2)
    planes = (flat[:n].reshape(h, w), flat[n:n + c].reshape(h // 2, w // 2),
              flat[n + c:].reshape(h // 2, w // 2))
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, arr in zip(frame.planes, planes):
        buf = np.zeros((arr.shape[0], plane.line_size), np.uint8)
        buf[:, :arr.shape[1]] = arr
        plane.update(buf)
    frame.pts = pts
    return frame


def _encoder(codec: str, width: int, height: int, qp: int, opts: SegmentEncoderOptions):
    if codec == "av1-seq":  # knob = qindex: SVT's qp (qindex 4 * qp, 255 at 63) + a fixed offset
        base = min(63, -(-qp // 4))
        offset = qp - (255 if base == 63 else 4 * base)
        layers = ",".join([str(offset)] * (opts.av1_hierarchical_levels + 1))
        ctx = av.CodecContext.create("libsvtav1", "w")
        params = (f"rc=0:pred-struct=1:keyint=-1:scd=0:lp={opts.threads}:"
                  f"hierarchical-levels={opts.av1_hierarchical_levels}:use-fixed-qindex-offsets=1:"
                  f"qindex-offsets=[{layers}]:key-frame-qindex-offset={opts.av1_keyframe_qindex_offset + offset}")
        ctx.options = {"preset": str(opts.av1_preset), "qp": str(base), "svtav1-params": params}
    elif codec == "hevc-seq":
        ctx = av.CodecContext.create("libx265", "w")
        threads = f"pools={opts.threads}:frame-threads={opts.threads}" if opts.threads else ""
        ctx.options = {"preset": opts.hevc_preset,
                       "x265-params": f"qp={qp}:bframes=0:keyint=-1:scenecut=0:open-gop=0:rc-lookahead=0:"
                                      f"info=0:log-level=none:{threads}"}
    else:
        raise OptionError(f"unknown keyframe sequence codec {codec!r}")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, "yuv420p", Fraction(1, 30)
    return ctx


def encode_segment(pictures: list[np.ndarray], qp: int, codec: str,
                   opts: SegmentEncoderOptions = SegmentEncoderOptions()) -> list[bytes]:
    """Code even-sized RGB pictures (all one size) as one low-delay segment: one packet each."""
    h, w = pictures[0].shape[:2]
    ctx = _encoder(codec, w, h, qp, opts)
    packets = []
    for i, picture in enumerate(pictures):
        packets += ctx.encode(yuv_frame(picture, i))
    packets += ctx.encode(None)
    if [p.pts for p in packets] != list(range(len(pictures))):
        raise RuntimeError(f"{codec}: encoder did not return one packet per picture in order "
                           f"(pts {[p.pts for p in packets]})")
    return [bytes(p) for p in packets]


class SegmentDecoder:
    """A decoder session for one segment: feed access units in order, one picture out for each."""

    def __init__(self, codec: str, width: int, height: int):
        self.width, self.height = width, height
        self.ctx = av.CodecContext.create("libdav1d" if codec == "av1-seq" else "hevc", "r")
        self.ctx.thread_count = 1  # no frame threading: no output delay, deterministic
        # refuse much larger pictures before allocating (HEVC codes sizes rounded up to 8 + cropping)
        self.ctx.options = {"max_pixels": str((width + DECODER_SIZE_SLACK) * (height + DECODER_SIZE_SLACK))}

    def decode(self, access_unit: bytes) -> np.ndarray:
        """RGB uint8 [height, width, 3] of the next picture; BitstreamError if there is not one."""
        try:
            frames = self.ctx.decode(av.Packet(access_unit))
        except (av.FFmpegError, OSError, ValueError, RuntimeError) as err:
            raise BitstreamError(f"keyframe stream: payload does not decode ({type(err).__name__})") from None
        if len(frames) != 1:
            raise BitstreamError(f"keyframe stream: payload gave {len(frames)} pictures, expected 1")
        fr = frames[0]
        if fr.format.name != "yuv420p" or (fr.width, fr.height) != (self.width, self.height):
            raise BitstreamError(f"keyframe stream: decoded a {fr.width}x{fr.height} {fr.format.name} "
                                 f"picture, expected {self.width}x{self.height} yuv420p")
        return cv2.cvtColor(fr.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
