"""Keyframe sequence codec (low-delay AV1 / HEVC): round trips, rate search, payload layout, hostile input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tgvc_rt.codec.av1_obu import build_sequence_header, split_obus
from tgvc_rt.codec.keyframe_image import CODEC_IDS
from tgvc_rt.codec.keyframe_sequence import (
    SEQUENCE_CODEC_IDS,
    SEQUENCE_CODECS,
    KeyframeSequenceDecoder,
    KeyframeStreamOptions,
    decode_keyframe_sequence,
    is_intra_payload,
    segment_starts,
)
from tgvc_rt.codec.keyframe_units import _drop_last_size, _restore_last_size, split_annexb
from tgvc_rt.encoder.keyframe_rate import encode_keyframe_sequence, psnr_y
from tgvc_rt.errors import BitstreamError, OptionError


def _keyframes(n: int = 4, h: int = 72, w: int = 88, seed: int = 0) -> list[np.ndarray]:
    """A textured background panning by (2, 3) px per keyframe with a moving disc."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
    base = cv2.resize(small, (w + 3 * n, h + 3 * n), interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(n):
        im = base[3 * i:3 * i + h, 2 * i:2 * i + w].copy()
        cv2.circle(im, (10 + 5 * i, h // 2), max(2, min(h, w) // 6), (250, 40, 30), -1)
        out.append(im)
    return out


@pytest.fixture(scope="module", params=SEQUENCE_CODECS)
def coded(request):
    images = _keyframes(5)
    payloads, info = encode_keyframe_sequence(images, 2500, request.param, KeyframeStreamOptions(intra_period=3))
    return request.param, images, payloads, info


def test_codec_ids_and_names():
    assert set(SEQUENCE_CODECS) == set(SEQUENCE_CODEC_IDS)
    ids = {**CODEC_IDS, **SEQUENCE_CODEC_IDS}
    assert len(set(ids.values())) == len(ids)  # no clash with the intra codecs' header ids


def test_round_trip_matches_encoder_reconstruction(coded):
    codec, images, payloads, info = coded
    assert len(payloads) == len(images) and info["fits"]
    assert sum(map(len, payloads)) == info["bytes"] <= 2500
    decoded = decode_keyframe_sequence(payloads, 88, 72, codec)
    assert all(d.shape == (72, 88, 3) and d.dtype == np.uint8 for d in decoded)
    assert [psnr_y(a, b) for a, b in zip(images, decoded)] == info["psnr_y"]
    assert info["mean_psnr_y"] > 28


def test_intra_period_segments_and_payload_markers(coded):
    codec, _, payloads, info = coded
    assert info["intra"] == [True, False, True, False, False]  # 5 keyframes, period 3 -> segments 0..1, 2..4
    assert [is_intra_payload(p) for p in payloads] == info["intra"]
    if codec == "av1-seq":
        first = split_obus(_restore_last_size(payloads[1]))
        assert [t for t, _ in first] == [6]  # inter: one frame OBU, no temporal delimiter
        assert payloads[0][0] & 0x10 == 0  # sequence header rebuilt, not stored
    else:
        types = [(n[0] >> 1) & 63 for n in split_annexb(b"\x00\x00\x01" + payloads[0][1:])]
        assert types[:3] == [32, 33, 34] and 16 <= types[-1] <= 21


def test_decoding_from_a_later_intra_payload(coded):
    codec, images, payloads, info = coded
    full = decode_keyframe_sequence(payloads, 88, 72, codec)
    tail = decode_keyframe_sequence(payloads[2:], 88, 72, codec)  # random access at the 2nd segment
    assert all(np.array_equal(a, b) for a, b in zip(full[2:], tail))


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
def test_determinism(codec):
    images = _keyframes(3)
    a, info_a = encode_keyframe_sequence(images, 1500, codec)
    b, info_b = encode_keyframe_sequence(images, 1500, codec)
    assert a == b and info_a["psnr_y"] == info_b["psnr_y"]
    d1, d2 = (decode_keyframe_sequence(a, 88, 72, codec) for _ in range(2))
    assert all(np.array_equal(x, y) for x, y in zip(d1, d2))


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
def test_tight_budget_uses_a_smaller_scale(codec):
    images = _keyframes(4, 144, 176)
    payloads, info = encode_keyframe_sequence(images, 400, codec, KeyframeStreamOptions(search_scales=1))
    assert info["fits"] and info["bytes"] <= 400 and info["scale_level"] > 0
    out = decode_keyframe_sequence(payloads, 176, 144, codec)
    assert [psnr_y(a, b) for a, b in zip(images, out)] == info["psnr_y"]


def test_impossible_budget_returns_the_smallest_stream():
    payloads, info = encode_keyframe_sequence(_keyframes(2), 10, "av1-seq")
    assert not info["fits"] and info["bytes"] > 10 and len(payloads) == 2
    assert len(decode_keyframe_sequence(payloads, 88, 72, "av1-seq")) == 2


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
@pytest.mark.parametrize("size", [(17, 23), (35, 64), (1, 1)])
def test_odd_and_tiny_sizes(codec, size):
    h, w = size
    images = [im[:h, :w] for im in _keyframes(2, max(h, 16), max(w, 16))]
    payloads, info = encode_keyframe_sequence(images, 4000, codec)
    out = decode_keyframe_sequence(payloads, w, h, codec)
    assert [o.shape for o in out] == [(h, w, 3)] * 2
    assert [psnr_y(a, b) for a, b in zip(images, out)] == info["psnr_y"]


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
@pytest.mark.parametrize("count", [1, 2])
def test_one_and_two_keyframes(codec, count):
    images = _keyframes(count)
    payloads, info = encode_keyframe_sequence(images, 1200, codec)
    assert len(payloads) == count and info["intra"] == [True] + [False] * (count - 1)
    assert info["bytes"] <= 1200
    assert len(decode_keyframe_sequence(payloads, 88, 72, codec)) == count


def test_segment_starts():
    assert segment_starts(13, 12) == [0, 6]
    assert segment_starts(13, 16) == [0]
    assert segment_starts(1, 16) == [0]
    assert segment_starts(25, 12) == [0, 8, 16]
    with pytest.raises(OptionError):
        segment_starts(4, 0)


def test_last_obu_size_round_trip():
    obus = [bytes([0x12, 0]), bytes([0x32, 3, 1, 2, 3])]  # temporal delimiter, frame OBU
    packed = _drop_last_size(obus)
    assert packed == bytes([0x12, 0, 0x30, 1, 2, 3])
    assert _restore_last_size(packed) == b"".join(obus)


def test_bad_options():
    with pytest.raises(OptionError):
        encode_keyframe_sequence(_keyframes(1), 1000, "vp9-seq")
    with pytest.raises(OptionError):
        encode_keyframe_sequence([], 1000)
    with pytest.raises(OptionError):
        encode_keyframe_sequence([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 1000)


def _hostile(codec: str, payloads: list[bytes]) -> list[bytes]:
    rng = np.random.default_rng(5)
    intra = payloads[0]
    big_header = build_sequence_header(4096, 4096, 0)
    return [b"", b"\x80", bytes(rng.integers(0, 256, 300, dtype=np.uint8)),
            b"\x80" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)),
            bytes([0x8F]) + intra[1:],  # scale level 15 does not exist
            bytes([0x90]) + big_header + intra[1:],  # "header stored": a 4096x4096 picture
            payloads[1],  # inter payload without its intra payload
            b"\xff" * 64, b"\x00" * 64]


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
def test_garbage_raises_bitstream_error(codec, coded):
    _, _, payloads, _ = coded if coded[0] == codec else (None, None, None, None)
    if payloads is None:
        payloads, _ = encode_keyframe_sequence(_keyframes(2), 2000, codec)
    for bad in _hostile(codec, payloads):
        with pytest.raises(BitstreamError):
            KeyframeSequenceDecoder(88, 72, codec).decode(bad)
    with pytest.raises(BitstreamError):
        KeyframeSequenceDecoder(0, 72, codec)


def test_truncated_av1_payloads_raise():
    payloads, _ = encode_keyframe_sequence(_keyframes(2), 2000, "av1-seq")
    for k in (0, 1):
        for cut in range(1, len(payloads[k]), 7):
            decoder = KeyframeSequenceDecoder(88, 72, "av1-seq")
            if k:
                decoder.decode(payloads[0])
            with pytest.raises(BitstreamError):
                decoder.decode(payloads[k][:cut])


@pytest.mark.parametrize("codec", SEQUENCE_CODECS)
def test_decoder_recovers_at_the_next_intra_payload(codec):
    images = _keyframes(4)
    payloads, _ = encode_keyframe_sequence(images, 3000, codec, KeyframeStreamOptions(intra_period=2))
    reference = decode_keyframe_sequence(payloads, 88, 72, codec)
    decoder = KeyframeSequenceDecoder(88, 72, codec)
    decoder.decode(payloads[0])
    with pytest.raises(BitstreamError):
        decoder.decode(b"\x00" * 40)
    with pytest.raises(BitstreamError):  # references are gone: inter payloads are refused
        decoder.decode(payloads[1])
    assert np.array_equal(decoder.decode(payloads[2]), reference[2])
    assert np.array_equal(decoder.decode(payloads[3]), reference[3])


def test_hevc_truncation_never_crashes():
    """FFmpeg's HEVC decoder conceals a slice cut short, so truncation is only sometimes an error
    (the .tgv container's CRC-32 rejects it first); it must never crash or give a wrong size."""
    payloads, _ = encode_keyframe_sequence(_keyframes(2), 2000, "hevc-seq")
    for cut in range(1, len(payloads[0]), 11):
        try:
            out = KeyframeSequenceDecoder(88, 72, "hevc-seq").decode(payloads[0][:cut])
            assert out.shape == (72, 88, 3)
        except BitstreamError:
            pass


@pytest.mark.parametrize("curve", ["smooth", "ragged", "flat"])
def test_rate_search_finds_the_finest_fitting_qp(monkeypatch, curve):
    """The search over a fake (monotone) rate curve returns the exact answer of an exhaustive scan."""
    import tgvc_rt.codec.keyframe_sequence as ks
    import tgvc_rt.encoder.keyframe_rate as kr

    rng = np.random.default_rng(3)
    steps = {"smooth": np.full(256, 0.03), "ragged": rng.uniform(0.0, 0.12, 256), "flat": np.full(256, 0.001)}[curve]
    sizes = (200 * np.exp(np.cumsum(steps[::-1])[::-1])).astype(int)  # falls as the qindex rises
    calls = []

    def fake_encode(coded, qp, level, codec, opts):
        calls.append(qp)
        return [b"x" * int(sizes[qp])]

    monkeypatch.setattr(ks, "encode_payloads", fake_encode)
    opts = KeyframeStreamOptions()
    for budget in (int(sizes[255]) + 1, int(sizes[200]), int(sizes[120]) - 1, int(sizes[opts.qp_min]) + 5):
        calls.clear()
        payloads, qp, encodes = kr._fit_sequence_qp([], 0, budget, "av1-seq", opts)
        expected = min(q for q in range(opts.qp_min, 256) if sizes[q] <= budget)
        assert qp == expected and len(payloads[0]) == sizes[qp] and encodes == len(calls) <= 26
    assert kr._fit_sequence_qp([], 0, int(sizes[255]) - 1, "av1-seq", opts) is None
