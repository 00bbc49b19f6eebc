import numpy as np
import pytest

from tgvc_rt.diffusion.schedules import (alphas_cumprod, alphas_cumprod_from_manifest, betas_for,
                                         start_timestep, timesteps_for, warm_start_timesteps)
from tgvc_rt.errors import OptionError


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "cosine"])
def test_schedules_monotone(kind):
    betas = betas_for(kind, 1000)
    abar = alphas_cumprod(kind, 1000)
    assert betas.shape == abar.shape == (1000,)
    assert (betas > 0).all() and (betas < 1).all()
    assert (np.diff(abar) < 0).all() and 0 < abar[-1] < abar[0] < 1


def test_scaled_linear_values():
    betas = betas_for("scaled_linear", 1000, 0.00085, 0.012)
    assert betas[0] == pytest.approx(0.00085) and betas[-1] == pytest.approx(0.012)
    assert np.sqrt(betas[500]) == pytest.approx((np.sqrt(0.00085) * 499 + np.sqrt(0.012) * 500) / 999)
    abar = alphas_cumprod_from_manifest({"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                                         "num_train_timesteps": 1000, "prediction": "epsilon"})
    assert abar[-1] == pytest.approx(0.0047, abs=2e-4)  # the Stable Diffusion schedule's last abar


def test_bad_schedule_and_prediction():
    with pytest.raises(OptionError):
        betas_for("quadratic")
    with pytest.raises(OptionError):
        alphas_cumprod_from_manifest({"prediction": "v_prediction"})


def test_start_timestep():
    assert start_timestep(1.0, 1000) == 999
    assert start_timestep(0.5, 1000) == 499
    assert start_timestep(0.0, 1000) == -1
    with pytest.raises(OptionError):
        start_timestep(1.5)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_descending_distinct(spacing):
    for steps, t0 in [(6, 499), (1, 999), (50, 999), (10, 5)]:
        ts = timesteps_for(steps, t0, spacing)
        assert ts.dtype == np.int64 and ts.size == min(steps, t0 + 1)
        assert (np.diff(ts) < 0).all() and ts.min() >= 0 and ts.max() <= t0


def test_spacing_endpoints():
    assert timesteps_for(6, 499, "trailing").tolist() == [499, 416, 332, 249, 166, 82]
    assert timesteps_for(6, 499, "leading").tolist() == [415, 332, 249, 166, 83, 0]
    assert timesteps_for(4, 999, "linspace").tolist() == [999, 666, 333, 0]
    assert timesteps_for(0, 499).size == 0 and timesteps_for(5, -1).size == 0
    assert warm_start_timesteps(6, 0.5, 1000).tolist() == timesteps_for(6, 499).tolist()
    with pytest.raises(OptionError):
        timesteps_for(3, 10, "karras")
