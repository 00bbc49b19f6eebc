"""The one small interface every backend implements, and the model wrappers built on it.

A backend ``Session`` runs one ONNX-interface model: it knows its input/output names and maps a
dict of float32 NumPy feeds to a dict of outputs. ``Denoiser`` and ``Autoencoder`` wrap sessions
with the model set's conventions (``docs/models.md``): tensor names, batch/frame axes and the
per-channel latent normalisation, so samplers and decoders only see normalised latents.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Session(ABC):
    """One loaded model. ``run`` may return views of buffers reused by the next ``run`` call."""

    inputs: list[str]
    outputs: list[str]
    device: str

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` (name -> array); returns name -> array."""


class Denoiser:
    """``unet`` wrapper: ``(sample [F, 32, h, w], t, cond [F, 65, h, w]) -> eps [F, 32, h, w]``.

    Adds/removes the batch axis (B = 1) and feeds ``timestep`` as float32 ``[1]``.
    """

    def __init__(self, session: Session):
        self.session = session

    def __call__(self, sample: np.ndarray, t: int | float, cond: np.ndarray) -> np.ndarray:
        out = self.session.run({
            "sample": np.ascontiguousarray(sample[None], dtype=np.float32),
            "timestep": np.array([t], dtype=np.float32),
            "cond": np.ascontiguousarray(cond[None], dtype=np.float32),
        })
        return out["eps"][0]


class Autoencoder:
    """``vae_encoder``/``vae_decoder`` wrapper working in the *normalised* latent space.

    ``encode(images uint8 [N, H, W, 3]) -> zn float32 [N, C, H/8, W/8]``,
    ``decode(zn) -> uint8 [N, H, W, 3]`` and ``decode_float(zn)`` (0-255 float32, unrounded);
    H and W must be multiples of 8 (the decoder pads).
    ``batch`` frames go through the model per call (bounds memory; results do not depend on it
    for per-frame models).
    """

    def __init__(self, encoder: Session | None, decoder: Session | None,
                 latent_mean: Sequence[float], latent_std: Sequence[float], batch: int = 4):
        self.encoder = encoder
        self.decoder = decoder
        self.mean = np.asarray(latent_mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(latent_std, dtype=np.float32).reshape(1, -1, 1, 1)
        self.batch = max(int(batch), 1)

    def encode(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        chunks = []
        for i in range(0, images.shape[0], self.batch):  # batches of frames, not pixels
            x = images[i:i + self.batch].transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
            latent = self.encoder.run({"image": np.ascontiguousarray(x)})["latent"]
            chunks.append((latent - self.mean) / self.std)
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)

    def decode(self, zn: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(self.decode_float(zn)), 0, 255).astype(np.uint8)

    def decode_float(self, zn: np.ndarray) -> np.ndarray:
        """``decode`` before rounding: float32 ``[N, H, W, 3]`` on the 0-255 scale, unclipped."""
        zn = np.asarray(zn, dtype=np.float32)
        chunks = []
        for i in range(0, zn.shape[0], self.batch):
            latent = np.ascontiguousarray(zn[i:i + self.batch] * self.std + self.mean)
            image = self.decoder.run({"latent": latent})["image"]
            chunks.append(image.transpose(0, 2, 3, 1) * np.float32(255.0))
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)
