"""TensorRT engine recipes: cache keys and shapes always; a real build where tensorrt-rtx is installed
(it builds portable engines ahead of time without a GPU)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tgvc_rt.backends.trt import BUILTIN_PROFILES, EngineKey, load_profiles, resolve_shapes

sys.path.insert(0, str(Path(__file__).parent))
from onnx_fixtures import build_tiny_model_set  # noqa: E402

REPO_PROFILES = Path(__file__).resolve().parents[1] / "engines" / "profiles.json"


def test_repo_profiles_match_builtin():
    assert json.loads(REPO_PROFILES.read_text())["profiles"] == BUILTIN_PROFILES
    assert load_profiles() == BUILTIN_PROFILES


def test_shapes_round_up_to_latent_size():
    rule = BUILTIN_PROFILES["unet"]["sample"]
    assert resolve_shapes(rule, (350, 286)) == [(1, 2, 32, 36, 44), (1, 16, 32, 36, 44), (1, 16, 32, 36, 44)]
    assert resolve_shapes(BUILTIN_PROFILES["vae_encoder"]["image"], (350, 286))[2] == (16, 3, 288, 352)
    frame = resolve_shapes(BUILTIN_PROFILES["interpolator"]["img0"], (350, 286))
    assert frame == [(1, 3, 64, 64), (4, 3, 320, 384), (4, 3, 320, 384)]  # the interpolator pads to /64


def test_engine_key_changes_with_every_field():
    base = dict(model_sha256="a", flavour="tensorrt_rtx", trt_version="1", arch="sm_90", precision="fp16", shapes="s")
    names = {EngineKey(**base).filename("unet")}
    for field in base:
        names.add(EngineKey(**{**base, field: base[field] + "x"}).filename("unet"))
    assert len(names) == 1 + len(base)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None and importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT (the trt extra) is not installed")
def test_build_engines_for_tiny_set(tmp_path):
    from tgvc_rt.backends.trt import build_engines

    models = build_tiny_model_set(tmp_path / "tiny")
    built = build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache")
    assert len(built) == 3 and all(p.stat().st_size > 0 for p in built)
    again = build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache")
    assert again == built  # served from the cache
