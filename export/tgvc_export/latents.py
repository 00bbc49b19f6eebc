"""The latent dataset: every frame of the shared clips encoded once with TAEF2, cached as .npy.

``export/cache/latents_<clip>.npy`` holds float32 [N, 32, H/8, W/8] raw latents (frames cropped to
multiples of 8). Per-channel mean/std of the training clips go into the manifest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import TRAIN_CLIPS, VAL_CLIPS, VIDEO_DIR, crop_to_multiple
from .taef2 import WEIGHTS_DIR, load_taef2

CACHE_DIR = Path(__file__).resolve().parents[1] / "cache"


@torch.no_grad()
def encode_frames(encoder: torch.nn.Module, frames: np.ndarray, batch: int = 8) -> np.ndarray:
    """RGB uint8 [N, H, W, 3] (H, W multiples of 8) -> raw latents float32 [N, 32, H/8, W/8]."""
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i:i + batch]).permute(0, 3, 1, 2).float() / 255.0
        out.append(encoder(x).numpy())
    return np.concatenate(out).astype(np.float32)


def cache_latents(clips: tuple[str, ...] = TRAIN_CLIPS + VAL_CLIPS, video_dir: Path = VIDEO_DIR,
                  cache_dir: Path = CACHE_DIR, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Path]:
    """Encode every clip not yet cached; returns clip -> cache path."""
    from tgvc_rt.io import read_video

    cache_dir.mkdir(parents=True, exist_ok=True)
    encoder = None
    paths = {}
    for clip in clips:
        path = cache_dir / f"latents_{clip}.npy"
        if not path.exists():
            if encoder is None:
                encoder = load_taef2(weights_dir)[0]
            frames = crop_to_multiple(read_video(video_dir / f"{clip}.y4m").frames)
            np.save(path, encode_frames(encoder, frames))
        paths[clip] = path
    return paths


def load_latents(clips: tuple[str, ...], cache_dir: Path = CACHE_DIR) -> dict[str, np.ndarray]:
    return {c: np.load(cache_dir / f"latents_{c}.npy") for c in clips}


def latent_stats(latents: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean [32], std [32]) over every frame and position of the given clips."""
    flat = np.concatenate([z.transpose(1, 0, 2, 3).reshape(z.shape[1], -1) for z in latents.values()], axis=1)
    return flat.mean(axis=1).astype(np.float32), flat.std(axis=1).astype(np.float32)
