"""Small entropy-coding helpers for the trajectory payload (constriction range coder).

* varints (LEB128, at most 5 bytes) for the few header integers;
* one-byte codes for model parameters: a Laplace scale ``2 ** ((code - 64) / 16)`` (0.06 .. 3900)
  and a probability ``code / 256`` (code 1 .. 255);
* :class:`SymbolReader`, a range decoder that turns every failure into
  :class:`~tgvc_rt.errors.BitstreamError`.

Models are constriction's leaky quantised models, so every symbol in a model's range can be coded
whatever the parameters, and a decoder never sees a symbol outside the range.
"""
from __future__ import annotations

import constriction
import numpy as np

from ..bitstream.varint import pack_uleb, read_uleb
from ..errors import BitstreamError

_model = constriction.stream.model
_queue = constriction.stream.queue


def put_varint(value: int) -> bytes:
    """LEB128 varint of a header integer (the bitstream's own varint, at most 32 bits)."""
    return pack_uleb(value)


def get_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a varint at ``pos`` -> (value, new_pos); BitstreamError if cut off or over 32 bits."""
    return read_uleb(data, pos, "track payload integer")


def scale_code(mean_abs: float) -> int:
    """One-byte code of a Laplace scale close to ``mean_abs`` (the scale's ML estimate)."""
    v = max(float(mean_abs), 1e-3)
    return int(np.clip(np.rint(16.0 * np.log2(v) + 64.0), 0, 255))


def scale_value(code: int) -> float:
    return float(2.0 ** ((code - 64) / 16.0))


def prob_code(ones: float, total: float) -> int:
    """One-byte code of P(symbol = 1) estimated from counts (add-half smoothing)."""
    return int(np.clip(np.rint(256.0 * (ones + 0.5) / (total + 1.0)), 1, 255))


def prob_value(code: int) -> float:
    return code / 256.0


def laplace(limit: int):
    """Quantised Laplace model family over ``-limit .. limit`` (mean, scale given per symbol)."""
    return _model.QuantizedLaplace(-int(limit), int(limit))


def encode_laplace(enc, symbols: np.ndarray, limit: int, mean, scale: float) -> None:
    s = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
    if s.size:
        enc.encode(s, laplace(limit), np.broadcast_to(np.asarray(mean, np.float64), s.shape).copy(),
                   np.full(s.shape, scale, np.float64))


def encode_bits(enc, bits: np.ndarray, p_one: np.ndarray) -> None:
    b = np.ascontiguousarray(bits, dtype=np.int32).ravel()
    if b.size:
        enc.encode(b, _model.Bernoulli(perfect=False), np.ascontiguousarray(p_one, np.float64).ravel())


def new_encoder():
    return _queue.RangeEncoder()


def finish(enc) -> bytes:
    """Compressed words as little-endian bytes with trailing zero bytes dropped (restored by
    :class:`SymbolReader`)."""
    return enc.get_compressed().astype("<u4").tobytes().rstrip(b"\x00")


class SymbolReader:
    """Range decoder over a body produced by :func:`finish`."""

    def __init__(self, body: bytes) -> None:
        pad = (-len(body)) % 4
        words = np.frombuffer(body + b"\x00" * pad, dtype="<u4").astype(np.uint32)
        try:
            self._dec = _queue.RangeDecoder(words)
        except Exception as err:  # noqa: BLE001 - any failure is a bad stream
            raise BitstreamError(f"track payload body is not a valid range-coded stream: {err}")

    def laplace(self, count: int, limit: int, mean, scale: float) -> np.ndarray:
        if count == 0:
            return np.zeros(0, np.int64)
        means = np.broadcast_to(np.asarray(mean, np.float64), (count,)).copy()
        try:
            out = self._dec.decode(laplace(limit), means, np.full(count, scale, np.float64))
        except Exception as err:  # noqa: BLE001
            raise BitstreamError(f"track payload is corrupt: {err}")
        return np.asarray(out, np.int64)

    def check_exhausted(self) -> None:
        """BitstreamError unless the body was consumed exactly (catches trailing garbage and many
        corruptions)."""
        if not self._dec.maybe_exhausted():
            raise BitstreamError("track payload body has data left over after the last symbol")

    def bits(self, p_one: np.ndarray) -> np.ndarray:
        p = np.ascontiguousarray(p_one, np.float64).ravel()
        if p.size == 0:
            return np.zeros(0, bool)
        try:
            out = self._dec.decode(_model.Bernoulli(perfect=False), p)
        except Exception as err:  # noqa: BLE001
            raise BitstreamError(f"track payload is corrupt: {err}")
        return np.asarray(out) != 0
