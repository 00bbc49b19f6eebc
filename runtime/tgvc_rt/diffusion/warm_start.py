"""Warm start (SDEdit): begin denoising at an intermediate timestep from a noised initial guess.

**Warm start.** Instead of starting from pure noise at ``T - 1`` and running ~50 steps, the loop
starts at ``t_start = round(strength * T) - 1`` (``schedules.start_timestep``) from the forward-
noised latent of the warp decoder's frames, ``z = sqrt(abar[t_start]) * z_warp +
sqrt(1 - abar[t_start]) * n`` with ``n ~ N(0, I)`` drawn from the group's seeded generator, and runs
``steps`` DDIM steps spread over ``[0, t_start]`` (``schedules.warm_start_timesteps``). The window's
anchor frames use the anchor latents as their clean value. ``strength`` trades fidelity to the warp
decoder (low) against freedom of the generative model (high); ``strength = 1`` is sampling from
noise, ``strength = 0`` returns the warp latents unchanged (no UNet call).
"""
from __future__ import annotations

import math

import numpy as np


def warm_start(z_clean: np.ndarray, t_start: int, alphas_cumprod: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Forward-noise ``z_clean`` to timestep ``t_start`` (a copy of it when ``t_start < 0``), float32.

    Draws exactly ``z_clean.size`` float32 normals from ``rng`` when ``t_start >= 0``.
    """
    z_clean = np.asarray(z_clean, dtype=np.float32)
    if t_start < 0:
        return z_clean.copy()
    a = float(alphas_cumprod[t_start])
    noise = rng.standard_normal(z_clean.shape, dtype=np.float32)
    return (math.sqrt(a) * z_clean + math.sqrt(1.0 - a) * noise).astype(np.float32, copy=False)
