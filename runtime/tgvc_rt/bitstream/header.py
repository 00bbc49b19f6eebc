"""The .tgv stream header: picture size, timing, codec choices, model set and noise seed."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import BitstreamError

MAX_DIM = 16384
MAX_FRAMES = 10_000_000
HASH_BYTES = 16
_HEADER = struct.Struct("<HHIIIBB16sQII")


@dataclass(frozen=True)
class StreamHeader:
    width: int
    height: int
    fps_num: int
    fps_den: int
    num_frames: int
    keyframe_codec: int          # id from encoder.keyframe_codec.CODEC_IDS
    flags: int                   # reserved, 0
    model_set_hash: bytes        # first 16 bytes of sha256(manifest.json) of the model set
    noise_seed: int              # seeds the decoder's diffusion noise (u64)
    num_keyframes: int
    num_groups: int

    def pack(self) -> bytes:
        self.validate()
        return _HEADER.pack(self.width, self.height, self.fps_num, self.fps_den, self.num_frames,
                            self.keyframe_codec, self.flags, self.model_set_hash, self.noise_seed,
                            self.num_keyframes, self.num_groups)

    @staticmethod
    def unpack(payload: bytes) -> "StreamHeader":
        if len(payload) != _HEADER.size:
            raise BitstreamError(f"corrupt .tgv header: {len(payload)} bytes, expected {_HEADER.size}")
        header = StreamHeader(*_HEADER.unpack(payload))
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
