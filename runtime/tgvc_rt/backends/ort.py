"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers with onnxruntime-gpu.

``OrtSession(path, backend=...)`` runs one model on one backend of ``backends/select.py``: ``"cpu"``;
``"ort-cuda"`` (CUDAExecutionProvider); ``"ort-tensorrt"`` (TensorrtExecutionProvider with its engine
cache, FP16 and explicit optimisation profiles, CUDA for what TensorRT does not take). Outputs are bound
to preallocated NumPy buffers (I/O binding), reallocated only when the input shapes change, so a
sampler loop at fixed shapes allocates nothing per step; a returned array is a view of such a buffer
and is overwritten by the next ``run``. FP16 models keep float32 at the graph boundary
(docs/models.md), so the guidance math outside stays float32. ``providers`` after loading says what
onnxruntime actually started; a GPU backend whose provider did not start is an error, not a silent
CPU run. The device-memory face of the GPU backends is ``backends/ort_device.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tgvc_rt.backends.base import Session
from tgvc_rt.errors import ModelSetError, OptionError

DEVICES = ("cpu", "cuda", "tensorrt", "auto")
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_BACKEND_DEVICE = {"cpu": "cpu", "ort-cuda": "cuda", "ort-tensorrt": "tensorrt"}
_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _ort():
    try:
        import onnxruntime
    except ImportError as err:  # pragma: no cover - onnxruntime is a hard dependency
        raise ModelSetError("onnxruntime is not installed (pip install onnxruntime)") from err
    return onnxruntime


def providers_for(device: str) -> list[str]:
    """Execution providers for a ``device`` string, checked against what onnxruntime offers."""
    if device not in DEVICES:
        raise OptionError(f"unknown device {device!r} (expected one of {', '.join(DEVICES)})")
    available = set(_ort().get_available_providers())
    if device == "auto":
        for name in ("tensorrt", "cuda", "cpu"):
            if _PROVIDERS[name][0] in available:
                return [p for p in _PROVIDERS[name] if p in available]
    wanted = _PROVIDERS[device]
    if wanted[0] not in available:
        raise OptionError(f"device {device!r} needs onnxruntime's {wanted[0]}, which this onnxruntime "
                          f"lacks (install onnxruntime-gpu in place of onnxruntime)")
    return [p for p in wanted if p in available]


@dataclass(frozen=True)
class GpuOptions:
    """Settings of the GPU execution providers.

    ``trt_cache``: folder of ORT's TensorRT engine and timing caches (None: no cache); ``fp16``: let
    TensorRT pick FP16 kernels; ``profiles``: input -> (min, opt, max) shapes, the explicit optimisation
    profile (``backends/trt.resolve_shapes``); ``stream``: a raw CUstream handle both providers enqueue
    on (0: their own), so our kernels and the models share one stream.
    """

    trt_cache: str | None = None
    fp16: bool = True
    profiles: dict | None = None
    stream: int = 0
    device_id: int = 0


def _shape_list(profiles: dict, which: int) -> str:
    return ",".join(f"{name}:{'x'.join(str(int(d)) for d in shapes[which])}" for name, shapes in profiles.items())


def provider_list(backend: str, gpu: GpuOptions = GpuOptions()) -> list:
    """The ``providers`` argument of an InferenceSession for ``backend``, with provider options."""
    if backend not in _BACKEND_DEVICE:
        raise OptionError(f"onnxruntime runs the backends cpu, ort-cuda and ort-tensorrt, not {backend!r}")
    names = providers_for(_BACKEND_DEVICE[backend])
    stream = {"has_user_compute_stream": "1", "user_compute_stream": str(int(gpu.stream))} if gpu.stream else {}
    out = []
    for name in names:
        if name == "CUDAExecutionProvider":
            out.append((name, {"device_id": str(gpu.device_id), **stream}))
        elif name == "TensorrtExecutionProvider":
            opts = {"device_id": str(gpu.device_id), "trt_fp16_enable": "1" if gpu.fp16 else "0", **stream}
            if gpu.trt_cache:
                opts.update(trt_engine_cache_enable="1", trt_engine_cache_path=str(gpu.trt_cache),
                            trt_timing_cache_enable="1", trt_timing_cache_path=str(gpu.trt_cache))
            if gpu.profiles:
                opts.update(trt_profile_min_shapes=_shape_list(gpu.profiles, 0),
                            trt_profile_opt_shapes=_shape_list(gpu.profiles, 1),
                            trt_profile_max_shapes=_shape_list(gpu.profiles, 2))
            out.append((name, opts))
        else:
            out.append(name)
    return out


def _load(path: Path, backend: str, threads: int | None, gpu: GpuOptions):
    """An InferenceSession of ``path`` on ``backend``; a GPU provider that did not start is an error."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = provider_list(backend, gpu)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own (non-public) exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelSetError(f"cannot load model {Path(path).name}: {first}") from err
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in sess.get_providers():
        raise ModelSetError(f"{Path(path).name}: onnxruntime could not start {wanted} (it fell back to "
                            f"{', '.join(sess.get_providers())}); check the CUDA/TensorRT install")
    return sess


class OrtSession(Session):
    """One ONNX model in an ``onnxruntime.InferenceSession`` with bound, reused output buffers."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 io_binding: bool = True, backend: str | None = None, gpu: GpuOptions = GpuOptions()):
        if backend is None:  # a device string: the first of its providers that onnxruntime offers
            from tgvc_rt.backends.select import ORT_PROVIDER

            backend = {p: b for b, p in ORT_PROVIDER.items()}[providers_for(device)[0]]
        self._sess = _load(Path(path), backend, threads, gpu)
        self.backend = backend
        self.providers = self._sess.get_providers()
        self.device = device
        self.path = Path(path)
        self.inputs = [i.name for i in self._sess.get_inputs()]
        self.outputs = [o.name for o in self._sess.get_outputs()]
        self._in_types = {i.name: _NP_TYPES.get(i.type, np.float32) for i in self._sess.get_inputs()}
        self._out_types = {o.name: _NP_TYPES.get(o.type, np.float32) for o in self._sess.get_outputs()}
        self._io_binding = io_binding
        self._binding = self._sess.io_binding() if io_binding else None
        self._buffers: dict[tuple, dict[str, np.ndarray]] = {}  # input shapes -> output buffers

    def _feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {missing}")
        return {n: np.ascontiguousarray(feeds[n], dtype=self._in_types[n]) for n in self.inputs}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = self._feeds(feeds)
        if not self._io_binding:
            return dict(zip(self.outputs, self._sess.run(self.outputs, arrays)))
        key = tuple((n, arrays[n].shape) for n in self.inputs)
        buffers = self._buffers.get(key)
        if buffers is None:  # first call at these shapes: learn the output shapes, keep buffers
            outs = self._sess.run(self.outputs, arrays)
            self._buffers.clear()  # one shape signature at a time bounds memory
            self._buffers[key] = {n: np.empty(o.shape, self._out_types[n]) for n, o in zip(self.outputs, outs)}
            for n, o in zip(self.outputs, outs):
                self._buffers[key][n][...] = o
            return self._buffers[key]
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for n, a in arrays.items():
            binding.bind_cpu_input(n, a)
        for n, buf in buffers.items():
            binding.bind_output(n, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        self._sess.run_with_iobinding(binding)
        return buffers
