import dataclasses

import pytest

from tgvc_rt.bitstream import (Bitstream, GroupPayload, SectionType, StreamHeader, iter_sections, pack_uleb,
                               read_bitstream, read_uleb, write_bitstream)
from tgvc_rt.bitstream.sections import pack_preamble, pack_section
from tgvc_rt.errors import BitstreamError


def make_stream(num_frames=33, keyframes=(0, 16, 32)) -> Bitstream:
    header = StreamHeader(width=352, height=288, fps_num=30, fps_den=1, num_frames=num_frames,
                          keyframe_codec=1, flags=0, model_set_hash=bytes(range(16)), noise_seed=1234,
                          num_keyframes=len(keyframes), num_groups=max(1, len(keyframes) - 1))
    bs = Bitstream(header, keyframes={k: bytes([k % 251]) * (10 + k) for k in keyframes})
    bs.groups = [GroupPayload(a, b, b"tracks%d" % a) for a, b in zip(keyframes[:-1], keyframes[1:])]
    return bs


def test_round_trip():
    bs = make_stream()
    data = write_bitstream(bs)
    back = read_bitstream(data)
    assert back.header == bs.header
    assert back.keyframes == bs.keyframes
    assert [(g.start, g.end, g.tracks) for g in back.groups] == [(g.start, g.end, g.tracks) for g in bs.groups]
    assert sum(back.section_sizes.values()) == len(data)


def test_single_frame_clip():
    bs = make_stream(num_frames=1, keyframes=(0,))
    bs.groups = [GroupPayload(0, 0, b"")]
    assert read_bitstream(write_bitstream(bs)).groups[0].end == 0


@pytest.mark.parametrize("bit", [0, 7, 40, 100, 200, 333])
def test_crc_catches_flipped_bit(bit):
    data = bytearray(write_bitstream(make_stream()))
    pos = 6 + bit  # beyond the preamble
    data[pos // 8 * 8 % len(data)] ^= 1 << (bit % 8)
    with pytest.raises(BitstreamError):
        read_bitstream(bytes(data))


def test_every_truncation_is_an_error():
    data = write_bitstream(make_stream())
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            read_bitstream(data[:cut])


@pytest.mark.parametrize("garbage", [b"", b"TGVC", b"hello world" * 10, bytes(1000), b"TGVC\x09\x00" + bytes(50)])
def test_garbage(garbage):
    with pytest.raises(BitstreamError):
        read_bitstream(garbage)


def test_huge_length_claim_does_not_allocate():
    data = pack_preamble() + bytes([1]) + pack_uleb(0xFFFFFFF0) + bytes(20)
    with pytest.raises(BitstreamError, match="claims|truncated"):
        read_bitstream(data)
    overlong = pack_preamble() + bytes([1]) + b"\xff" * 6 + bytes(20)
    with pytest.raises(BitstreamError, match="varint"):
        read_bitstream(overlong)


def test_structure_mismatch_with_valid_crc():
    bs = make_stream()
    sections = list(iter_sections(write_bitstream(bs)))
    # a header promising more groups than the stream holds, with a valid CRC: the structure check refuses it
    lying = dataclasses.replace(bs.header, num_groups=5)
    data = pack_preamble() + pack_section(SectionType.HEADER, lying.pack()) + b"".join(
        pack_section(s.kind, s.payload) for s in sections[1:])
    with pytest.raises(BitstreamError, match="groups"):
        read_bitstream(data)


def test_varint_round_trip():
    for v in (0, 1, 127, 128, 300, 16383, 16384, 2**32 - 1):
        assert read_uleb(pack_uleb(v), 0) == (v, len(pack_uleb(v)))
    with pytest.raises(BitstreamError):
        pack_uleb(2**32)


def test_trailing_bytes_refused():
    with pytest.raises(BitstreamError, match="trailing"):
        read_bitstream(write_bitstream(make_stream()) + b"x")
