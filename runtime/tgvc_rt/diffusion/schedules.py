"""Noise schedules and timestep spacings (pure functions over plain numbers and arrays).

A schedule is described as in a model set's manifest (``docs/models.md``)::

    {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
     "num_train_timesteps": 1000, "prediction": "epsilon"}

``alphas_cumprod(...)`` turns it into ``abar[t]`` for ``t = 0 .. T-1`` (float64), the only thing the
samplers need. Timesteps are integers ``0 .. T-1``; sampling runs them in *descending* order.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tgvc_rt.errors import OptionError

SCHEDULE_TYPES = ("linear", "scaled_linear", "cosine")
SPACINGS = ("leading", "trailing", "linspace")


def betas_for(schedule: str = "scaled_linear", num_train_timesteps: int = 1000,
              beta_start: float = 0.00085, beta_end: float = 0.012,
              cosine_s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Per-step noise variances ``beta[t]``, float64 ``[T]``.

    * ``linear``: ``beta`` evenly spaced from ``beta_start`` to ``beta_end`` (DDPM).
    * ``scaled_linear``: ``sqrt(beta)`` evenly spaced, then squared (Stable Diffusion, DynamiCrafter).
    * ``cosine``: Nichol & Dhariwal's ``abar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``, with each
      beta clipped to ``max_beta`` (``cosine_s`` is their ``s``; beta_start/end are ignored).
    """
    T = int(num_train_timesteps)
    if T < 1:
        raise OptionError(f"num_train_timesteps must be >= 1, got {T}")
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if schedule == "scaled_linear":
        return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T, dtype=np.float64) ** 2
    if schedule == "cosine":
        t = np.arange(T + 1, dtype=np.float64) / T
        abar = np.cos((t + cosine_s) / (1.0 + cosine_s) * math.pi / 2.0) ** 2
        return np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)
    raise OptionError(f"unknown noise schedule {schedule!r} (expected one of {', '.join(SCHEDULE_TYPES)})")


def alphas_cumprod(schedule: str = "scaled_linear", num_train_timesteps: int = 1000,
                   beta_start: float = 0.00085, beta_end: float = 0.012, **kwargs) -> np.ndarray:
    """``abar[t] = prod_{i <= t} (1 - beta[i])``, float64 ``[T]``, decreasing from ~1 towards 0."""
    betas = betas_for(schedule, num_train_timesteps, beta_start, beta_end, **kwargs)
    return np.cumprod(1.0 - betas)


def alphas_cumprod_from_manifest(schedule: Mapping) -> np.ndarray:
    """``abar`` from a manifest's ``"schedule"`` object (only epsilon prediction is supported)."""
    prediction = schedule.get("prediction", "epsilon")
    if prediction != "epsilon":
        raise OptionError(f"unsupported model prediction type {prediction!r} (only 'epsilon')")
    return alphas_cumprod(schedule.get("type", "scaled_linear"),
                          int(schedule.get("num_train_timesteps", 1000)),
                          float(schedule.get("beta_start", 0.00085)),
                          float(schedule.get("beta_end", 0.012)))


def start_timestep(strength: float, num_train_timesteps: int = 1000) -> int:
    """Warm-start strength in [0, 1] -> the first (highest) timestep of the loop.

    ``strength = 1`` starts from ``T - 1`` (pure noise, no warm start); ``strength = s`` starts
    from ``round(s * T) - 1``, i.e. the sampler only walks the last ``s`` fraction of the
    diffusion. ``strength = 0`` (or anything giving a timestep below 0) returns ``-1``: no
    denoising at all, the warm-start latent is returned as is.
    """
    if not 0.0 <= float(strength) <= 1.0:
        raise OptionError(f"strength must be in [0, 1], got {strength}")
    return int(min(round(float(strength) * num_train_timesteps), num_train_timesteps)) - 1


def timesteps_for(steps: int, t_start: int, spacing: str = "trailing") -> np.ndarray:
    """``steps`` distinct integer timesteps in ``[0, t_start]``, descending, int64.

    The first one is ``t_start`` for ``trailing`` and ``linspace`` (so the loop starts exactly at
    the noise level of the warm start) and the last one is 0 for ``leading`` and ``linspace``:

    * ``trailing``: ``round(t_start + 1 - i * (t_start + 1) / steps) - 1`` for ``i = 0 .. steps-1``.
    * ``leading``:  ``i * ((t_start + 1) // steps)`` for ``i = steps-1 .. 0`` (diffusers' default).
    * ``linspace``: ``round(linspace(t_start, 0, steps))``.

    ``steps`` is capped at ``t_start + 1``; ``t_start < 0`` or ``steps == 0`` gives an empty array.
    """
    if steps < 0:
        raise OptionError(f"steps must be >= 0, got {steps}")
    if spacing not in SPACINGS:
        raise OptionError(f"unknown timestep spacing {spacing!r} (expected one of {', '.join(SPACINGS)})")
    span = int(t_start) + 1
    n = min(int(steps), max(span, 0))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if spacing == "trailing":
        ts = np.round(span - np.arange(n) * (span / n)).astype(np.int64) - 1
    elif spacing == "leading":
        ts = (np.arange(n)[::-1] * (span // n)).astype(np.int64)
    else:
        ts = np.round(np.linspace(span - 1, 0, n)).astype(np.int64)
    return ts


def warm_start_timesteps(steps: int, strength: float, num_train_timesteps: int = 1000,
                         spacing: str = "trailing") -> np.ndarray:
    """Timesteps of a warm-started loop: ``timesteps_for(steps, start_timestep(strength, T))``.

    Unlike diffusers' img2img (which drops ``1 - strength`` of a ``steps``-long schedule), here
    ``steps`` is the number of UNet evaluations actually run, spread over ``[0, t_start]``.
    """
    return timesteps_for(steps, start_timestep(strength, num_train_timesteps), spacing)
