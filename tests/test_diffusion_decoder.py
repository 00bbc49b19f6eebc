import numpy as np
import pytest

from onnx_fixtures import build_tiny_model_set
from tgvc_rt.decoder.diffusion import DiffusionOptions, diffuse_group
from tgvc_rt.diffusion.window import build_cond, plan_windows
from tgvc_rt.errors import OptionError
from tgvc_rt.models import load_model_set
from tgvc_rt.types import Tracks


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_model_set(build_tiny_model_set(tmp_path_factory.mktemp("tiny")))


def _group(F=7, H=36, W=44, K=12, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    xy = np.stack([rng.uniform(-4, W + 4, (K, F)), rng.uniform(-4, H + 4, (K, F))], -1)
    return frames, Tracks(xy, rng.uniform(size=(K, F)) > 0.2)


def test_plan_windows_rule():
    assert plan_windows(16) == [(0, 15)]
    assert plan_windows(31, 16) == [(0, 15), (15, 30)]
    assert plan_windows(20, 16) == [(0, 10), (10, 19)]
    for F in range(2, 80):
        w = plan_windows(F, 16)
        assert w[0][0] == 0 and w[-1][1] == F - 1
        assert all(b - a + 1 <= 16 for a, b in w)
        assert all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))
    with pytest.raises(OptionError):
        plan_windows(10, 1)


def test_build_cond():
    rng = np.random.default_rng(1)
    warp = rng.standard_normal((5, 32, 2, 3)).astype(np.float32)
    a, b = warp[0] + 1, warp[4] - 1
    c = build_cond(a, b, warp)
    assert c.shape == (5, 65, 2, 3)
    assert np.array_equal(c[0, :32], a) and np.array_equal(c[4, :32], b) and not c[1:4, :32].any()
    assert (c[[0, 4], 32] == 1).all() and not c[1:4, 32].any()
    assert np.array_equal(c[:, 33:], warp)


def test_shapes_passthrough_determinism(models):
    frames, tracks = _group()
    t = {}
    out = diffuse_group(frames, frames[0], frames[-1], tracks, models, DiffusionOptions(steps=3), seed=7,
                        timings=t)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[-1], frames[-1])
    again = diffuse_group(frames, frames[0], frames[-1], tracks, models, DiffusionOptions(steps=3), seed=7)
    assert np.array_equal(out, again)
    other = diffuse_group(frames, frames[0], frames[-1], tracks, models, DiffusionOptions(steps=3), seed=8)
    assert not np.array_equal(out, other)
    assert t["unet_calls"] == 3 and t["guidance_calls"] == 3
    assert all(t[k] >= 0 for k in ("vae_encode", "unet", "guidance", "vae_decode", "total"))


def test_windows_chain_and_no_guidance(models):
    frames, tracks = _group(F=12, H=24, W=32)
    opts = DiffusionOptions(steps=2, window=5, guidance_scale=0.0)
    t = {}
    out = diffuse_group(frames, frames[0], frames[-1], tracks, models, opts, seed=1, timings=t)
    assert out.shape == frames.shape and "guidance" not in t
    assert t["unet_calls"] == 2 * len(plan_windows(12, 5))
    same = diffuse_group(frames, frames[0], frames[-1], None, models, opts, seed=1)
    assert np.array_equal(out, same)


def test_strength_zero_latent_output_is_vae_roundtrip(models):
    frames, tracks = _group(F=4, H=16, W=16)
    t = {}
    out = diffuse_group(frames, frames[0], frames[-1], tracks, models,
                        DiffusionOptions(strength=0.0, output="latent"), seed=0, timings=t)
    assert "unet" not in t
    ae = models.autoencoder()
    np.testing.assert_array_equal(out[1:3], ae.decode(ae.encode(frames))[1:3])


def test_residual_output_adds_the_decoded_change_to_the_warp_frames(models):
    frames, tracks = _group(F=5, H=20, W=20)  # 20 px: padded to 24 for the VAE, cropped back
    same = diffuse_group(frames, frames[0], frames[-1], tracks, models, DiffusionOptions(strength=0.0), seed=0)
    assert np.array_equal(same, frames)  # nothing refined -> the warp frames, bit-exact (no VAE loss)
    opts = DiffusionOptions(steps=2, strength=0.5, residual_blur=0.0)
    res = diffuse_group(frames, frames[0], frames[-1], tracks, models, opts, seed=3).astype(np.int32)
    lat = diffuse_group(frames, frames[0], frames[-1], tracks, models,
                        DiffusionOptions(steps=2, strength=0.5, output="latent"), seed=3).astype(np.int32)
    ae = models.autoencoder()
    rt = ae.decode(ae.encode(np.pad(frames, ((0, 0), (0, 4), (0, 4), (0, 0)), mode="edge")))[:, :20, :20]
    want = np.clip(frames.astype(np.int32) + lat - rt, 0, 255)  # warp + D(z) - D(z_warp), up to rounding
    assert np.abs(res[1:-1] - want[1:-1]).max() <= 2
    blurred = diffuse_group(frames, frames[0], frames[-1], tracks, models,
                            DiffusionOptions(steps=2, strength=0.5, residual_blur=2.0), seed=3).astype(np.int32)
    assert np.abs(blurred - frames).std() < np.abs(res - frames).std()  # a smoother, smaller change
    with pytest.raises(OptionError):
        DiffusionOptions(output="pixels").validate()
    with pytest.raises(OptionError):
        DiffusionOptions(residual_blur=-1.0).validate()


def test_short_groups_and_errors(models):
    frames, tracks = _group(F=2)
    out = diffuse_group(frames, frames[0], frames[1], tracks, models)
    assert np.array_equal(out, frames)
    one = diffuse_group(frames[:1], frames[0], frames[0], None, models)
    assert one.shape == (1,) + frames.shape[1:]
    with pytest.raises(OptionError):
        diffuse_group(frames, frames[0], frames[1], None, models, DiffusionOptions(strength=2.0))
    f3, tr3 = _group(F=5)
    with pytest.raises(ValueError):
        diffuse_group(f3, f3[0], f3[-1], Tracks(tr3.xy[:, :4], tr3.vis[:, :4]), models)
