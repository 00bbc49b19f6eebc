"""Does the trained UNet refine a rough interpolation? Warm-started DDIM on held-out clips.

For 16-frame windows of the validation clips: the warp channel is a proxy (crossfade of the
keyframes, or the degraded truth, see windows.py); z starts as the proxy noised to ``strength``,
``steps`` DDIM steps run down to t = 0 (as the runtime decoder does), and the mean squared error
of the in-between frames (normalised latent units) is compared with that of the proxy itself.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .data import TRAIN_CLIPS, VAL_CLIPS
from .latents import load_latents
from .train_unet import CHECKPOINT_DIR, alphas_cumprod, load_trained
from .windows import WindowConfig, crossfade, degrade, make_cond


@torch.no_grad()
def refine(model, proxy: torch.Tensor, keys: torch.Tensor, strength: float, steps: int,
           g: torch.Generator) -> torch.Tensor:
    abar = torch.from_numpy(alphas_cumprod()).float()
    t_start = int(round(strength * 999))
    ts = np.linspace(t_start, 0, steps + 1).round().astype(int)
    a = abar[ts[0]]
    z = a.sqrt() * proxy + (1 - a).sqrt() * torch.randn(proxy.shape, generator=g)
    cond = make_cond(keys, proxy)
    x0 = proxy
    for t, t_prev in zip(ts[:-1], ts[1:]):
        a, a_prev = abar[t], abar[t_prev]
        eps = model(z, torch.full((z.shape[0],), float(t)), cond)
        x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
        z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x0


def evaluate_refinement(checkpoint: Path = CHECKPOINT_DIR / "unet_default.pt", strength: float = 0.4,
                        steps: int = 6, frames: int = 16) -> dict:
    model, record = load_trained(checkpoint)
    mean = np.asarray(record["latent_mean"], np.float32)[None, :, None, None]
    std = np.asarray(record["latent_std"], np.float32)[None, :, None, None]
    g = torch.Generator().manual_seed(0)
    cfg = replace(WindowConfig(), max_noise=0.0)
    out = {}
    for split, clips in (("val", VAL_CLIPS), ("train", TRAIN_CLIPS[:1])):
        lat = load_latents(clips)
        res = {"crossfade": [], "degraded": []}
        for z in lat.values():
            zn = torch.from_numpy((z - mean) / std)
            starts = range(0, len(zn) - frames + 1, frames - 1)
            x = torch.stack([zn[s:s + frames] for s in starts])  # [W, F, C, h, w]
            for kind in res:
                proxy = crossfade(x) if kind == "crossfade" else degrade(x, g, cfg)
                proxy[:, 0], proxy[:, -1] = x[:, 0], x[:, -1]
                ref = refine(model, proxy, x, strength, steps, g)
                mid = slice(1, frames - 1)
                res[kind].append((float(((proxy - x)[:, mid] ** 2).mean()), float(((ref - x)[:, mid] ** 2).mean())))
        out[split] = {k: {"proxy_mse": round(float(np.mean([a for a, _ in v])), 4),
                          "refined_mse": round(float(np.mean([b for _, b in v])), 4)} for k, v in res.items()}
    out["settings"] = {"strength": strength, "steps": steps, "frames": frames,
                       "val_clips": list(VAL_CLIPS), "train_clip": TRAIN_CLIPS[0]}
    return out
