"""Low-level .tgv framing: magic + version, then length-prefixed sections each with a CRC32.

section := type u8 | payload length (uleb128) | payload | crc32 u32 (over type, length and payload)

Every size read from the stream is checked against caps and the bytes actually present before
anything is allocated (dav1d-style hostility towards input).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Iterator

from ..errors import BitstreamError
from .varint import pack_uleb, read_uleb

MAGIC = b"TGVC"
VERSION_MAJOR = 1
VERSION_MINOR = 0
PREAMBLE = struct.Struct("<4sBB")          # magic, major, minor
CRC = struct.Struct("<I")
MAX_SECTION_BYTES = 256 << 20


class SectionType:
    HEADER = 0x01
    KEYFRAME = 0x02
    GROUP = 0x03
    END = 0x7F
    NAMES = {HEADER: "header", KEYFRAME: "keyframe", GROUP: "group", END: "end"}


@dataclass(frozen=True)
class Section:
    kind: int
    payload: bytes
    offset: int  # byte offset of the section head in the stream
    size: int    # bytes the section occupies in the stream, framing included
    intact: bool = True  # False: its CRC failed (only for the kinds ``iter_sections`` was told to tolerate)


def section_overhead(payload_size: int) -> int:
    """Framing bytes of a section with this payload size."""
    return 1 + len(pack_uleb(payload_size)) + CRC.size


def pack_preamble() -> bytes:
    return PREAMBLE.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR)


def pack_section(kind: int, payload: bytes) -> bytes:
    if len(payload) > MAX_SECTION_BYTES:
        raise BitstreamError(f"section of {len(payload)} bytes exceeds the {MAX_SECTION_BYTES} byte cap")
    body = bytes([kind]) + pack_uleb(len(payload)) + payload
    return body + CRC.pack(zlib.crc32(body))


def check_preamble(data: bytes) -> int:
    """Validate magic and version; return the offset of the first section."""
    if len(data) < PREAMBLE.size:
        raise BitstreamError("not a .tgv stream (too short)")
    magic, major, minor = PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not a .tgv stream (bad magic)")
    if major != VERSION_MAJOR:
        raise BitstreamError(f".tgv version {major}.{minor} is not supported by this decoder "
                             f"(reads {VERSION_MAJOR}.x)")
    return PREAMBLE.size


def iter_sections(data: bytes, tolerate: frozenset[int] = frozenset()) -> Iterator[Section]:
    """Yield sections in stream order, verifying each CRC. Stops after the END section. A section of a
    kind in ``tolerate`` whose CRC fails is yielded with ``intact=False`` (its length must still lead to
    the next section); any other CRC failure is an error."""
    pos = check_preamble(data)
    while True:
        if pos >= len(data):
            raise BitstreamError(f"truncated .tgv stream: no end section (stream stops at byte {pos})")
        kind = data[pos]
        length, start = read_uleb(data, pos + 1, "section length")
        if length > MAX_SECTION_BYTES:
            raise BitstreamError(f"corrupt .tgv stream: section at byte {pos} claims {length} bytes")
        end = start + length
        if end + CRC.size > len(data):
            raise BitstreamError(f"truncated .tgv stream: section at byte {pos} needs {length} bytes "
                                 f"of payload, {max(0, len(data) - start - CRC.size)} remain")
        (crc,) = CRC.unpack_from(data, end)
        intact = zlib.crc32(data[pos:end]) == crc
        if not intact and kind not in tolerate:
            name = SectionType.NAMES.get(kind, f"type {kind}")
            raise BitstreamError(f"corrupt .tgv stream: CRC mismatch in {name} section at byte {pos}")
        yield Section(kind, bytes(data[start:end]), pos, end + CRC.size - pos, intact)
        pos = end + CRC.size
        if kind == SectionType.END:
            if pos != len(data):
                raise BitstreamError(f"corrupt .tgv stream: {len(data) - pos} trailing bytes after the end")
            return
