"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers with onnxruntime-gpu.

``device``: ``"cpu"``; ``"cuda"`` (CUDAExecutionProvider); ``"tensorrt"`` (TensorrtExecutionProvider
with CUDA as fallback); ``"auto"`` (the best of those that onnxruntime offers). Outputs are bound
to preallocated NumPy buffers (I/O binding), reallocated only when the input shapes change, so a
sampler loop at fixed shapes allocates nothing per step; a returned array is a view of such a
buffer and is overwritten by the next ``run``. FP16 models keep float32 at the graph boundary
(docs/models.md), so the guidance math outside stays float32.
"""
from __future__ import annotations

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


class OrtSession(Session):
    """One ONNX model in an ``onnxruntime.InferenceSession`` with bound, reused output buffers."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 io_binding: bool = True):
        ort = _ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.providers = providers_for(device)
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as err:  # onnxruntime raises its own (non-public) exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelSetError(f"cannot load model {Path(path).name}: {first}") from err
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
