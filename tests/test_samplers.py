import numpy as np
import pytest

from tgvc_rt.diffusion.samplers import predict_x0, sample_ddim
from tgvc_rt.diffusion.schedules import alphas_cumprod, timesteps_for

ABAR = alphas_cumprod("scaled_linear", 1000)


def _oracle(x_clean):
    """A denoiser that knows the clean latent: eps = (x - sqrt(a) x_clean) / sqrt(1 - a)."""
    def denoise(x, t):
        a = ABAR[t]
        return ((x - np.sqrt(a) * x_clean) / np.sqrt(1 - a)).astype(np.float32)
    return denoise


def test_oracle_denoiser_recovers_clean_latent():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    x = rng.standard_normal(clean.shape).astype(np.float32)
    out = sample_ddim(_oracle(clean), x, timesteps_for(5, 999), ABAR)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, clean, atol=1e-4)


def test_deterministic_and_eta_uses_rng():
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x = rng.standard_normal(clean.shape).astype(np.float32)
    den = lambda x, t: np.tanh(x) * 0.5  # noqa: E731
    ts = timesteps_for(6, 700)
    a = sample_ddim(den, x, ts, ABAR, eta=0.7, rng=np.random.default_rng(5))
    b = sample_ddim(den, x, ts, ABAR, eta=0.7, rng=np.random.default_rng(5))
    c = sample_ddim(den, x, ts, ABAR, eta=0.7, rng=np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError):
        sample_ddim(den, x, ts, ABAR, eta=0.5)
    assert np.array_equal(sample_ddim(den, x, np.zeros(0, int), ABAR), x)


def test_guidance_update_formula_and_callback():
    """One step, eps held fixed: x0 moves by -s (1 - a) / a * g, and the final DDIM step returns x0."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    eps = rng.standard_normal(x.shape).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    t, s = 400, 3.0
    seen = []
    out = sample_ddim(lambda x_, t_: eps, x, [t], ABAR, guidance=lambda x0, t_: g, guidance_scale=s,
                      callback=seen.append)
    a = ABAR[t]
    expected = predict_x0(x, eps, a) - s * (1 - a) / a * g
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert len(seen) == 1 and seen[0]["t"] == t
    # two iterations move twice as far with a constant gradient
    out2 = sample_ddim(lambda x_, t_: eps, x, [t], ABAR, guidance=lambda x0, t_: g, guidance_scale=s,
                       guidance_iters=2)
    np.testing.assert_allclose(out2, predict_x0(x, eps, a) - 2 * s * (1 - a) / a * g, rtol=1e-5, atol=1e-4)
