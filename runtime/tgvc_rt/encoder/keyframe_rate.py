"""Keyframes to a byte budget: the encoder's rate searches over the keyframe formats of ``codec/``.

* :func:`encode_keyframes` codes a clip's keyframes in the header's keyframe codec: a sequence codec
  gets the whole budget at once, an image codec one keyframe after another, each given the bytes left
  divided by the keyframes left (``ratecontrol.keyframe_share``).
* :func:`encode_keyframe_to_size` (image codecs): for the largest scale levels that fit, a binary
  search finds the finest qp within budget; the candidate with the best decoded PSNR-Y wins.
* :func:`encode_keyframe_sequence` (sequence codecs): one constant QP (AV1: qindex 0..255 with flat
  per-layer offsets; HEVC: QP 0..51) and one scale level for the whole sequence; a bracketing secant
  search finds the finest QP whose payloads fit the byte budget (3-7 encodes of the whole sequence)
  at the largest scale level that fits at all, and at the next smaller one when that QP is coarse
  (as the image codecs' scale ladder); the candidate with the best mean PSNR-Y wins.

The searches' settings (``search_scales``, ``rescale_above``, ``qp_min``) sit in the codecs' encoder
options (``KeyframeCodecOptions``, ``KeyframeStreamOptions``) beside the encoder speed settings.
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from ..codec import keyframe_formats, keyframe_image, keyframe_sequence
from ..codec.keyframe_image import SCALES, KeyframeCodecOptions, coded_size, pack_quality, to_coded
from ..codec.keyframe_segments import MAX_QP as SEQUENCE_MAX_QP
from ..codec.keyframe_sequence import KeyframeStreamOptions
from ..errors import OptionError
from . import ratecontrol

def encode_keyframes(frames: np.ndarray, indices: list[int], budget_bytes: int, codec: str,
                     stream: KeyframeStreamOptions = KeyframeStreamOptions()) -> dict[int, bytes]:
    """Code the keyframes ``frames[indices]`` in at most ``budget_bytes`` (when feasible); ``stream``: the
    sequence codecs' settings."""
    keyframe_formats.check_codec(codec)
    if keyframe_formats.is_sequence(codec):
        payloads, _info = encode_keyframe_sequence([frames[k] for k in indices], max(1, budget_bytes), codec, stream)
        return dict(zip(indices, payloads))
    coded, remaining = {}, budget_bytes
    for i, k in enumerate(indices):
        share = ratecontrol.keyframe_share(remaining, len(indices) - i)
        coded[k], _quality = encode_keyframe_to_size(frames[k], share, codec)
        remaining -= len(coded[k])
    return coded


def psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of the BT.601 luma of two RGB uint8 pictures (same size), in dB (99 if identical)."""
    ya = cv2.cvtColor(a, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float32)
    yb = cv2.cvtColor(b, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float32)
    mse = float(np.mean((ya - yb) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def _fit_image_qp(image: np.ndarray, level: int, max_bytes: int, codec: str,
                  opts: KeyframeCodecOptions) -> tuple[bytes, int] | None:
    """Smallest qp (best quality) at ``level`` whose payload fits, or None if even the coarsest does not."""
    hi_qp = 51 if codec == "hevc" else keyframe_image.MAX_QP
    best = keyframe_image.encode_keyframe(image, pack_quality(hi_qp, level), codec, opts)
    if len(best) > max_bytes:
        return None
    lo, hi, best_qp = opts.qp_min, hi_qp, hi_qp  # invariant: hi fits
    while lo < hi:
        mid = (lo + hi) // 2
        payload = keyframe_image.encode_keyframe(image, pack_quality(mid, level), codec, opts)
        if len(payload) <= max_bytes:
            hi, best, best_qp = mid, payload, mid
        else:
            lo = mid + 1
    return best, best_qp


def encode_keyframe_to_size(image: np.ndarray, max_bytes: int, codec: str = keyframe_image.DEFAULT_CODEC,
                            options: KeyframeCodecOptions = KeyframeCodecOptions()) -> tuple[bytes, int]:
    """Best-quality payload within ``max_bytes``: returns ``(payload, quality)``.

    For the largest scale levels that fit (``options.search_scales`` of them) a binary search
    finds the finest qp within budget; among those candidates the one with the best decoded
    PSNR-Y wins. If nothing fits, the smallest payload (coarsest qp, smallest scale) is returned.
    """
    keyframe_image.check_codec(codec)
    h, w = image.shape[:2]
    candidates: list[tuple[bytes, int]] = []
    for level in range(len(SCALES)):
        if level and coded_size(w, h, level) == coded_size(w, h, level - 1):
            continue
        fit = _fit_image_qp(image, level, max_bytes, codec, options)
        if fit is not None:
            candidates.append((fit[0], pack_quality(fit[1], level)))
            if len(candidates) >= options.search_scales:
                break
        elif candidates:
            break
    if not candidates:
        q = pack_quality(51 if codec == "hevc" else keyframe_image.MAX_QP, len(SCALES) - 1)
        return keyframe_image.encode_keyframe(image, q, codec, options), q
    if len(candidates) == 1:
        return candidates[0]
    scores = [psnr_y(image, keyframe_image.decode_keyframe(p, w, h, codec)) for p, _ in candidates]
    return candidates[int(np.argmax(scores))]


QP_PER_DOUBLING = {"av1-seq": 24.0, "hevc-seq": 6.0}
"""Rate search's first guess of the rate curve: the bytes double this many QP finer (measured on CIF)."""


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


