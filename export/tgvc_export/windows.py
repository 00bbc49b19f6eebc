"""Training windows of normalised latents: sampling, augmentation, conditioning and the warp proxy.

A window is F consecutive (strided) frames of one clip, cropped, maybe flipped and reversed. Its
``cond`` follows docs/models.md: keyframe latents at frames 0 and F-1 (channels 0..31), keyframe
mask (32), warp latents (33..64).

The real warp decoder is not available at training time, so the warp channel is a *proxy*
(``warp_proxy``): a blend ``lam * degraded(truth) + (1 - lam) * crossfade(keyframes)`` where
``degraded`` shifts each frame by a smooth random displacement field (mis-registered motion),
blurs it and adds noise, and ``crossfade`` is the linear interpolation of the two keyframe latents.
Keyframes of the proxy equal the true keyframes. The model thus learns to refine a rough
interpolation whose error ranges from "motion slightly wrong" to "no motion at all".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class WindowConfig:
    frames: int = 16  # window length F of most batches
    short_prob: float = 0.3  # probability that a batch uses a shorter F in [min_frames, frames)
    min_frames: int = 5  # shortest F sampled
    crop_h: int = 16  # latent crop height (128 px)
    crop_w: int = 20  # latent crop width (160 px)
    strides: tuple[int, ...] = (1, 1, 1, 2, 2, 3)  # temporal strides, drawn uniformly
    hflip_prob: float = 0.5
    reverse_prob: float = 0.5
    # warp proxy
    lam_choices: tuple[float, ...] = (0.0, 1.0)  # lam for a fraction of windows ...
    lam_fixed_prob: float = 0.5  # ... drawn from lam_choices with this probability, else U(0, 1)
    max_shift: float = 0.6  # max global shift per frame, latent px (x8 for pixels)
    flow_amp: float = 0.5  # amplitude of the smooth random displacement field, latent px
    max_blur: float = 1.0  # max Gaussian blur sigma, latent px
    max_noise: float = 0.2  # max std of added Gaussian noise (normalised latent units)


def sample_windows(rng: np.random.Generator, clips: list[np.ndarray], batch: int,
                   cfg: WindowConfig) -> np.ndarray:
    """``batch`` windows [B, F, C, h, w] of normalised latents from ``clips`` ([N, C, H, W] each)."""
    frames = cfg.frames
    if rng.random() < cfg.short_prob:
        frames = int(rng.integers(cfg.min_frames, cfg.frames))
    lengths = np.array([len(c) for c in clips], float)
    out = []
    for _ in range(batch):
        clip = clips[rng.choice(len(clips), p=lengths / lengths.sum())]
        strides = [s for s in cfg.strides if (frames - 1) * s + 1 <= len(clip)] or [1]
        stride = int(rng.choice(strides))
        span = min((frames - 1) * stride + 1, len(clip))
        t0 = int(rng.integers(0, len(clip) - span + 1))
        idx = np.arange(t0, t0 + frames * stride, stride)[:frames].clip(0, len(clip) - 1)
        ch, cw = min(cfg.crop_h, clip.shape[2]), min(cfg.crop_w, clip.shape[3])
        y0 = int(rng.integers(0, clip.shape[2] - ch + 1))
        x0 = int(rng.integers(0, clip.shape[3] - cw + 1))
        win = clip[idx, :, y0:y0 + ch, x0:x0 + cw]
        if rng.random() < cfg.hflip_prob:
            win = win[..., ::-1]
        if rng.random() < cfg.reverse_prob:
            win = win[::-1]
        out.append(_pad_to(win, cfg.crop_h, cfg.crop_w))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _pad_to(win: np.ndarray, h: int, w: int) -> np.ndarray:
    ph, pw = h - win.shape[2], w - win.shape[3]
    if ph <= 0 and pw <= 0:
        return win
    return np.pad(win, ((0, 0), (0, 0), (0, max(ph, 0)), (0, max(pw, 0))), mode="edge")


def crossfade(x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of frames 0 and F-1 of x [B, F, C, h, w]."""
    frames = x.shape[1]
    a = torch.linspace(0.0, 1.0, frames).view(1, frames, 1, 1, 1)
    return (1 - a) * x[:, :1] + a * x[:, -1:]


def _gauss_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap Gaussian blur of x [N, C, h, w] with per-item sigma [N]."""
    taps = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-0.5 * (taps[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # [N, 5]
    n, c, h, w = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate")
    y = sum(k[:, i, None, None, None] * y[:, :, :, i:i + w] for i in range(5))
    return sum(k[:, i, None, None, None] * y[:, :, i:i + h, :] for i in range(5))


def degrade(x: torch.Tensor, g: torch.Generator, cfg: WindowConfig) -> torch.Tensor:
    """Mis-registered, blurred, noisy copy of x [B, F, C, h, w] (per frame random field)."""
    b, frames, c, h, w = x.shape
    n = b * frames
    flat = x.reshape(n, c, h, w)
    shift = (torch.rand(n, 2, 1, 1, generator=g) * 2 - 1) * cfg.max_shift
    field = F.interpolate(torch.randn(n, 2, 3, 3, generator=g), size=(h, w), mode="bicubic",
                          align_corners=True) * cfg.flow_amp
    disp = shift + field  # latent px, [n, 2 (dx, dy), h, w]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    gx = (xs + disp[:, 0]) / max(w - 1, 1) * 2 - 1
    gy = (ys + disp[:, 1]) / max(h - 1, 1) * 2 - 1
    warped = F.grid_sample(flat, torch.stack([gx, gy], dim=-1), mode="bilinear",
                           padding_mode="border", align_corners=True)
    blurred = _gauss_blur(warped, torch.rand(n, generator=g) * cfg.max_blur)
    noise = torch.randn(flat.shape, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) * cfg.max_noise)
    return (blurred + noise).reshape(b, frames, c, h, w)


def warp_proxy(x: torch.Tensor, g: torch.Generator, cfg: WindowConfig) -> torch.Tensor:
    """Proxy of the warp decoder's latents for clean windows x [B, F, C, h, w] (see module doc)."""
    b = x.shape[0]
    lam = torch.rand(b, generator=g)
    fixed = torch.rand(b, generator=g) < cfg.lam_fixed_prob
    choice = torch.tensor(cfg.lam_choices)[torch.randint(len(cfg.lam_choices), (b,), generator=g)]
    lam = torch.where(fixed, choice, lam).view(b, 1, 1, 1, 1)
    proxy = lam * degrade(x, g, cfg) + (1 - lam) * crossfade(x)
    proxy[:, 0], proxy[:, -1] = x[:, 0], x[:, -1]
    return proxy


def make_cond(keys: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """cond [B, F, 65, h, w] from keyframe-bearing latents ``keys`` (frames 0/F-1 used) and ``warp``."""
    b, frames, c, h, w = warp.shape
    cond = torch.zeros(b, frames, 2 * c + 1, h, w)
    cond[:, 0, :c], cond[:, -1, :c] = keys[:, 0], keys[:, -1]
    cond[:, 0, c], cond[:, -1, c] = 1.0, 1.0
    cond[:, :, c + 1:] = warp
    return cond
