"""The .tgv bitstream (spec: docs/bitstream.md).

Stream order: preamble, HEADER, then for each group its keyframes (the first group's start keyframe,
then every group's end keyframe) followed by its GROUP section, and a final END section. Each group
references only its two keyframes, so groups decode independently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ..errors import BitstreamError
from .caps import StreamCaps
from .header import HASH_BYTES, StreamHeader
from .sections import (MAX_SECTION_BYTES, VERSION_MAJOR, VERSION_MINOR, Section, SectionType,
                       check_preamble, iter_sections, pack_preamble, pack_section, section_overhead)
from .varint import pack_uleb, read_uleb

__all__ = ["StreamHeader", "StreamCaps", "Bitstream", "GroupPayload", "write_bitstream", "read_bitstream",
           "iter_sections", "Section", "SectionType", "HASH_BYTES", "VERSION_MAJOR", "VERSION_MINOR",
           "section_overhead", "keyframe_prefix", "group_prefix"]


def keyframe_prefix(index: int) -> bytes:
    """KEYFRAME payload := frame index (uleb128) | coded image."""
    return pack_uleb(index)


def group_prefix(start: int, end: int) -> bytes:
    """GROUP payload := start (uleb128) | end (uleb128) | trajectory payload."""
    return pack_uleb(start) + pack_uleb(end)


@dataclass
class GroupPayload:
    start: int
    end: int
    tracks: bytes  # trajectory payload (encoder.trajectories)


@dataclass
class Bitstream:
    header: StreamHeader
    keyframes: dict[int, bytes] = field(default_factory=dict)   # frame index -> image payload
    groups: list[GroupPayload] = field(default_factory=list)
    section_sizes: dict[str, int] = field(default_factory=dict)  # bytes per section kind (read side)

    def keyframe_indices(self) -> list[int]:
        return sorted(self.keyframes)


DEFAULT_CAPS = StreamCaps()


def write_bitstream(bs: Bitstream, caps: StreamCaps | None = DEFAULT_CAPS) -> bytes:
    """Serialise a complete stream; validates the group/keyframe structure first, and refuses a stream
    that a reader with ``caps`` would refuse (None: structure only, e.g. to craft streams for tests)."""
    _validate_structure(bs)
    if caps is not None:
        _check_caps(bs, caps)
    out = [pack_preamble(), pack_section(SectionType.HEADER, bs.header.pack())]
    sent: set[int] = set()
    for g in bs.groups:
        for k in (g.start, g.end):
            if k not in sent:
                out.append(pack_section(SectionType.KEYFRAME, keyframe_prefix(k) + bs.keyframes[k]))
                sent.add(k)
        out.append(pack_section(SectionType.GROUP, group_prefix(g.start, g.end) + g.tracks))
    out.append(pack_section(SectionType.END, b""))
    return b"".join(out)


def read_bitstream(data: bytes, caps: StreamCaps = DEFAULT_CAPS) -> Bitstream:
    """Parse and validate a whole stream (CRC of every section, structure, caps). Every cap is checked
    on the numbers as they are read, before anything is kept for them."""
    sections = iter_sections(data)
    first = next(sections, None)
    if first is None or first.kind != SectionType.HEADER:
        raise BitstreamError("corrupt .tgv stream: the first section is not the header")
    bs = Bitstream(StreamHeader.unpack(first.payload))
    caps.check_header(bs.header)
    sizes = {"preamble": check_preamble(data), "header": first.size, "keyframe": 0, "group": 0, "end": 0}
    for count, sec in enumerate(sections, start=2):
        caps.check_sections(count)
        if sec.kind == SectionType.KEYFRAME:
            if len(bs.keyframes) >= bs.header.num_keyframes:
                raise BitstreamError("corrupt .tgv stream: more keyframes than the header promises")
            index, pos = read_uleb(sec.payload, 0, "keyframe index")
            if index >= bs.header.num_frames or index in bs.keyframes:
                raise BitstreamError(f"corrupt .tgv stream: bad or repeated keyframe index {index}")
            bs.keyframes[index] = sec.payload[pos:]
        elif sec.kind == SectionType.GROUP:
            if len(bs.groups) >= bs.header.num_groups:
                raise BitstreamError("corrupt .tgv stream: more groups than the header promises")
            start, pos = read_uleb(sec.payload, 0, "group start")
            end, pos = read_uleb(sec.payload, pos, "group end")
            caps.check_group(bs.header, start, end, sec.payload[pos:pos + 5])
            bs.groups.append(GroupPayload(start, end, sec.payload[pos:]))
        elif sec.kind == SectionType.HEADER:
            raise BitstreamError("corrupt .tgv stream: a second header section")
        name = SectionType.NAMES.get(sec.kind, "other")  # unknown kinds (newer minor version) are skipped
        sizes[name] = sizes.get(name, 0) + sec.size
    _validate_structure(bs)
    bs.section_sizes = sizes
    return bs


def _check_caps(bs: Bitstream, caps: StreamCaps) -> None:
    """The caps ``read_bitstream`` checks, on a whole stream (unknown sections are never written)."""
    caps.check_header(bs.header)
    caps.check_sections(len(bs.keyframes) + len(bs.groups) + 2)
    for g in bs.groups:
        caps.check_group(bs.header, g.start, g.end, g.tracks[:5])


def _validate_structure(bs: Bitstream) -> None:
    h = bs.header
    if len(bs.groups) != h.num_groups or len(bs.keyframes) != h.num_keyframes:
        raise BitstreamError(f"corrupt .tgv stream: header promises {h.num_groups} groups and "
                             f"{h.num_keyframes} keyframes, stream holds {len(bs.groups)} and {len(bs.keyframes)}")
    expected_start = 0
    for g in bs.groups:
        too_short = g.end <= g.start and h.num_frames > 1
        if g.start != expected_start or too_short or g.end >= h.num_frames:
            raise BitstreamError(f"corrupt .tgv stream: group {g.start}..{g.end} does not continue at "
                                 f"frame {expected_start}")
        if g.start not in bs.keyframes or g.end not in bs.keyframes:
            raise BitstreamError(f"corrupt .tgv stream: group {g.start}..{g.end} lacks a keyframe")
        expected_start = g.end
    if expected_start != h.num_frames - 1:
        raise BitstreamError(f"corrupt .tgv stream: groups end at frame {expected_start}, "
                             f"the clip has {h.num_frames}")
