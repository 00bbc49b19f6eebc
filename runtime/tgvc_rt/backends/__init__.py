"""Backends: one small ``Session`` interface (``base.py``), one file per runtime.

``select.py`` resolves ``--device`` to a backend (TensorRT engine runner -> ONNX Runtime TensorRT ->
ONNX Runtime CUDA -> CPU); ``open_model_session(model_set, key)`` opens one model of a set on it;
``open_session(path, device, threads)`` opens a lone ONNX file with ONNX Runtime.
``trt.py`` builds TensorRT engines into an integrity-checked cache, ``trt_runner.py`` runs them.
"""
from __future__ import annotations

from pathlib import Path

from tgvc_rt.backends.base import Autoencoder, Denoiser, Session

__all__ = ["Autoencoder", "Denoiser", "Session", "open_model_session", "open_session"]


def open_session(path: str | Path, device: str = "cpu", threads: int | None = None,
                 io_binding: bool = True) -> Session:
    """Load one ONNX model for ``device`` ("cpu" | "cuda" | "tensorrt" | "auto") with ONNX Runtime."""
    from tgvc_rt.backends.ort import OrtSession

    return OrtSession(path, device=device, threads=threads, io_binding=io_binding)


def open_model_session(models, key: str) -> Session:
    """Model ``key`` of a ``ModelSet`` on the backend its device resolves to, in the precision that
    backend gets (FP16 variants on a GPU where the set has them), with the engine profiles of the set's
    ``max_size`` on the TensorRT backends."""
    from tgvc_rt.backends import trt
    from tgvc_rt.backends.ort import GpuOptions, OrtSession

    choice = models.backend
    path = models.model_path(key)
    shapes = None
    if choice.backend in ("tensorrt", "ort-tensorrt"):
        rules = trt.load_profiles()
        if key in rules:
            shapes = {name: trt.resolve_shapes(rule, models.max_size) for name, rule in rules[key].items()}
    if choice.backend == "tensorrt":
        from tgvc_rt.backends.trt_runner import open_trt_session

        return open_trt_session(path, key, shapes, "fp16" if path.stem.endswith("_fp16") else "fp32",
                                cache_dir=models.engine_cache, max_size=models.max_size)
    cache = str((models.engine_cache or trt.DEFAULT_CACHE) / "ort-trt") if choice.backend == "ort-tensorrt" else None
    return OrtSession(path, device=models.device, threads=models.threads, backend=choice.backend,
                      gpu=GpuOptions(trt_cache=cache, profiles=shapes, stream=models.stream))
