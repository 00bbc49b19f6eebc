"""The diffusion schedule of every model set (docs/models.md): scaled_linear, 1000 steps, epsilon."""
from __future__ import annotations

import numpy as np

SCHEDULE = {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
            "num_train_timesteps": 1000, "prediction": "epsilon"}


def alphas_cumprod(schedule: dict = SCHEDULE) -> np.ndarray:
    """abar_t, t = 0..T-1, of the scaled_linear schedule (betas linear in sqrt space)."""
    betas = np.linspace(schedule["beta_start"] ** 0.5, schedule["beta_end"] ** 0.5,
                        schedule["num_train_timesteps"], dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)
