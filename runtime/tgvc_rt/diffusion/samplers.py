"""Samplers: short pure functions in the style of k-diffusion's ``sampling.py``.

A sampler never knows what runs the network or the guidance:

* ``denoise(x, t) -> eps``: the model's predicted noise for latent ``x`` at integer timestep ``t``
  (same shape as ``x``; the returned array may be a reused buffer, it is only read before the next
  ``denoise`` call).
* ``guidance(x0, t) -> dL/dx0``: gradient of the trajectory loss at the predicted clean latent
  (``tgvc_rt.diffusion.guidance`` in NumPy, or the CUDA kernel; same signature).
* ``callback(info)``: called after every step with a dict ``{"i", "t", "x", "x0", "eps"}``.

Randomness only comes from the ``rng`` passed in (a ``numpy.random.Generator`` seeded from the
bitstream's seed), so a run is bit-exactly reproducible on the same machine and backend.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Denoise = Callable[[np.ndarray, int], np.ndarray]
Guidance = Callable[[np.ndarray, int], np.ndarray]


def predict_x0(x: np.ndarray, eps: np.ndarray, abar: float) -> np.ndarray:
    """``x0 = (x - sqrt(1 - abar) * eps) / sqrt(abar)`` (epsilon prediction)."""
    return (x - math.sqrt(1.0 - abar) * eps) * (1.0 / math.sqrt(abar))


def apply_guidance(x: np.ndarray, eps: np.ndarray, x0: np.ndarray, abar: float, t: int,
                   guidance: Guidance, scale: float, iters: int = 1,
                   denoise: Denoise | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The guidance update of ``docs/guidance.md``, repeated ``iters`` times.

    ``x <- x - scale * (1 - abar) * dL/dx0 / sqrt(abar)``. ``dL/dx`` is taken through the x0
    formula only, with eps held fixed, so x0 moves by ``-scale * (1 - abar) / abar * dL/dx0``.
    With ``denoise`` given, eps (and x0) are re-predicted after every iteration (costs one UNet
    call each); otherwise eps is held fixed (the default and the paper's choice).
    Returns the updated ``(x, eps, x0)``.
    """
    for _ in range(max(int(iters), 0)):
        grad = guidance(x0, t)
        x = x - (scale * (1.0 - abar) / math.sqrt(abar)) * grad.astype(x.dtype, copy=False)
        if denoise is not None:
            eps = denoise(x, t)
        x0 = predict_x0(x, eps, abar)
    return x, eps, x0


def sample_ddim(denoise: Denoise, x: np.ndarray, timesteps: np.ndarray, alphas_cumprod: np.ndarray,
                eta: float = 0.0, rng: np.random.Generator | None = None,
                guidance: Guidance | None = None, guidance_scale: float = 1.0,
                guidance_iters: int = 1, guidance_repredict: bool = False,
                final_abar: float = 1.0,
                callback: Callable[[dict], None] | None = None) -> np.ndarray:
    """DDIM (Song et al. 2021) over descending integer ``timesteps``; returns the clean latent.

    ``x`` is the starting latent at noise level ``timesteps[0]`` (pure noise, or a warm start from
    ``tgvc_rt.diffusion.warm_start``). Per step ``i`` with ``a = abar[t_i]`` and
    ``a' = abar[t_{i+1}]`` (``final_abar`` after the last step, 1.0 = fully clean):

    1. ``eps = denoise(x, t_i)``, ``x0 = (x - sqrt(1 - a) eps) / sqrt(a)``;
    2. guidance (when given): ``x <- x - s (1 - a) dL/dx0 / sqrt(a)``, x0 recomputed
       (``guidance_iters`` times; eps re-predicted only with ``guidance_repredict``);
    3. ``sigma = eta * sqrt((1 - a') / (1 - a) * (1 - a / a'))``,
       ``x <- sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps + sigma * noise``.

    ``eta = 0`` is deterministic; ``eta > 0`` draws ``noise`` from ``rng`` (required then).
    The arithmetic stays in ``x.dtype`` (float32 in the codec). Empty ``timesteps`` returns ``x``.
    """
    timesteps = np.asarray(timesteps, dtype=np.int64)
    if eta > 0.0 and rng is None:
        raise ValueError("sample_ddim with eta > 0 needs an rng")
    x = np.array(x, copy=True)
    for i, t in enumerate(timesteps.tolist()):
        a = float(alphas_cumprod[t])
        a_prev = float(alphas_cumprod[timesteps[i + 1]]) if i + 1 < len(timesteps) else float(final_abar)
        eps = denoise(x, t)
        x0 = predict_x0(x, eps, a)
        if guidance is not None and guidance_scale != 0.0:
            x, eps, x0 = apply_guidance(x, eps, x0, a, t, guidance, guidance_scale, guidance_iters,
                                        denoise if guidance_repredict else None)
        sigma = eta * math.sqrt(max((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev), 0.0)) if eta > 0 else 0.0
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1.0 - a_prev - sigma * sigma, 0.0)) * eps
        if sigma > 0.0:
            x += sigma * rng.standard_normal(x.shape, dtype=np.float32).astype(x.dtype, copy=False)
        x = x.astype(x0.dtype, copy=False)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0": x0, "eps": eps})
    return x
