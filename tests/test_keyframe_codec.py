"""Keyframe image codec: round trips, size search, header stripping, hostile input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tgvc_rt.codec.av1_obu import build_sequence_header, split_obus
from tgvc_rt.codec.keyframe_image import (
    CODEC_IDS,
    KeyframeCodecOptions,
    SCALES,
    coded_size,
    decode_keyframe,
    encode_keyframe,
    pack_quality,
    unpack_quality,
)
from tgvc_rt.encoder.keyframe_rate import encode_keyframe_to_size, psnr_y
from tgvc_rt.errors import BitstreamError, OptionError


def _picture(h: int = 144, w: int = 176, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (250, 40, 30), -1)
    return img


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_round_trip_quality_and_determinism(codec):
    img = _picture()
    data = encode_keyframe(img, 20, codec)
    out = decode_keyframe(data, 176, 144, codec)
    assert out.shape == (144, 176, 3) and out.dtype == np.uint8
    assert psnr_y(img, out) > 30
    assert np.array_equal(out, decode_keyframe(data, 176, 144, codec))


def test_av1_header_is_stripped_and_rebuilt():
    img = _picture()
    data = encode_keyframe(img, 40, "av1")
    assert data[0] & 0x10 == 0  # sequence header not stored
    types = [t for t, _ in split_obus(data[1:])]
    assert types == [6]  # a single frame OBU: no temporal delimiter, no sequence header
    assert build_sequence_header(352, 288, 1).hex() == "0a0b00000004457e3e257c8020"  # SVT preset 10
    for preset in (4, 6, 8, 10, 12):  # every preset gets its header rebuilt
        assert encode_keyframe(img, 40, "av1", KeyframeCodecOptions(av1_preset=preset))[0] & 0x10 == 0


@pytest.mark.parametrize("size", [(17, 23), (35, 64), (1, 1), (143, 175)])
def test_odd_and_tiny_sizes(size):
    h, w = size
    img = _picture(max(h, 8), max(w, 8))[:h, :w]
    for quality in (pack_quality(30, 0), pack_quality(30, 6)):
        out = decode_keyframe(encode_keyframe(img, quality), w, h)
        assert out.shape == (h, w, 3)


def test_quality_packing():
    assert unpack_quality(pack_quality(37, 5)) == (37, 5)
    assert coded_size(352, 288, SCALES.index(0.5)) == (176, 144)
    with pytest.raises(OptionError):
        unpack_quality(64 * len(SCALES))
    with pytest.raises(OptionError):
        encode_keyframe(_picture(), 10, "jpeg")


@pytest.mark.parametrize("budget", [150, 400, 1500])
def test_encode_to_size_fits_and_improves(budget):
    img = _picture()
    data, quality = encode_keyframe_to_size(img, budget)
    assert len(data) <= budget
    assert np.array_equal(data, encode_keyframe(img, quality))
    assert data == encode_keyframe(img, quality)


def test_bigger_budget_is_better():
    img = _picture()
    small, _ = encode_keyframe_to_size(img, 200)
    big, _ = encode_keyframe_to_size(img, 2000)
    assert psnr_y(img, decode_keyframe(big, 176, 144)) > psnr_y(img, decode_keyframe(small, 176, 144))


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_garbage_raises_bitstream_error(codec):
    rng = np.random.default_rng(1)
    good = encode_keyframe(_picture(), 30, codec)
    bad_inputs = [b"", b"\x00", bytes([0xE0]) + good[1:], good[: len(good) // 2],
                  good[:1] + bytes(rng.integers(0, 256, 300, dtype=np.uint8))]
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF
    bad_inputs.append(bytes(flipped))
    for bad in bad_inputs:
        try:
            out = decode_keyframe(bad, 176, 144, codec)
        except BitstreamError:
            continue
        assert out.shape == (144, 176, 3)  # a corrupt payload may still decode to a picture
    with pytest.raises(BitstreamError):
        decode_keyframe(good, 0, 144, codec)
    with pytest.raises(BitstreamError):
        decode_keyframe(good, 352, 288, codec)  # wrong size: coded picture does not match


def test_random_garbage_never_crashes():
    rng = np.random.default_rng(2)
    for n in range(40):
        data = bytes(rng.integers(0, 256, int(rng.integers(2, 200)), dtype=np.uint8))
        try:
            decode_keyframe(data, 64, 48, "av1")
        except BitstreamError:
            pass
