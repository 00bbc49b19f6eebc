"""Unsigned LEB128 varints (7 bits a byte, low bits first), capped at 32 bits."""
from __future__ import annotations

from ..errors import BitstreamError

MAX_VARINT_BYTES = 5
U32_MAX = (1 << 32) - 1


def pack_uleb(value: int) -> bytes:
    if not (0 <= value <= U32_MAX):
        raise BitstreamError(f"value {value} does not fit a 32-bit varint")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_uleb(data: bytes, pos: int, what: str = "field") -> tuple[int, int]:
    """(value, next position); raises on truncation or a value over 32 bits."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise BitstreamError(f"truncated .tgv stream: {what} at byte {pos} is incomplete")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > U32_MAX:
                break
            return value, pos + i + 1
    raise BitstreamError(f"corrupt .tgv stream: {what} at byte {pos} is not a valid 32-bit varint")
