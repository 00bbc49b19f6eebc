"""Real decoder data for the UNet: the warp decoder's frames of the shared clips, as TAEF2 latents.

For every clip and rate, the real codec runs through its Python API (encode with
``tgvc_rt.encoder.pipeline.encode_video``, parse with ``tgvc_rt.bitstream.read_bitstream``,
decode with ``tgvc_rt.decoder.pipeline.iter_decoded_frames`` in warp mode). The decoded
frames (keyframes as decoded, in-between frames from the warp decoder) are VAE-encoded with TAEF2
and cached as ``export/cache/warp_<clip>_<bpp>.npz`` (git-ignored) with

* ``latents`` float32 ``[N, 32, H/8, W/8]`` raw TAEF2 latents of the decoded frames, display order
  (frame ``g.start`` / ``g.end`` of a group are its decoded keyframes);
* ``groups`` int64 ``[G, 2]`` the inclusive (start, end) of every keyframe group of the bitstream;
* ``bytes`` the stream size.

The target (latents of the true frames) is the cache of ``latents.py`` (``latents_<clip>.npy``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import TRAIN_CLIPS, VAL_CLIPS, VIDEO_DIR, crop_to_multiple
from .latents import CACHE_DIR, encode_frames, load_latents
from .taef2 import load_taef2

RATES = (0.005, 0.01)  # bits per pixel of the training encodes


@dataclass
class WarpClip:
    """One encoded clip: true and decoded raw latents [N, 32, h, w] and its groups [G, 2]."""
    clip: str
    bpp: float
    truth: np.ndarray
    decoded: np.ndarray
    groups: np.ndarray


def warp_path(clip: str, bpp: float, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"warp_{clip}_{bpp:g}.npz"


def code_clip(video, bpp: float, mode: str, seed: int = 0, effort: int = 1):
    """(decoded RGB uint8 [N, H, W, 3], groups [G, 2], stream bytes) of a ``tgvc_rt.types.Video`` encoded at
    ``bpp`` (default options but ``effort``) and decoded in decoder ``mode``."""
    from tgvc_rt.bitstream import read_bitstream
    from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames
    from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video
    from tgvc_rt.encoder.ratecontrol import RateOptions

    data = encode_video(video, EncodeOptions(rate=RateOptions(bpp=bpp), seed=seed, effort=effort)).data
    groups = np.array([(g.start, g.end) for g in read_bitstream(data).groups], dtype=np.int64)
    frames = np.stack(list(iter_decoded_frames(data, DecodeOptions(mode=mode))))
    if len(frames) != len(video):
        raise ValueError(f"decoded {len(frames)} frames, the clip has {len(video)}")
    return frames, groups, len(data)


def decode_warp(clip: str, bpp: float, video_dir: Path = VIDEO_DIR, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(decoded RGB uint8 [N, H, W, 3], groups [G, 2], stream bytes) of one clip at ``bpp``, warp decoder."""
    from tgvc_rt.io import read_video

    return code_clip(read_video(video_dir / f"{clip}.y4m"), bpp, "warp", seed)


def cache_decoded(clips: tuple[str, ...], rates: tuple[float, ...], path_of: Callable[[str, float, Path], Path],
                  decode: Callable[[str, float], tuple], cache_dir: Path = CACHE_DIR, force: bool = False,
                  keep_frames: bool = False) -> dict[str, dict]:
    """Encode/decode (``decode(clip, bpp)``)/VAE-encode every (clip, rate) not yet cached at ``path_of(clip, bpp,
    cache_dir)``: ``latents``, ``groups``, ``bytes`` (and the decoded ``frames`` cropped to a multiple of 8 with
    ``keep_frames``); returns a summary per file."""
    torch.set_num_threads(2)
    cache_dir.mkdir(parents=True, exist_ok=True)
    encoder = load_taef2()[0]
    summary = {}
    for clip in clips:
        for bpp in rates:
            path = path_of(clip, bpp, cache_dir)
            if path.exists() and not force:
                summary[path.name] = {"cached": True}
                continue
            t0 = time.time()
            frames, groups, nbytes = decode(clip, bpp)
            summary[path.name] = save_decoded(path, encoder, frames, groups, nbytes, keep_frames,
                                              codec_s=round(time.time() - t0, 1))
    return summary


def save_decoded(path: Path, encoder: torch.nn.Module, frames: np.ndarray, groups: np.ndarray, nbytes: int,
                 keep_frames: bool, arrays: dict | None = None, **info) -> dict:
    """VAE-encode decoded ``frames`` (cropped to a multiple of 8) and save ``latents``, ``groups``, ``bytes`` (the
    ``frames`` with ``keep_frames``, and ``arrays``) at ``path``; prints and returns a summary (with ``info``)."""
    t0 = time.time()
    frames = np.ascontiguousarray(crop_to_multiple(frames))
    with torch.no_grad():
        lat = encode_frames(encoder, frames)
    extra = {"frames": frames} if keep_frames else {}
    np.savez(path, latents=lat, groups=groups, bytes=nbytes, **extra, **(arrays or {}))
    summary = {"frames": len(frames), "groups": len(groups), "bytes": nbytes, **info,
               "vae_s": round(time.time() - t0, 1)}
    print(path.name, summary, flush=True)
    return summary


def make_warp_data(clips: tuple[str, ...] = TRAIN_CLIPS + VAL_CLIPS, rates: tuple[float, ...] = RATES,
                   cache_dir: Path = CACHE_DIR, force: bool = False) -> dict[str, dict]:
    """Encode/decode/VAE-encode every (clip, rate) not yet cached; returns a summary per file."""
    return cache_decoded(clips, rates, warp_path, decode_warp, cache_dir, force)


def load_warp_data(clips: tuple[str, ...], rates: tuple[float, ...] = RATES,
                   cache_dir: Path = CACHE_DIR) -> list[WarpClip]:
    """Every cached (clip, rate) of ``clips`` with its true latents (missing files are skipped)."""
    truth = load_latents(clips, cache_dir)
    out = []
    for clip in clips:
        for bpp in rates:
            path = warp_path(clip, bpp, cache_dir)
            if path.exists():
                d = np.load(path)
                out.append(WarpClip(clip, bpp, truth[clip], d["latents"], d["groups"]))
    return out
