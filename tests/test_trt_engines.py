"""TensorRT engine recipes: cache keys, shapes and the integrity-checked cache (with a fake builder that counts
builds) always; a real build where tensorrt-rtx is installed (it builds portable engines ahead of time without a
GPU)."""
import hashlib
import importlib.util
import json
import logging
import sys
from pathlib import Path

import pytest

from tgvc_rt.backends.engine_cache import sidecar_path, verify_engine
from tgvc_rt.backends.trt import (BUILTIN_PROFILES, EngineKey, adopt_engine, build_engines, engine_for, engine_key,
                                  load_or_build, load_profiles, profile_shapes, resolve_shapes, trtexec_shape_flags)
from tgvc_rt.errors import OptionError, TgvcError

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
    models = build_tiny_model_set(tmp_path / "tiny")
    built = build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache")
    assert len(built) == 3 and all(p.stat().st_size > 0 for p in built)
    assert all(verify_engine(p)[0] is not None for p in built)  # each with a matching sidecar
    stamps = [p.stat().st_mtime_ns for p in built]
    again = build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache")
    assert again == built and [p.stat().st_mtime_ns for p in built] == stamps  # served from the cache
    built[0].write_bytes(built[0].read_bytes()[:-1000])  # truncated: rebuilt by the real builder
    assert build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache") == built
    assert verify_engine(built[0])[0] is not None and [p.stat().st_mtime_ns for p in built[1:]] == stamps[1:]


# ---- the engine cache with integrity sidecars (a fake builder: no TensorRT needed) -----------------------
class CountingBuilder:
    """An engine_cache.EngineBuilder that makes deterministic fake engines and counts its builds."""

    flavour, version, arch = "fake", "0.1", "portable"

    def __init__(self):
        self.calls = []

    def __call__(self, onnx_path, shapes, precision):
        self.calls.append((Path(onnx_path).name, precision))
        return b"ENGINE" + hashlib.sha256(Path(onnx_path).read_bytes()).digest() + json.dumps(shapes).encode() * 50


SHAPES = {"x": [(1, 4), (2, 4), (8, 4)]}


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx bytes v1")
    return path


def test_cache_hit_does_not_rebuild(model, tmp_path):
    builder = CountingBuilder()
    first = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    again = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    assert again == first and len(builder.calls) == 1
    assert first.name == engine_key(model, SHAPES, "fp32", builder).filename("m")  # the filename scheme is kept
    record = json.loads(sidecar_path(first).read_text())
    assert record["size"] == first.stat().st_size
    assert record["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert record["key"]["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, sidecar_path(first).name])  # no temp files


def test_changed_onnx_is_a_new_engine(model, tmp_path):
    builder = CountingBuilder()
    first = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    model.write_bytes(b"onnx bytes v2")
    second = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    assert second != first and len(builder.calls) == 2
    assert engine_for(model, "m", SHAPES, "fp16", tmp_path / "cache", builder=builder) not in (first, second)
    assert len(builder.calls) == 3


def _flip_byte(engine):
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    engine.write_bytes(bytes(data))


def _other_key(engine):
    side = sidecar_path(engine)
    record = json.loads(side.read_text())
    record["key"]["model_sha256"] = "0" * 64
    side.write_text(json.dumps(record))


