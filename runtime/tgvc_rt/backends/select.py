"""Which model runtime runs a decode: the fallback chain TensorRT -> ONNX Runtime CUDA -> CPU.

Four backends, best first:

* ``tensorrt``: our engine runner (``backends/trt_runner.py``): TensorRT or TensorRT-RTX engines from the
  engine cache, our device buffers, our CUDA stream;
* ``ort-tensorrt``: ONNX Runtime's TensorRT execution provider (its own engine cache, FP16, profiles);
* ``ort-cuda``: ONNX Runtime's CUDA execution provider (onnxruntime-gpu);
* ``cpu``: ONNX Runtime on the CPU (always there).

``--device`` names a set of them: ``cpu``; ``cuda`` (ort-cuda); ``tensorrt`` (tensorrt, else
ort-tensorrt); ``auto`` (all four, best first). ``choose_backend`` probes them in that order, takes the
first that can run here and says why each better one could not; forcing a device none of whose
backends can run is a one-line ``OptionError``. Probing never raises and never loads a model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tgvc_rt.errors import OptionError

DEVICES = ("cpu", "cuda", "tensorrt", "auto")
BACKENDS = ("tensorrt", "ort-tensorrt", "ort-cuda", "cpu")
CHAINS = {
    "cpu": ("cpu",),
    "cuda": ("ort-cuda",),
    "tensorrt": ("tensorrt", "ort-tensorrt"),
    "auto": BACKENDS,
}
GPU_BACKENDS = ("tensorrt", "ort-tensorrt", "ort-cuda")
ORT_PROVIDER = {"ort-tensorrt": "TensorrtExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
                "cpu": "CPUExecutionProvider"}


@dataclass(frozen=True)
class BackendProbe:
    """Whether ``name`` can run here, and if not, why (one line)."""

    name: str
    available: bool
    reason: str = ""


@dataclass(frozen=True)
class BackendChoice:
    """The backend a device string resolves to, and the probes of the better ones passed over."""

    device: str
    backend: str
    passed_over: tuple[BackendProbe, ...] = field(default_factory=tuple)

    @property
    def on_gpu(self) -> bool:
        return self.backend in GPU_BACKENDS

    @property
    def precision(self) -> str:
        """The model-set precision "auto" resolves to: FP16 variants on a GPU, FP32 on the CPU."""
        return "fp16" if self.on_gpu else "fp32"

    def describe(self) -> str:
        """One line for a decode's log: what runs, and why nothing better does."""
        text = f"models on {self.backend}"
        if self.passed_over:
            text += " (" + "; ".join(f"{p.name}: {p.reason}" for p in self.passed_over) + ")"
        return text


def gpu_status() -> tuple[bool, str]:
    """Whether a CUDA GPU is reachable through cuda-python's driver API, and if not why."""
    from tgvc_rt.kernels.cuda_api import gpu_count

    count, why = gpu_count()
    return count > 0, why


def gpu_info() -> dict | None:
    """Name, compute capability and driver version of GPU 0, None where there is none."""
    if not gpu_status()[0]:
        return None
    try:
        from tgvc_rt.kernels.cuda_api import open_api

        api = open_api()
        version = api.drv.cuDriverGetVersion()[1] if hasattr(api, "drv") else None
        return {"name": api.device_name(), "compute_capability": api.compute_capability(), "driver_api": version}
    except Exception as err:  # noqa: BLE001 - a description, not a requirement
        return {"error": str(err)}


def _ort_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - a hard dependency
        return []
    return list(onnxruntime.get_available_providers())


def _probe_ort(name: str) -> BackendProbe:
    provider = ORT_PROVIDER[name]
    if provider not in _ort_providers():
        return BackendProbe(name, False, f"this onnxruntime has no {provider} (install onnxruntime-gpu in "
                                         f"place of onnxruntime)")
    if name == "cpu":
        return BackendProbe(name, True)
    ok, why = gpu_status()
    if not ok and "not installed" not in why:  # without cuda-python ORT itself finds out at session start
        return BackendProbe(name, False, why)
    return BackendProbe(name, True)


def _probe_tensorrt() -> BackendProbe:
    try:
        from tgvc_rt.backends.trt_runner import tensorrt_status
    except ImportError:  # pragma: no cover - the runner is part of the package
        return BackendProbe("tensorrt", False, "the TensorRT engine runner is not part of this build")
    ok, why = tensorrt_status()
    return BackendProbe("tensorrt", bool(ok), "" if ok else why)


def probe(name: str) -> BackendProbe:
    """Probe one backend (never raises)."""
    if name not in BACKENDS:
        raise OptionError(f"unknown backend {name!r} (expected one of {', '.join(BACKENDS)})")
    try:
        return _probe_tensorrt() if name == "tensorrt" else _probe_ort(name)
    except Exception as err:  # noqa: BLE001 - a probe reports, it does not fail
        return BackendProbe(name, False, f"probe failed: {type(err).__name__}: {err}")


def probe_backends() -> list[BackendProbe]:
    """Every backend, best first (``tgvc-rt info --backends``)."""
    return [probe(name) for name in BACKENDS]


def choose_backend(device: str, failed: dict[str, str] | None = None) -> BackendChoice:
    """The first backend of ``device``'s chain that can run here (probed afresh at every call: cheap).
    ``failed``: backends that probed well but failed to start a model, and why (passed over too)."""
    if device not in DEVICES:
        raise OptionError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    passed = []
    for name in CHAINS[device]:
        p = BackendProbe(name, False, failed[name]) if failed and name in failed else probe(name)
        if p.available:
            return BackendChoice(device, name, tuple(passed))
        passed.append(p)
    reasons = "; ".join(f"{p.name}: {p.reason}" for p in passed)
    raise OptionError(f"--device {device}: no backend for it can run here ({reasons})")


def _versions() -> str:
    """The installed runtimes' versions (and the GPU's name where one is reachable), one line."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-rtx", "cuda-python", "cuda-bindings",
                 "pycuda"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    gpu = gpu_info()
    if gpu is not None:
        parts.append(f"GPU {gpu['name']} (sm_{gpu['compute_capability']})" if "name" in gpu
                     else f"GPU unusable: {gpu['error']}")
    return "installed: " + (", ".join(parts) if parts else "no model runtime")


def describe_backends() -> str:
    """The table of ``tgvc-rt info --backends``."""
    lines = [_versions(), "backend        runs here  why not", "-------------  ---------  -------"]
    for p in probe_backends():
        lines.append(f"{p.name:<13s}  {'yes' if p.available else 'no':<9s}  {p.reason}")
    for device in DEVICES:
        try:
            lines.append(f"--device {device:<9s} -> {choose_backend(device).backend}")
        except OptionError as err:
            lines.append(f"--device {device:<9s} -> none: {str(err).split(': ', 1)[1]}")
    return "\n".join(lines)
