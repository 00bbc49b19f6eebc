"""Access units of the keyframe sequence codecs: strip what the decoder rebuilds, and rebuild it.

Each keyframe of a sequence stream is stored as one *payload*, the coded access unit of that frame
with the redundant bytes removed (see keyframe_sequence.py for the payload layout as a whole):

* AV1 (SVT-AV1, low-overhead OBUs): the temporal delimiter is dropped; the sequence header (intra
  payloads only) is dropped when :func:`build_sequence_header` rebuilds it byte-for-byte from the
  coded size and a 2-bit variant (else it is kept and a flag says so); the *last* OBU loses its
  size field (``obu_has_size_field = 0``), the decoder puts it back from the payload length.
* HEVC (x265, Annex-B): the first start code is dropped (the decoder prepends ``00 00 01``); the
  start codes between NAL units stay (3 bytes each; only intra payloads have more than one NAL).

Every function here is a pure bytes -> bytes map and treats its input as hostile (BitstreamError).
Used by encoder and decoder: no encoder-only imports.
"""
from __future__ import annotations

import re

from tgvc_rt.codec.av1_obu import (
    OBU_SEQUENCE_HEADER,
    OBU_TEMPORAL_DELIMITER,
    build_sequence_header,
    split_obus,
    strip_headers,
)
from tgvc_rt.bitstream.varint import pack_uleb
from tgvc_rt.errors import BitstreamError

OBU_FRAME_HEADER, OBU_TILE_GROUP, OBU_FRAME, OBU_PADDING = 3, 4, 6, 15
_AV1_INTRA_OBUS = {OBU_SEQUENCE_HEADER, OBU_FRAME_HEADER, OBU_TILE_GROUP, OBU_FRAME, OBU_PADDING}
_AV1_INTER_OBUS = _AV1_INTRA_OBUS - {OBU_SEQUENCE_HEADER}

HEVC_VPS, HEVC_SPS, HEVC_PPS = 32, 33, 34
HEVC_PARAMETER_SETS = {HEVC_VPS, HEVC_SPS, HEVC_PPS}
HEVC_IRAP = set(range(16, 22))  # BLA/IDR/CRA slice NAL unit types
HEVC_NON_IRAP_SLICES = set(range(0, 10))  # TRAIL/TSA/STSA/RADL/RASL slices
_HEVC_START = b"\x00\x00\x01"


def _drop_last_size(obus: list[bytes]) -> bytes:
    """Join OBUs, the last one without its size field (it runs to the end of the payload)."""
    last = obus[-1]
    j = 1 + ((last[0] >> 2) & 1)  # after the optional extension byte comes the LEB128 size
    k = j
    while last[k] & 0x80:
        k += 1
    return b"".join(obus[:-1]) + bytes([last[0] & ~0x02]) + last[1:j] + last[k + 1:]


def _restore_last_size(data: bytes) -> bytes:
    """Inverse of :func:`_drop_last_size`: find the unsized last OBU and give it its size back."""
    i, n = 0, len(data)
    while i < n:
        header = data[i]
        if header & 0x81:
            raise BitstreamError("keyframe stream: malformed AV1 OBU header")
        j = i + 1 + ((header >> 2) & 1)
        if j > n:
            raise BitstreamError("keyframe stream: truncated AV1 OBU header")
        if not header & 0x02:  # the last OBU: size = the rest of the payload
            return data[:i] + bytes([header | 0x02]) + data[i + 1:j] + pack_uleb(n - j) + data[j:]
        size, shift = 0, 0
        while True:
            if j >= n or shift > 56:
                raise BitstreamError("keyframe stream: truncated AV1 OBU size")
            byte = data[j]
            j, size, shift = j + 1, size | (byte & 0x7F) << shift, shift + 7
            if byte < 0x80:
                break
        i = j + size
    raise BitstreamError("keyframe stream: AV1 payload lacks its final OBU")


def pack_av1(temporal_unit: bytes, intra: bool, width: int, height: int) -> tuple[bytes, int | None]:
    """Stripped OBUs of one SVT-AV1 temporal unit and the header variant (None: header kept).

    ``width, height``: the coded size (for rebuilding the sequence header of intra units).
    """
    if intra:
        stream, variant = strip_headers(temporal_unit, width, height)
    else:
        stream, variant = temporal_unit, None
    obus = [b for t, b in split_obus(stream) if t != OBU_TEMPORAL_DELIMITER]
    if not obus:
        raise BitstreamError("keyframe stream: AV1 encoder produced an empty temporal unit")
    return _drop_last_size(obus), variant


def unpack_av1(data: bytes, intra: bool, variant: int | None, width: int, height: int) -> bytes:
    """Rebuild the temporal unit dav1d decodes from a payload of :func:`pack_av1`."""
    obus = split_obus(_restore_last_size(data))
    types = [t for t, _ in obus]
    allowed = _AV1_INTRA_OBUS if intra else _AV1_INTER_OBUS
    if not types or any(t not in allowed for t in types):
        raise BitstreamError(f"keyframe stream: unexpected AV1 OBU types {types}")
    has_header = OBU_SEQUENCE_HEADER in types
    if intra and has_header != (variant is None):
        raise BitstreamError("keyframe stream: AV1 sequence header flag does not match the payload")
    prefix = build_sequence_header(width, height, variant) if intra and variant is not None else b""
    return prefix + b"".join(b for _, b in obus)


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B stream (start codes and trailing zero bytes removed)."""
    starts = [m.end() for m in re.finditer(re.escape(_HEVC_START), data)]
    bounds = starts[1:] + [len(data) + 3]
    return [data[a:b - 3].rstrip(b"\x00") for a, b in zip(starts, bounds)]


def hevc_nal_type(nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F


def pack_hevc(access_unit: bytes) -> bytes:
    """One x265 access unit -> NAL units joined by 3-byte start codes, without the first one."""
    nals = [n for n in split_annexb(access_unit) if n]
    if not nals:
        raise BitstreamError("keyframe stream: HEVC encoder produced an empty access unit")
    return _HEVC_START.join(nals)


def unpack_hevc(data: bytes, intra: bool) -> bytes:
    """Rebuild and check the Annex-B access unit of a :func:`pack_hevc` payload."""
    if len(data) < 3 or data[0] & 0x80:
        raise BitstreamError("keyframe stream: malformed HEVC payload")
    stream = _HEVC_START + data
    nals = split_annexb(stream)
    if any(len(n) < 2 or n[0] & 0x80 for n in nals):
        raise BitstreamError("keyframe stream: malformed HEVC NAL unit")
    types = [hevc_nal_type(n) for n in nals]
    slices = [t for t in types if t in HEVC_IRAP or t in HEVC_NON_IRAP_SLICES]
    if intra:
        ok = HEVC_PARAMETER_SETS <= set(types) and bool(slices) and all(t in HEVC_IRAP for t in slices)
    else:
        ok = bool(slices) and not any(t in HEVC_IRAP or t in HEVC_PARAMETER_SETS for t in types)
    if not ok:
        raise BitstreamError(f"keyframe stream: unexpected HEVC NAL unit types {types}")
    return stream
