"""AV1 OBU helpers for keyframe payloads: split a temporal unit, rebuild the sequence header.

A keyframe coded by SVT-AV1 is one temporal unit of low-overhead OBUs (AV1 spec section 5):
``temporal delimiter (2 B) | sequence header (12-13 B) | frame OBU``. The temporal delimiter is
not needed by dav1d and the sequence header depends only on the picture size for our fixed
encoder configuration, so the keyframe codec strips both and the decoder rebuilds the header with
:func:`build_sequence_header`. The encoder checks the rebuilt header byte-for-byte against the one
it stripped and keeps the original when they differ, so a different SVT-AV1 build can never
produce an undecodable stream (it only costs ~13 bytes).

Used by encoder and decoder: no encoder-only imports here.
"""
from __future__ import annotations

from tgvc_rt.errors import BitstreamError

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2

# Bits of SVT-AV1's sequence header after max_frame_height_minus_1 and before the trailing bits,
# for our configuration (8-bit 4:2:0, main profile, no film grain). They depend on the preset
# (coding tools enabled); the payload stores which variant (2 bits) so the decoder can rebuild it.
HEADER_VARIANTS = (
    "000110101011111001100000000",  # SVT-AV1 presets 5-9
    "000100101011111001000000000",  # presets 10-13
    "001110101011111001100000000",  # presets 0-4 (seen with 4)
)

# AV1 levels (annex A.3): (seq_level_idx, MaxPicSize, MaxHSize, MaxVSize), in increasing order.
_LEVELS = (
    (0, 147456, 2048, 1152),
    (1, 278784, 2816, 1584),
    (4, 665856, 4352, 2448),
    (5, 1065024, 5504, 3096),
    (8, 2359296, 6144, 3456),
    (12, 8912896, 8192, 4352),
    (16, 35651584, 16384, 8704),
)


def split_obus(data: bytes) -> list[tuple[int, bytes]]:
    """Split low-overhead OBUs into ``(obu_type, obu_bytes)``; raises BitstreamError if malformed."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        header = data[i]
        if header & 0x81 or not header & 0x02:  # forbidden bit / reserved bit / no size field
            raise BitstreamError("keyframe: malformed AV1 OBU header")
        j = i + 1 + ((header >> 2) & 1)
        size, shift = 0, 0
        while True:
            if j >= n or shift > 56:
                raise BitstreamError("keyframe: truncated AV1 OBU size")
            byte = data[j]
            j += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if j + size > n:
            raise BitstreamError("keyframe: truncated AV1 OBU")
        out.append(((header >> 3) & 0x0F, data[i:j + size]))
        i = j + size
    return out


def _level_index(width: int, height: int) -> int:
    for idx, max_pic, max_w, max_h in _LEVELS:
        if width * height <= max_pic and width <= max_w and height <= max_h:
            return idx
    return 31  # unconstrained


def build_sequence_header(width: int, height: int, variant: int = 0) -> bytes:
    """The sequence header OBU SVT-AV1 writes for a ``width x height`` intra picture."""
    if not (1 <= width <= 65536 and 1 <= height <= 65536):
        raise BitstreamError(f"keyframe: bad coded size {width}x{height}")
    if not 0 <= variant < len(HEADER_VARIANTS):
        raise BitstreamError(f"keyframe: unknown AV1 header variant {variant}")
    wb = max(1, (width - 1).bit_length())
    hb = max(1, (height - 1).bit_length())
    level = _level_index(width, height)
    bits = "000" + "0" + "0" + "0" + "0" + "00000" + "0" * 12 + f"{level:05b}"
    if level > 7:
        bits += "0"  # seq_tier
    bits += f"{wb - 1:04b}{hb - 1:04b}" + f"{width - 1:0{wb}b}" + f"{height - 1:0{hb}b}"
    bits += HEADER_VARIANTS[variant] + "1"
    bits += "0" * (-len(bits) % 8)
    payload = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return bytes([OBU_SEQUENCE_HEADER << 3 | 0x02, len(payload)]) + payload


def strip_headers(temporal_unit: bytes, width: int, height: int) -> tuple[bytes, int | None]:
    """Drop the temporal delimiter, and the sequence header when it can be rebuilt.

    Returns ``(obus, variant)``; ``variant`` is None when the header had to be kept.
    """
    obus = [(t, b) for t, b in split_obus(temporal_unit) if t != OBU_TEMPORAL_DELIMITER]
    seq = [b for t, b in obus if t == OBU_SEQUENCE_HEADER]
    for variant in range(len(HEADER_VARIANTS)):
        if len(seq) == 1 and seq[0] == build_sequence_header(width, height, variant):
            return b"".join(b for t, b in obus if t != OBU_SEQUENCE_HEADER), variant
    return b"".join(b for _, b in obus), None