DAMAGE = {
    "flipped byte": (_flip_byte, "sha256"),
    "truncated": (lambda e: e.write_bytes(e.read_bytes()[:100]), "truncated"),
    "empty": (lambda e: e.write_bytes(b""), "truncated"),
    "sidecar deleted": (lambda e: sidecar_path(e).unlink(), "no integrity record"),
    "sidecar garbage": (lambda e: sidecar_path(e).write_text("{not json"), "unreadable integrity record"),
    "sidecar of another key": (_other_key, "another engine key"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_engine_is_rebuilt(model, tmp_path, caplog, damage):
    builder = CountingBuilder()
    engine = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    good = engine.read_bytes()
    spoil, why = DAMAGE[damage]
    spoil(engine)
    assert verify_engine(engine)[0] is None or damage == "sidecar of another key"
    with caplog.at_level(logging.WARNING, logger="tgvc_rt.backends.engine_cache"):
        again = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    assert again == engine and len(builder.calls) == 2
    assert engine.read_bytes() == good and verify_engine(engine)[0] == good
    assert any("rebuilding" in r.getMessage() and why in r.getMessage() for r in caplog.records)
    engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    assert len(builder.calls) == 2  # whole again: a hit


def test_missing_engine_with_sidecar_is_rebuilt(model, tmp_path):
    builder = CountingBuilder()
    engine = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    engine.unlink()
    assert engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder) == engine
    assert len(builder.calls) == 2 and verify_engine(engine)[0] is not None


def test_forced_rebuild(model, tmp_path):
    builder = CountingBuilder()
    engine = engine_for(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder)
    path, data = load_or_build(model, "m", SHAPES, "fp32", tmp_path / "cache", builder=builder, rebuild=True)
    assert path == engine and data == engine.read_bytes() and len(builder.calls) == 2


def test_cache_errors_are_one_line(model, tmp_path):
    with pytest.raises(OptionError, match="fp16 or fp32"):
        engine_for(model, "m", SHAPES, "int8", tmp_path, builder=CountingBuilder())
    with pytest.raises(TgvcError, match="no such ONNX file"):
        engine_for(tmp_path / "absent.onnx", "m", SHAPES, "fp32", tmp_path, builder=CountingBuilder())

    class Empty(CountingBuilder):
        def __call__(self, *args):
            return b""
    with pytest.raises(TgvcError, match="empty engine"):
        engine_for(model, "m", SHAPES, "fp32", tmp_path / "c", builder=Empty())


def test_build_engines_on_the_cache_with_a_fake_builder(tmp_path):
    models = build_tiny_model_set(tmp_path / "tiny")
    builder = CountingBuilder()
    built = build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache", builder=builder)
    assert sorted(name for name, _ in builder.calls) == ["unet.onnx", "vae_decoder.onnx", "vae_encoder.onnx"]
    assert [p.name.split("-")[0] for p in built] == [n for n in BUILTIN_PROFILES if n != "interpolator"]
    assert build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache",
                         builder=builder) == built
    assert len(builder.calls) == 3
    _flip_byte(built[1])
    assert build_engines(str(models), precision="fp32", max_size=(64, 48), cache_dir=tmp_path / "cache",
                         builder=builder) == built
    assert len(builder.calls) == 4 and builder.calls[-1][0] == built[1].name.split("-")[0] + ".onnx"


def test_profile_shapes():
    assert profile_shapes("vae_encoder", (350, 286)) == {"image": [(1, 3, 64, 64), (16, 3, 288, 352), (16, 3, 288, 352)]}
    with pytest.raises(OptionError, match="no engine profile"):
        profile_shapes("nope", (64, 64))


def test_trtexec_shape_flags():
    flags = trtexec_shape_flags(profile_shapes("vae_decoder", (64, 48)))
    assert flags == ["--minShapes=latent:1x32x6x8", "--optShapes=latent:16x32x6x8", "--maxShapes=latent:16x32x6x8"]


def test_adopt_engine_puts_a_foreign_engine_in_the_cache(model, tmp_path):
    (tmp_path / "trtexec.engine").write_bytes(b"built by trtexec")
    builder = CountingBuilder()
    path = adopt_engine(tmp_path / "trtexec.engine", model, "m", SHAPES, "fp16", tmp_path / "cache", builder=builder)
    assert engine_for(model, "m", SHAPES, "fp16", tmp_path / "cache", builder=builder) == path
    assert path.read_bytes() == b"built by trtexec" and builder.calls == []  # a hit, nothing built
    with pytest.raises(TgvcError, match="cannot read the engine"):
        adopt_engine(tmp_path / "absent.engine", model, "m", SHAPES, "fp16", tmp_path / "cache", builder=builder)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None and importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT (the trt extra) is not installed")
def test_workspace_cap(tmp_path, monkeypatch):
    from tgvc_rt.backends.trt import TrtBuilder

    models = build_tiny_model_set(tmp_path / "tiny")
    monkeypatch.setenv("TGVC_TRT_WORKSPACE_MB", "64")
    builder = TrtBuilder()
    assert builder.workspace_mb == 64
    engine = engine_for(models / "vae_decoder.onnx", "vae_decoder", profile_shapes("vae_decoder", (64, 48)), "fp32",
                        tmp_path / "cache", builder=builder)
    assert verify_engine(engine)[0] is not None
    monkeypatch.setenv("TGVC_TRT_WORKSPACE_MB", "lots")
    with pytest.raises(OptionError, match="whole number"):
        TrtBuilder()
