import numpy as np
import pytest

from onnx_fixtures import build_tiny_model_set
from tgvc_rt.backends import Autoencoder, Denoiser, open_session
from tgvc_rt.backends.ort import providers_for
from tgvc_rt.errors import ModelSetError, OptionError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("tiny"))


def test_session_names_and_run(tiny):
    s = open_session(tiny / "unet.onnx", "cpu", threads=1)
    assert s.inputs == ["sample", "timestep", "cond"] and s.outputs == ["eps"]
    rng = np.random.default_rng(0)
    feeds = {"sample": rng.standard_normal((1, 5, 32, 3, 4)).astype(np.float32),
             "timestep": np.array([10.0], np.float32),
             "cond": rng.standard_normal((1, 5, 65, 3, 4)).astype(np.float32)}
    first = s.run(feeds)["eps"].copy()
    assert first.shape == (1, 5, 32, 3, 4) and first.dtype == np.float32
    out = s.run(feeds)["eps"]               # bound, preallocated buffer
    again = s.run(feeds)["eps"]
    assert np.shares_memory(out, again)     # no reallocation at fixed shapes
    np.testing.assert_array_equal(again, first)
    plain = open_session(tiny / "unet.onnx", io_binding=False).run(feeds)["eps"]
    np.testing.assert_allclose(plain, first, rtol=1e-6, atol=1e-6)
    # a new shape gets new buffers, dtype of feeds is adapted
    feeds2 = dict(feeds, sample=feeds["sample"][:, :3].astype(np.float64), cond=feeds["cond"][:, :3])
    assert s.run(feeds2)["eps"].shape == (1, 3, 32, 3, 4)


def test_devices():
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(OptionError):
        providers_for("tpu")
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(OptionError):
            providers_for("cuda")


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelSetError):
        open_session(bad)


def test_wrappers(tiny):
    import json
    m = json.loads((tiny / "manifest.json").read_text())
    ae = Autoencoder(open_session(tiny / "vae_encoder.onnx"), open_session(tiny / "vae_decoder.onnx"),
                     m["latent_mean"], m["latent_std"], batch=2)
    img = np.zeros((3, 16, 24, 3), np.uint8)
    img[:] = np.linspace(0, 255, 24)[None, None, :, None].astype(np.uint8)
    z = ae.encode(img)
    assert z.shape == (3, 32, 2, 3) and z.dtype == np.float32
    rec = ae.decode(z)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    assert np.abs(rec.astype(int) - img).mean() < 3
    d = Denoiser(open_session(tiny / "unet.onnx"))
    eps = d(z, 100, np.zeros((3, 65, 2, 3), np.float32))
    assert eps.shape == z.shape


def test_auto_without_a_gpu_provider_loads_the_fp32_models(monkeypatch):
    """``--device auto`` on a machine whose onnxruntime has no GPU provider decodes like ``cpu``."""
    import onnxruntime

    from tgvc_rt.models import load_model_set

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    auto = load_model_set("default", device="auto", verify=False)
    cpu = load_model_set("default", device="cpu", verify=False)
    for key in ("vae_decoder", "unet", "interpolator"):
        assert auto.model_path(key) == cpu.model_path(key)
        assert not auto.model_path(key).name.endswith("_fp16.onnx")
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert auto.model_path("unet").name == "unet_fp16.onnx"
