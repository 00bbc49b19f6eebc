import zlib

import pytest

from tgvc_rt.bitstream import Bitstream, GroupPayload, StreamHeader, read_bitstream, write_bitstream
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
    data = bytearray(write_bitstream(make_stream()))
    data[8:12] = (0xFFFFFFF0).to_bytes(4, "little")  # header section length
    with pytest.raises(BitstreamError, match="claims|truncated"):
        read_bitstream(bytes(data))


def test_structure_mismatch_with_valid_crc():
    bs = make_stream()
    data = bytearray(write_bitstream(bs))
    # rewrite the header's group count and fix its CRC: the structure check must still refuse it
    head_end = 6 + 6 + 50
    data[6 + 6 + 46:head_end] = (5).to_bytes(4, "little")
    data[head_end:head_end + 4] = zlib.crc32(bytes(data[6:head_end])).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="groups"):
        read_bitstream(bytes(data))


def test_trailing_bytes_refused():
    with pytest.raises(BitstreamError, match="trailing"):
        read_bitstream(write_bitstream(make_stream()) + b"x")
