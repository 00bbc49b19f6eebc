"""The .tgv stream header: picture size, timing, codec choices, model set and noise seed.

payload := width | height | fps_num | fps_den | num_frames | keyframe_codec | flags   (uleb128 each)
           | model_set_hash (16 bytes) | noise_seed (u32 LE) | num_keyframes | num_groups (uleb128)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import BitstreamError
from .varint import pack_uleb, read_uleb

MAX_DIM = 16384
MAX_FRAMES = 10_000_000
HASH_BYTES = 16
SEED_MAX = (1 << 32) - 1
_SEED = struct.Struct("<I")
_LEADING = ("width", "height", "fps_num", "fps_den", "num_frames", "keyframe_codec", "flags")


@dataclass(frozen=True)
class StreamHeader:
    width: int
    height: int
    fps_num: int
    fps_den: int
    num_frames: int
    keyframe_codec: int          # id from codec.keyframe_formats.CODEC_IDS
    flags: int                   # reserved, 0
    model_set_hash: bytes        # first 16 bytes of sha256(manifest.json) of the model set
    noise_seed: int              # seeds the decoder's diffusion noise (u32)
    num_keyframes: int
    num_groups: int

    def pack(self) -> bytes:
        self.validate()
        return (b"".join(pack_uleb(getattr(self, name)) for name in _LEADING) + self.model_set_hash
                + _SEED.pack(self.noise_seed) + pack_uleb(self.num_keyframes) + pack_uleb(self.num_groups))

    @staticmethod
    def unpack(payload: bytes) -> "StreamHeader":
        pos, values = 0, {}
        for name in _LEADING:
            values[name], pos = read_uleb(payload, pos, f"header {name}")
        if pos + HASH_BYTES + _SEED.size > len(payload):
            raise BitstreamError("corrupt .tgv header: too short")
        values["model_set_hash"] = payload[pos:pos + HASH_BYTES]
        (values["noise_seed"],) = _SEED.unpack_from(payload, pos + HASH_BYTES)
        pos += HASH_BYTES + _SEED.size
        values["num_keyframes"], pos = read_uleb(payload, pos, "header num_keyframes")
        values["num_groups"], pos = read_uleb(payload, pos, "header num_groups")
        if pos != len(payload):
            raise BitstreamError(f"corrupt .tgv header: {len(payload) - pos} unexpected trailing bytes")
        header = StreamHeader(**values)
        header.validate()
        return header

    def validate(self) -> None:
        if not (0 < self.width <= MAX_DIM and 0 < self.height <= MAX_DIM):
            raise BitstreamError(f"corrupt .tgv header: frame size {self.width}x{self.height}")
        if not (0 < self.num_frames <= MAX_FRAMES):
            raise BitstreamError(f"corrupt .tgv header: {self.num_frames} frames")
        if self.fps_num <= 0 or self.fps_den <= 0:
            raise BitstreamError("corrupt .tgv header: frame rate")
        if not (0 < self.num_keyframes <= self.num_frames and 0 < self.num_groups <= self.num_frames):
            raise BitstreamError("corrupt .tgv header: keyframe/group counts")
        if len(self.model_set_hash) != HASH_BYTES:
            raise BitstreamError("corrupt .tgv header: model-set hash length")
        if not (0 <= self.noise_seed <= SEED_MAX):
            raise BitstreamError("corrupt .tgv header: noise seed out of range")
