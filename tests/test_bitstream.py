import dataclasses
import re

import pytest

from tgvc_rt.bitstream import (Bitstream, GroupPayload, SectionType, StreamCaps, StreamHeader, iter_sections,
                               pack_uleb, read_bitstream, read_uleb, write_bitstream)
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


def crafted(width=352, height=288, groups=((0, 32),), tracks=b"\x00", extra_sections=0) -> bytes:
    """A stream with valid CRCs written by the project's writer without its cap check (keyframe payloads
    of one byte: nothing here is decodable, only parseable)."""
    keys = sorted({k for g in groups for k in g})
    header = StreamHeader(width=width, height=height, fps_num=30, fps_den=1, num_frames=groups[-1][1] + 1,
                          keyframe_codec=1, flags=0, model_set_hash=bytes(16), noise_seed=0,
                          num_keyframes=len(keys), num_groups=len(groups))
    bs = Bitstream(header, keyframes={k: b"k" for k in keys}, groups=[GroupPayload(a, b, tracks) for a, b in groups])
    data = write_bitstream(bs, caps=None)
    if extra_sections:  # sections of an unknown type (a later minor version), skipped by readers
        end = pack_section(SectionType.END, b"")
        data = data[:-len(end)] + pack_section(0x40, b"") * extra_sections + end
    return data


CAP_CASES = {
    "frames_per_group": dict(width=1280, height=720, groups=((0, 4095),)),   # the 10.5 GiB group
    "pixels_per_frame": dict(width=16384, height=8192),
    "pixels_per_group": dict(width=1920, height=1080, groups=((0, 200),)),
    "tracks_per_group": dict(tracks=pack_uleb(70000) + b"rest"),
    "track_points_per_group": dict(groups=((0, 1000),), tracks=pack_uleb(5000) + b"rest"),  # 5 M points
}


def uncapped(data: bytes) -> Bitstream:
    """A crafted stream read back without caps (what an encoder would hand the writer)."""
    big = 1 << 40
    return read_bitstream(data, StreamCaps(big, big, big, big, big, big))


