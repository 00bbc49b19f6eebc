"""Real decoder data for the refiner: the interpolation decoder's frames of the shared clips.

The refiner (``train_refine.py``) corrects what ``--mode diffusion`` starts from: the frames of the
default decode (``--mode interp``: the model set's RIFE interpolator steered by the tracks). For every
clip and rate the real codec runs through its Python API (``encode_video`` with the default options,
``iter_decoded_frames`` in interp mode), and the decoded frames are VAE-encoded with TAEF2. Cached
as ``export/cache/interp_<clip>_<bpp>.npz`` (git-ignored):

* ``frames`` uint8 ``[N, H8, W8, 3]`` the decoded frames cropped to a multiple of 8 (keyframes as
  decoded, in-between frames from the interpolator);
* ``latents`` float32 ``[N, 32, H8/8, W8/8]`` their raw TAEF2 latents;
* ``groups`` int64 ``[G, 2]`` the inclusive (start, end) of every keyframe group; ``bytes`` the size.

The target is the clip itself (``truth_frames``), cropped the same way.

    python -m tgvc_export make-interp-data --bpp 0.003 0.005 0.01
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import TRAIN_CLIPS, VAL_CLIPS, VIDEO_DIR, crop_to_multiple
from .latents import CACHE_DIR
from .taef2 import load_taef2
from .warp_data import cache_decoded, code_clip, save_decoded

RATES = (0.003, 0.005, 0.01)  # bits per pixel of the training encodes (around the 0.005 operating point)


@dataclass
class InterpClip:
    """One encoded clip: true and decoded frames uint8 [N, H8, W8, 3], decoded latents, groups [G, 2]."""
    clip: str
    bpp: float
    truth: np.ndarray
    frames: np.ndarray
    latents: np.ndarray
    groups: np.ndarray


def interp_path(clip: str, bpp: float, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"interp_{clip}_{bpp:g}.npz"


def truth_frames(clip: str, video_dir: Path = VIDEO_DIR) -> np.ndarray:
    from tgvc_rt.io import read_video

    return np.ascontiguousarray(crop_to_multiple(read_video(video_dir / f"{clip}.y4m").frames))


def decode_interp(clip: str, bpp: float, video_dir: Path = VIDEO_DIR, seed: int = 0):
    """(decoded RGB uint8 [N, H, W, 3], groups [G, 2], stream bytes) of one clip at ``bpp``, default decode."""
    from tgvc_rt.io import read_video

    return code_clip(read_video(video_dir / f"{clip}.y4m"), bpp, "interp", seed)


def make_interp_data(clips: tuple[str, ...] = TRAIN_CLIPS + VAL_CLIPS, rates: tuple[float, ...] = RATES,
                     cache_dir: Path = CACHE_DIR, force: bool = False) -> dict[str, dict]:
    """Encode/decode/VAE-encode every (clip, rate) not yet cached; returns a summary per file."""
    return cache_decoded(clips, rates, interp_path, decode_interp, cache_dir, force, keep_frames=True)


def synth_path(name: str, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / "synth" / f"{name}.npz"


def make_synth_interp_data(stills_dir: Path, count: int, seed: int = 0, rates: tuple[float, ...] = RATES,
                           cache_dir: Path = CACHE_DIR, effort: int = 0) -> dict[str, dict]:
    """``count`` synthetic-motion clips (``synthetic_clips``), each coded at one rate of ``rates`` (in turn) with
    encoder ``effort`` (0: the fast keyframe coding), decoded in interp mode; cached as ``synth/<name>.npz``
    with the true frames (``truth``) beside the decoded ones."""
    from tgvc_rt.types import Video, VideoMeta

    from .keyframe_restore_data import still_paths
    from .synthetic_clips import SynthConfig, synthetic_clips

    torch.set_num_threads(2)
    (cache_dir / "synth").mkdir(parents=True, exist_ok=True)
    (cache_dir / "synth" / "stills.json").write_text(json.dumps(
        [[Path(p).relative_to(stills_dir).as_posix(), lic] for p, lic in still_paths(stills_dir)], indent=1))
    encoder = load_taef2()[0]
    summary = {}
    for i, (name, render) in enumerate(synthetic_clips(stills_dir, count, seed)):
        path = synth_path(name, cache_dir)
        if path.exists():
            summary[name] = {"cached": True}
            continue
        bpp = rates[i % len(rates)]
        t0 = time.time()
        frames = render()
        video = Video(frames, VideoMeta(frames.shape[2], frames.shape[1], SynthConfig.fps, 1))
        decoded, groups, nbytes = code_clip(video, bpp, "interp", seed=0, effort=effort)
        arrays = {"truth": np.ascontiguousarray(crop_to_multiple(frames)), "bpp": bpp}
        summary[name] = save_decoded(path, encoder, decoded, groups, nbytes, True, arrays, bpp=bpp,
                                     codec_s=round(time.time() - t0, 1))
    return summary


def load_synth_data(cache_dir: Path = CACHE_DIR, limit: int | None = None) -> list[InterpClip]:
    """The cached synthetic clips (training data only)."""
    out = []
    for path in sorted((cache_dir / "synth").glob("*.npz"))[:limit]:
        d = np.load(path)
        out.append(InterpClip(path.stem, float(d["bpp"]), d["truth"], d["frames"], d["latents"], d["groups"]))
    return out


def load_interp_data(clips: tuple[str, ...], rates: tuple[float, ...] = RATES,
                     cache_dir: Path = CACHE_DIR) -> list[InterpClip]:
    """Every cached (clip, rate) of ``clips`` with its true frames (missing files are skipped)."""
    out = []
    for clip in clips:
        truth = None
        for bpp in rates:
            path = interp_path(clip, bpp, cache_dir)
            if path.exists():
                truth = truth_frames(clip) if truth is None else truth
                d = np.load(path)
                out.append(InterpClip(clip, bpp, truth, d["frames"], d["latents"], d["groups"]))
    return out
