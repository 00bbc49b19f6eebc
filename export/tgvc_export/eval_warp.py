"""Does the UNet improve the real warp decoder? The decoder's own warm-start loop on real groups.

For every group (3 <= F <= 16) of the held-out clips' real encodes (warp_data.py): ``cond`` from
the decoded keyframe latents and the decoded warp latents (``tgvc_rt.diffusion.window.build_cond``),
warm start from the noised warp latents (``tgvc_rt.diffusion.warm_start``, seeded per group), DDIM
with the decoder's trailing timesteps, guidance off (``tgvc_rt.diffusion.samplers.sample_ddim``).
Reported: MSE of the in-between frames against the true latents (normalised units), for the warp
latents as they are and after refinement at each strength. Means are over in-between frames.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .group_windows import GroupPool


@torch.no_grad()
def refine_group(model: torch.nn.Module, decoded: np.ndarray, strength: float, steps: int,
                 seed: int) -> np.ndarray:
    """The runtime decoder's loop for one group (one window), guidance off: [F, C, h, w]."""
    from tgvc_rt.diffusion.samplers import sample_ddim
    from tgvc_rt.diffusion.schedules import alphas_cumprod, start_timestep, timesteps_for
    from tgvc_rt.diffusion.warm_start import warm_start
    from tgvc_rt.diffusion.window import build_cond

    abar = alphas_cumprod()
    t_start = start_timestep(strength, len(abar))
    ts = timesteps_for(steps, t_start, "trailing")
    if ts.size == 0:
        return decoded.copy()
    cond = torch.from_numpy(build_cond(decoded[0], decoded[-1], decoded))[None]
    x = warm_start(decoded, t_start, abar, np.random.default_rng(seed))

    def denoise(x_t, t):
        eps = model(torch.from_numpy(np.ascontiguousarray(x_t))[None], torch.tensor([float(t)]), cond)
        return eps[0].numpy()

    return sample_ddim(denoise, x, ts, abar)


def evaluate_groups(model: torch.nn.Module, pool: GroupPool, strengths=(0.2, 0.3, 0.4, 0.5),
                    steps: int = 6, seed: int = 0) -> dict:
    """{"warp": mse, "s=0.2": mse, ...} over every group of ``pool`` (frame-weighted)."""
    model.eval()
    sums = {"warp": 0.0, **{f"s={s:g}": 0.0 for s in strengths}}
    count = 0
    for g, (i, a, b) in enumerate(pool.groups.tolist()):
        truth, dec = pool.truth[i][a:b + 1], pool.decoded[i][a:b + 1]
        n = (b - a - 1) * truth[0].size
        sums["warp"] += float(((dec - truth)[1:-1] ** 2).sum())
        for s in strengths:
            out = refine_group(model, dec, s, steps, seed + g)
            sums[f"s={s:g}"] += float(((out - truth)[1:-1] ** 2).sum())
        count += n
    return {k: round(v / max(count, 1), 4) for k, v in sums.items()}


@torch.no_grad()
def evaluate_groups_pixels(model: torch.nn.Module, pool: GroupPool,
                           decode: Callable[[torch.Tensor], torch.Tensor], strength: float = 0.2,
                           steps: int = 6, seed: int = 0, max_groups: int = 0) -> dict:
    """Picture-space check of the same loop: PSNR (dB, RGB 0-1) of the TAEF2-decoded in-between frames
    against the decoded true latents, for the warp latents and after refinement (frame-weighted MSE).
    ``decode`` maps normalised latents to RGB (``PixelLoss.decode``); ``max_groups`` > 0 takes every
    n-th group so that about that many are decoded."""

    def dec(zn: np.ndarray) -> torch.Tensor:
        return decode(torch.from_numpy(np.ascontiguousarray(zn))).clamp(0, 1)

    rows = pool.groups.tolist()
    stride = max(1, len(rows) // max_groups) if max_groups else 1
    sums, count = {"warp": 0.0, f"s={strength:g}": 0.0}, 0
    for g, (i, a, b) in enumerate(rows):
        if g % stride:
            continue
        truth, warp = pool.truth[i][a:b + 1], pool.decoded[i][a:b + 1]
        out = refine_group(model, warp, strength, steps, seed + g)
        ref = dec(truth[1:-1])
        sums["warp"] += float(((dec(warp[1:-1]) - ref) ** 2).sum())
        sums[f"s={strength:g}"] += float(((dec(out[1:-1]) - ref) ** 2).sum())
        count += ref.numel()
    return {k: round(float(10 * np.log10(max(count, 1) / max(v, 1e-12))), 3) for k, v in sums.items()}