def parse_peak(parse) -> tuple[Exception, int]:
    """The BitstreamError ``parse()`` raises and the peak of Python allocations (bytes) while it ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError) as err:
            parse()
        return err.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cap", sorted(CAP_CASES))
def test_caps_refuse_crafted_streams_before_allocating(cap):
    """A stream over a cap, with valid CRCs, fails while it is parsed with a one-line error naming the cap,
    having allocated nothing large: by itself and when handed to the decoder. The writer refuses it too."""
    from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames

    data = crafted(**CAP_CASES[cap])
    for parse in (lambda: read_bitstream(data), lambda: next(iter_decoded_frames(data, DecodeOptions(mode="warp")))):
        err, peak = parse_peak(parse)
        assert re.fullmatch(f"\\.tgv stream exceeds a cap: .*, over {cap} = \\d+", str(err)), err
        assert peak < (1 << 20)
    with pytest.raises(BitstreamError, match=cap):
        write_bitstream(uncapped(data))


def test_section_cap():
    """Too many sections: promised by the header (checked before any section is kept), or present as
    unknown sections a reader would skip."""
    header = StreamHeader(width=16, height=16, fps_num=30, fps_den=1, num_frames=3_000_000, keyframe_codec=1,
                          flags=0, model_set_hash=bytes(16), noise_seed=0, num_keyframes=1_500_001,
                          num_groups=1_500_000)
    lying = pack_preamble() + pack_section(SectionType.HEADER, header.pack()) + pack_section(SectionType.END, b"")
    with pytest.raises(BitstreamError, match="promises 3000003 sections, over sections = 2097152"):
        read_bitstream(lying)
    data = crafted(extra_sections=10)
    assert len(read_bitstream(data).groups) == 1
    with pytest.raises(BitstreamError, match="more than 8 sections, over sections = 8"):
        read_bitstream(data, StreamCaps(sections=8))


def test_caps_are_configurable():
    """Looser caps accept what the defaults refuse; tighter ones refuse what the defaults accept."""
    data = crafted(**CAP_CASES["frames_per_group"])
    assert read_bitstream(data, StreamCaps(frames_per_group=4096, pixels_per_group=1 << 32)).groups[0].end == 4095
    with pytest.raises(BitstreamError, match="frames_per_group = 16"):
        read_bitstream(write_bitstream(make_stream()), StreamCaps(frames_per_group=16))
    assert read_bitstream(write_bitstream(make_stream()), StreamCaps(frames_per_group=17)).groups


def flip_group_payload(data: bytes, number: int) -> bytes:
    """``data`` with one byte flipped inside the payload of its ``number``-th GROUP section."""
    groups = [s for s in iter_sections(data) if s.kind == SectionType.GROUP]
    sec = groups[number]
    out = bytearray(data)
    out[sec.offset + sec.size - 4 - len(sec.payload) // 2 - 1] ^= 0x5A  # inside the payload, before the CRC
    return bytes(out)


@pytest.mark.parametrize("number", [0, 1])
def test_damaged_group_is_named_or_tolerated(number):
    """A GROUP section whose CRC fails: a strict read names the group and its frames; a tolerant read keeps
    every other group as written and marks exactly that one, with its frames from the structure and no tracks."""
    bs = make_stream(num_frames=49, keyframes=(0, 16, 32, 48))
    clean = write_bitstream(bs)
    data = flip_group_payload(clean, number)
    start, end = bs.groups[number].start, bs.groups[number].end
    with pytest.raises(BitstreamError, match=rf"^corrupt .tgv stream: group {number} \(frames {start}\.\.{end}\): "
                                             r"section CRC mismatch$"):
        read_bitstream(data)
    back = read_bitstream(data, tolerate_damaged_groups=True)
    assert back.damaged_groups == {number: "section CRC mismatch"}
    assert back.keyframes == bs.keyframes
    want = [(g.start, g.end, b"" if i == number else g.tracks) for i, g in enumerate(bs.groups)]
    assert [(g.start, g.end, g.tracks) for g in back.groups] == want
    assert back.section_sizes == read_bitstream(clean).section_sizes
    assert read_bitstream(clean, tolerate_damaged_groups=True).damaged_groups == {}


def flip_keyframe_payload(data: bytes, number: int) -> bytes:
    """``data`` with one byte flipped inside the payload of its ``number``-th KEYFRAME section."""
    sec = [s for s in iter_sections(data) if s.kind == SectionType.KEYFRAME][number]
    out = bytearray(data)
    out[sec.offset + sec.size - 5] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("number", [0, 1, 3])
def test_damaged_keyframe_is_named_or_tolerated(number):
    """A KEYFRAME section whose CRC fails: a strict read names the keyframe and its frame (the first keyframe
    is frame 0, any other the end of the group that follows it); a tolerant read keeps it, empty, and marks it."""
    bs = make_stream(num_frames=49, keyframes=(0, 16, 32, 48))
    clean = write_bitstream(bs)
    data = flip_keyframe_payload(clean, number)
    frame = sorted(bs.keyframes)[number]
    with pytest.raises(BitstreamError, match=rf"^corrupt .tgv stream: keyframe {number} \(frame {frame}\): "
                                             r"section CRC mismatch$"):
        read_bitstream(data, tolerate_damaged_groups=True)
    back = read_bitstream(data, tolerate_damaged_keyframes=True)
    assert back.damaged_keyframes == {frame: "section CRC mismatch"}
    assert back.keyframes == {k: b"" if k == frame else p for k, p in bs.keyframes.items()}
    assert [(g.start, g.end, g.tracks) for g in back.groups] == [(g.start, g.end, g.tracks) for g in bs.groups]
    assert back.section_sizes == read_bitstream(clean).section_sizes
    # the group that tells a damaged keyframe's frame is damaged too: the keyframe cannot be placed
    if number > 0:
        both = bytes(x ^ y ^ z for x, y, z in zip(data, flip_group_payload(clean, number - 1), clean))
        with pytest.raises(BitstreamError, match="CRC mismatch in keyframe section at byte"):
            read_bitstream(both, tolerate_damaged_groups=True, tolerate_damaged_keyframes=True)


def test_tolerant_read_stays_strict_elsewhere():
    """Only GROUP and KEYFRAME sections' CRCs are tolerated: a damaged header, or a truncation, stays an error;
    a damaged keyframe stays one unless keyframes are tolerated."""
    data = write_bitstream(make_stream())
    sections = list(iter_sections(data))
    for sec in sections:
        if sec.kind in (SectionType.HEADER, SectionType.KEYFRAME):
            bad = bytearray(data)
            bad[sec.offset + sec.size - 5] ^= 0x01
            with pytest.raises(BitstreamError, match="CRC mismatch"):
                read_bitstream(bytes(bad), tolerate_damaged_groups=True)
        if sec.kind == SectionType.HEADER:
            with pytest.raises(BitstreamError, match="CRC mismatch in header"):
                read_bitstream(bytes(bad), tolerate_damaged_groups=True, tolerate_damaged_keyframes=True)
    for cut in range(0, len(data), 7):
        with pytest.raises(BitstreamError):
            read_bitstream(data[:cut], tolerate_damaged_groups=True)
