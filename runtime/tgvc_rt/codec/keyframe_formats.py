"""The keyframe codecs of the header's ``keyframe_codec`` id, and one reader for all of them.

Two families share the header's ``keyframe_codec`` id space:

* image codecs (``keyframe_image``): every keyframe an independent intra picture (ids 1-3);
* sequence codecs (``keyframe_sequence``): the keyframes form one low-delay P-frame stream with an
  intra keyframe every ``intra_period`` keyframes (ids 4-5). Much cheaper for similar keyframes,
  but a keyframe decodes only after the ones before it, back to the last intra one.

:class:`KeyframeReader` decodes a stream's keyframes whatever the family; the encoder codes them with
``encoder/keyframe_rate.py`` (``encode_keyframes``).
"""
from __future__ import annotations

import numpy as np

from ..errors import BitstreamError, OptionError
from . import keyframe_image, keyframe_sequence

CODEC_IDS: dict[str, int] = {**keyframe_image.CODEC_IDS, **keyframe_sequence.SEQUENCE_CODEC_IDS}
CODEC_NAMES: dict[int, str] = {v: k for k, v in CODEC_IDS.items()}
DEFAULT_CODEC = keyframe_sequence.DEFAULT_SEQUENCE_CODEC


def check_codec(name: str) -> None:
    if name not in CODEC_IDS:
        raise OptionError(f"--keyframe-codec {name!r}: choose one of {', '.join(CODEC_IDS)}")


def is_sequence(name: str) -> bool:
    return name in keyframe_sequence.SEQUENCE_CODECS


class KeyframeReader:
    """Decodes a stream's keyframes; they must be asked for in ascending order, each once."""

    def __init__(self, codec_id: int, width: int, height: int):
        name = CODEC_NAMES.get(codec_id)
        if name is None:
            raise BitstreamError(f"unknown keyframe codec id {codec_id}")
        self.name, self.width, self.height = name, width, height
        self.last_scale = 1.0  # downscale factor the last decoded keyframe was coded at
        self._sequence = (keyframe_sequence.KeyframeSequenceDecoder(width, height, name)
                          if is_sequence(name) else None)

    @property
    def sequence(self) -> bool:
        """Whether the keyframes form one inter-predicted stream (each inter keyframe needs the one before)."""
        return self._sequence is not None

    def reset(self) -> None:
        """Forget the references (a sequence codec then decodes nothing before the next intra payload)."""
        if self._sequence is not None:
            self._sequence.reset()

    def decode(self, payload: bytes) -> np.ndarray:
        if self._sequence is not None:
            image = self._sequence.decode(payload)
            self.last_scale = keyframe_image.SCALES[self._sequence._level]
            return image
        image = keyframe_image.decode_keyframe(payload, self.width, self.height, self.name)
        self.last_scale = keyframe_image.SCALES[payload[0] & 0x0F]
        return image