def _fit_sequence_qp(coded: list[np.ndarray], level: int, budget: int, codec: str, opts: KeyframeStreamOptions,
                     start: int | None = None) -> tuple[list[bytes], int, int] | None:
    """(payloads, qp, encodes) of the finest QP that fits ``budget``, or None if the coarsest does not.

    Bracketing search (bytes fall as the QP rises), first encode at ``start`` when given (a QP that
    probably fits) else at the coarsest QP: secant steps on log(bytes), and a bisection step after
    two steps in a row that did not halve the bracket, so it ends in a few encodes on a smooth rate
    curve and within ~3 log2(range) on any.
    """
    hi = SEQUENCE_MAX_QP[codec] if start is None else start
    best = keyframe_sequence.encode_payloads(coded, hi, level, codec, opts)
    hi_bytes, encodes = sum(map(len, best)), 1
    if hi_bytes > budget and hi != SEQUENCE_MAX_QP[codec]:
        return _fit_sequence_qp(coded, level, budget, codec, opts)
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
        payloads = keyframe_sequence.encode_payloads(coded, mid, level, codec, opts)
        size, encodes = sum(map(len, payloads)), encodes + 1
        if size <= budget:
            hi, hi_bytes, best = mid, size, payloads
        else:
            lo, lo_bytes = mid, size
        recent = [recent[-1], (mid, size)]
        slow_steps = slow_steps + 1 if 2 * (hi - lo) > width else 0
    return best, hi, encodes


def encode_keyframe_sequence(images: list[np.ndarray], budget_bytes: int,
                             codec: str = keyframe_sequence.DEFAULT_SEQUENCE_CODEC,
                             options: KeyframeStreamOptions = KeyframeStreamOptions()) -> tuple[list[bytes], dict]:
    """Code RGB uint8 [H, W, 3] keyframes (display order) as one low-delay stream within a byte budget.

    Returns one payload per keyframe (keyframe i's access unit; their total is the largest that
    fits ``budget_bytes``, or the smallest possible when nothing fits) and ``info``: ``qp`` (the
    quantiser knob: AV1 qindex, HEVC QP), ``scale_level`` (keyframe_image.SCALES), ``bytes``, ``fits``,
    ``psnr_y`` (per keyframe, of the decoded reconstruction against the input), ``mean_psnr_y``,
    ``intra`` (per keyframe), ``encodes`` (whole-sequence encodes of the search) and ``seconds``.
    """
    t0 = time.perf_counter()
    keyframe_sequence.check_codec(codec)
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
        start = candidates[-1][1] if candidates else None
        fit = _fit_sequence_qp(coded, level, budget_bytes, codec, options, start)
        encodes += 1 if fit is None else fit[2]
        if fit is not None:
            candidates.append((fit[0], fit[1], level))
            if len(candidates) >= options.search_scales or fit[1] < options.rescale_above * SEQUENCE_MAX_QP[codec]:
                break
        elif candidates:
            break
    fits = bool(candidates)
    if not fits:  # nothing fits: the smallest stream there is
        level = len(SCALES) - 1
        coded = [to_coded(im, level) for im in images]
        qp = SEQUENCE_MAX_QP[codec]
        candidates = [(keyframe_sequence.encode_payloads(coded, qp, level, codec, options), qp, level)]
        encodes += 1
    scored = []
    for payloads, qp, level in candidates:
        decoded = keyframe_sequence.decode_keyframe_sequence(payloads, w, h, codec)
        scored.append([psnr_y(a, b) for a, b in zip(images, decoded)])
    pick = int(np.argmax([np.mean(s) for s in scored]))
    payloads, qp, level = candidates[pick]
    info = dict(codec=codec, qp=qp, scale_level=level, scale=SCALES[level],
                bytes=sum(map(len, payloads)), budget_bytes=int(budget_bytes), fits=fits,
                psnr_y=scored[pick], mean_psnr_y=float(np.mean(scored[pick])),
                intra=[keyframe_sequence.is_intra_payload(p) for p in payloads], encodes=encodes,
                candidates=[dict(qp=q, scale_level=lv, bytes=sum(map(len, p)), mean_psnr_y=float(np.mean(s)))
                            for (p, q, lv), s in zip(candidates, scored)],
                seconds=time.perf_counter() - t0)
    return payloads, info
