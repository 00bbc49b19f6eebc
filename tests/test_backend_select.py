"""The backend fallback chain (backends/select.py): TensorRT runner -> ORT TensorRT -> ORT CUDA -> CPU."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tgvc_rt.backends import select
from tgvc_rt.backends.select import BackendProbe, choose_backend, describe_backends, probe_backends
from tgvc_rt.errors import OptionError

GOLDEN = Path(__file__).parent / "data" / "golden_sample_v1.tgv"


def _fake(monkeypatch, available: dict[str, str | None]):
    """Make ``probe`` report ``available``: backend -> None (runs) or the reason it does not."""
    monkeypatch.setattr(select, "probe", lambda name: BackendProbe(name, available.get(name) is None,
                                                                    available.get(name) or ""))


def test_every_backend_is_probed_and_cpu_always_runs():
    probes = probe_backends()
    assert [p.name for p in probes] == list(select.BACKENDS)
    assert probes[-1].available
    assert all(p.available or p.reason for p in probes)  # a backend that cannot run says why
    table = describe_backends()
    assert "--device auto" in table and "cpu" in table


@pytest.mark.parametrize("available, device, backend, passed", [
    ({}, "auto", "tensorrt", []),
    ({"tensorrt": "no TensorRT"}, "auto", "ort-tensorrt", ["tensorrt"]),
    ({"tensorrt": "no TensorRT", "ort-tensorrt": "no provider"}, "auto", "ort-cuda", ["tensorrt", "ort-tensorrt"]),
    ({"tensorrt": "a", "ort-tensorrt": "b", "ort-cuda": "c"}, "auto", "cpu", ["tensorrt", "ort-tensorrt", "ort-cuda"]),
    ({"tensorrt": "no TensorRT"}, "tensorrt", "ort-tensorrt", ["tensorrt"]),
    ({}, "cuda", "ort-cuda", []),
    ({}, "cpu", "cpu", []),
])
def test_the_chain_takes_the_first_that_runs(monkeypatch, available, device, backend, passed):
    _fake(monkeypatch, available)
    choice = choose_backend(device)
    assert choice.backend == backend
    assert [p.name for p in choice.passed_over] == passed
    assert choice.precision == ("fp32" if backend == "cpu" else "fp16")
    for name in passed:
        assert available[name] in choice.describe()


def test_forcing_a_backend_that_cannot_run_is_one_clear_error(monkeypatch):
    _fake(monkeypatch, {"tensorrt": "no TensorRT here", "ort-tensorrt": "no provider", "ort-cuda": "no GPU"})
    with pytest.raises(OptionError, match="--device tensorrt: no backend.*no TensorRT here.*no provider"):
        choose_backend("tensorrt")
    with pytest.raises(OptionError, match="--device cuda: no backend.*no GPU"):
        choose_backend("cuda")
    with pytest.raises(OptionError, match="choose one of"):
        choose_backend("tpu")


def test_auto_without_a_gpu_backend_is_cpu_with_fp32_models(monkeypatch):
    from tgvc_rt.models import load_model_set

    _fake(monkeypatch, {"tensorrt": "x", "ort-tensorrt": "y", "ort-cuda": "z"})
    auto = load_model_set("default", device="auto", verify=False)
    assert auto.runs_on_cpu and not auto.model_path("interpolator").name.endswith("_fp16.onnx")
    _fake(monkeypatch, {"tensorrt": "x", "ort-tensorrt": "y"})
    assert auto.model_path("unet").name == "unet_fp16.onnx"


def test_cli_forcing_an_unavailable_device_fails_before_the_work(tmp_path):
    out = tmp_path / "out.y4m"
    for device in ("tensorrt", "cuda"):
        if choose_backend_or_none(device) is not None:
            pytest.skip(f"{device} runs here")
        r = subprocess.run([sys.executable, "-m", "tgvc_rt", "decode", str(GOLDEN), "-o", str(out), "--device", device],
                           capture_output=True, text=True)
        assert r.returncode == 2 and not out.exists()
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"tgvc-rt: error: --device {device}: no backend")
    r = subprocess.run([sys.executable, "-m", "tgvc_rt", "info", "--backends"], capture_output=True, text=True)
    assert r.returncode == 0 and "ort-cuda" in r.stdout and "--device auto" in r.stdout


def choose_backend_or_none(device: str):
    try:
        return choose_backend(device)
    except OptionError:
        return None


def test_auto_goes_down_the_chain_when_a_backend_cannot_start_a_model(monkeypatch):
    """A backend that probes well but fails to load the first model is passed over, with why."""
    import tgvc_rt.backends as backends
    from tgvc_rt.errors import ModelSetError
    from tgvc_rt.models import load_model_set

    _fake(monkeypatch, {"tensorrt": "no TensorRT"})  # ort-tensorrt and ort-cuda "probe well"
    plain = backends.open_model_session
    tried = []

    def flaky(models, key):
        tried.append(models.backend.backend)
        if models.backend.backend != "cpu":
            raise ModelSetError(f"{key}: onnxruntime could not start the provider")
        return plain(models, key)

    monkeypatch.setattr(backends, "open_model_session", flaky)
    models = load_model_set("default", device="auto", verify=False)
    session = models.session("interpolator")
    assert tried == ["ort-tensorrt", "ort-cuda", "cpu"] and session.backend == "cpu"
    assert models.backend.backend == "cpu" and "could not start interpolator" in models.backend.describe()
    forced = load_model_set("default", device="cuda", verify=False)
    with pytest.raises(ModelSetError, match="could not start"):
        forced.session("interpolator")  # a forced device does not fall back
