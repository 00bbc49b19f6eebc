import json

import pytest

from onnx_fixtures import build_tiny_model_set
from tgvc_rt.errors import ModelSetError
from tgvc_rt.models import (default_model_set_hash, describe_model_set, load_model_set, model_set_hash)


def test_load_verify_hash(tmp_path):
    path = build_tiny_model_set(tmp_path / "set")
    ms = load_model_set(path)
    assert ms.name == "tiny" and ms.latent_channels == 32 and not ms._sessions  # lazy
    h = model_set_hash(path)
    assert len(h) == 16 and ms.hash == h
    import hashlib
    assert h == hashlib.sha256((path / "manifest.json").read_bytes()).digest()[:16]
    assert ms.session("unet").inputs == ["sample", "timestep", "cond"]
    assert ms.alphas_cumprod().shape == (1000,)
    info = describe_model_set(path)
    assert info["hash"] == h.hex() and set(info["models"]) == {"vae_encoder", "vae_decoder", "unet"}
    with pytest.raises(ModelSetError):
        ms.session("tracker")


def test_corrupt_and_missing(tmp_path):
    path = build_tiny_model_set(tmp_path / "set")
    with (path / "unet.onnx").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelSetError, match="sha256"):
        load_model_set(path)
    (path / "unet.onnx").unlink()
    with pytest.raises(ModelSetError, match="missing"):
        load_model_set(path)
    with pytest.raises(ModelSetError):
        load_model_set(tmp_path / "nowhere")
    (path / "manifest.json").write_text(json.dumps({"format": 9}))
    with pytest.raises(ModelSetError):
        load_model_set(path, verify=False)


def test_default_hash_is_16_bytes():
    assert len(default_model_set_hash()) == 16
