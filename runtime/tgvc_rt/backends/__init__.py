"""Backends: one small ``Session`` interface (``base.py``), one file per runtime.

``open_session(path, device, threads)`` picks the implementation; only ONNX Runtime (``ort.py``)
is wired in here, covering ``cpu``, ``cuda``, ``tensorrt`` and ``auto`` through its execution
providers. ``trt.py`` builds TensorRT engines into an integrity-checked cache and ``trt_runner.py``
runs them (``open_trt_session``, ``tensorrt_status``); ``open_session`` does not choose it yet.
"""
from __future__ import annotations

from pathlib import Path

from tgvc_rt.backends.base import Autoencoder, Denoiser, Session

__all__ = ["Autoencoder", "Denoiser", "Session", "open_session"]


def open_session(path: str | Path, device: str = "cpu", threads: int | None = None,
                 io_binding: bool = True) -> Session:
    """Load one ONNX model for ``device`` ("cpu" | "cuda" | "tensorrt" | "auto")."""
    from tgvc_rt.backends.ort import OrtSession

    return OrtSession(path, device=device, threads=threads, io_binding=io_binding)
