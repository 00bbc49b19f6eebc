"""The diffusion schedule of every model set (docs/models.md): scaled_linear, 1000 steps, epsilon.

The manifest object is written here; the arithmetic is the runtime's (tgvc_rt.diffusion.schedules),
so training, export and decoding share one rule.
"""
from __future__ import annotations

import numpy as np

from tgvc_rt.diffusion.schedules import alphas_cumprod_from_manifest

SCHEDULE = {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
            "num_train_timesteps": 1000, "prediction": "epsilon"}


def alphas_cumprod(schedule: dict = SCHEDULE) -> np.ndarray:
    """abar_t, t = 0..T-1, of a manifest schedule object (float64)."""
    return alphas_cumprod_from_manifest(schedule)
