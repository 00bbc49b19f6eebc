"""The .tgv bitstream (spec: docs/bitstream.md).

Stream order: preamble, HEADER, then for each group its keyframes (the first group's start keyframe,
then every group's end keyframe) followed by its GROUP section, and a final END section. Each group
references only its two keyframes, so groups decode independently; a reader may therefore keep a
group whose section is damaged (``tolerate_damaged_groups``) and let the decoder conceal it, and likewise
a keyframe whose section is damaged (``tolerate_damaged_keyframes``).
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
    tracks: bytes  # trajectory payload (codec.trajectories)


@dataclass
class Bitstream:
    header: StreamHeader
    keyframes: dict[int, bytes] = field(default_factory=dict)   # frame index -> image payload
    groups: list[GroupPayload] = field(default_factory=list)
    section_sizes: dict[str, int] = field(default_factory=dict)  # bytes per section kind (read side)
    damaged_groups: dict[int, str] = field(default_factory=dict)  # group number -> why (read side, tolerant)
    damaged_keyframes: dict[int, str] = field(default_factory=dict)  # frame index -> why (read side, tolerant)

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


def read_bitstream(data: bytes, caps: StreamCaps = DEFAULT_CAPS, tolerate_damaged_groups: bool = False,
                   tolerate_damaged_keyframes: bool = False) -> Bitstream:
    """Parse and validate a whole stream (CRC of every section, structure, caps). Every cap is checked
    on the numbers as they are read, before anything is kept for them.

    A GROUP section whose CRC fails is an error naming the group and its frames; with
    ``tolerate_damaged_groups`` it is kept instead, with no tracks, and listed in ``damaged_groups``.
    Its frames are not read from the damaged payload: they run from the previous group's end to the
    keyframe sent just before the section.

    A KEYFRAME section whose CRC fails is an error naming the keyframe (its number in stream order) and
    its frame; with ``tolerate_damaged_keyframes`` it is kept instead, with an empty payload, and listed
    in ``damaged_keyframes``. Its frame is not read from the damaged payload either: the first keyframe
    is frame 0, any other one the end of the GROUP section that follows it (which must be intact).
    The header and the end stay strict."""
    sections = iter_sections(data, tolerate=frozenset({SectionType.GROUP, SectionType.KEYFRAME}))
    first = next(sections, None)
    if first is None or first.kind != SectionType.HEADER:
        raise BitstreamError("corrupt .tgv stream: the first section is not the header")
    bs = Bitstream(StreamHeader.unpack(first.payload))
    caps.check_header(bs.header)
    sizes = {"preamble": check_preamble(data), "header": first.size, "keyframe": 0, "group": 0, "end": 0}
    last_keyframe = None
    pending: Section | None = None  # a damaged KEYFRAME section whose frame the next GROUP section tells
    for count, sec in enumerate(sections, start=2):
        caps.check_sections(count)
        if pending is not None and sec.kind != SectionType.GROUP:
            raise BitstreamError(f"corrupt .tgv stream: CRC mismatch in keyframe section at byte {pending.offset}")
        if sec.kind == SectionType.KEYFRAME:
            if len(bs.keyframes) >= bs.header.num_keyframes:
                raise BitstreamError("corrupt .tgv stream: more keyframes than the header promises")
            if not sec.intact and bs.keyframes:
                pending = sec  # its frame is the end of the group that follows
            elif not sec.intact:
                last_keyframe = 0  # the first keyframe sent is the first group's start, frame 0
                _damaged_keyframe(bs, 0, tolerate_damaged_keyframes)
            else:
                index, pos = read_uleb(sec.payload, 0, "keyframe index")
                if index >= bs.header.num_frames or index in bs.keyframes:
                    raise BitstreamError(f"corrupt .tgv stream: bad or repeated keyframe index {index}")
                bs.keyframes[index] = sec.payload[pos:]
                last_keyframe = index
        elif sec.kind == SectionType.GROUP:
            if len(bs.groups) >= bs.header.num_groups:
                raise BitstreamError("corrupt .tgv stream: more groups than the header promises")
            if sec.intact:
                start, pos = read_uleb(sec.payload, 0, "group start")
                end, pos = read_uleb(sec.payload, pos, "group end")
                caps.check_group(bs.header, start, end, sec.payload[pos:pos + 5])
                if pending is not None:
                    if end in bs.keyframes or (bs.keyframes and end <= max(bs.keyframes)):
                        raise BitstreamError(f"corrupt .tgv stream: CRC mismatch in keyframe section at byte "
                                             f"{pending.offset}")
                    pending, last_keyframe = None, end
                    _damaged_keyframe(bs, end, tolerate_damaged_keyframes)
                bs.groups.append(GroupPayload(start, end, sec.payload[pos:]))
            elif pending is not None:  # a damaged keyframe and its group: the keyframe's frame is unknown
                raise BitstreamError(f"corrupt .tgv stream: CRC mismatch in keyframe section at byte {pending.offset}")
            else:
                bs.groups.append(_damaged_group(bs, last_keyframe, sec, caps, tolerate_damaged_groups))
        elif sec.kind == SectionType.HEADER:
            raise BitstreamError("corrupt .tgv stream: a second header section")
        name = SectionType.NAMES.get(sec.kind, "other")  # unknown kinds (newer minor version) are skipped
        sizes[name] = sizes.get(name, 0) + sec.size
    _validate_structure(bs)
    bs.section_sizes = sizes
    return bs


def _damaged_keyframe(bs: Bitstream, index: int, tolerate: bool) -> None:
    """Keep the keyframe of frame ``index`` whose KEYFRAME section's CRC failed, with an empty payload, if
    ``tolerate``, else an error naming it."""
    number = len(bs.keyframes)
    if not tolerate:
        raise BitstreamError(f"corrupt .tgv stream: keyframe {number} (frame {index}): section CRC mismatch")
    bs.keyframes[index] = b""
    bs.damaged_keyframes[index] = "section CRC mismatch"


def _damaged_group(bs: Bitstream, last_keyframe: int | None, sec: Section, caps: StreamCaps,
                   tolerate: bool) -> GroupPayload:
    """The group of a GROUP section whose CRC failed, from the stream's structure alone: it starts where the
    previous group ends and ends at the keyframe sent just before it (which must be new unless the clip
    has one frame); kept with no tracks if ``tolerate``, else an error naming it."""
    number = len(bs.groups)
    start = bs.groups[-1].end if bs.groups else 0
    end = last_keyframe
    if end is None or end < start or (end == start and bs.header.num_frames > 1):
        raise BitstreamError(f"corrupt .tgv stream: CRC mismatch in group section {number} at byte {sec.offset}")
    if not tolerate:
        raise BitstreamError(f"corrupt .tgv stream: group {number} (frames {start}..{end}): section CRC mismatch")
    caps.check_group(bs.header, start, end, b"")
    bs.damaged_groups[number] = "section CRC mismatch"
    return GroupPayload(start, end, b"")


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
