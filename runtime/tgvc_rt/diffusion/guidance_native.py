"""Compiled float32 CPU trajectory guidance (``runtime/cpp/src/guidance_cpu_f32.cpp``) via ctypes.

The shared object ``tgvc_rt/_guidance_cpu*.so`` is built by ``pip install .`` / ``pip install -e .``
(setup.py, an optional extension: without a compiler the install still succeeds and
``native_available()`` is False). ``make_native_guidance`` has the call shape of
``diffusion.guidance.make_guidance`` and computes the same numbers (docs/guidance.md) up to float32
rounding; ``select_guidance_factory`` picks it or the NumPy reference for the decoder.

Environment: ``TGVC_GUIDANCE_LIB`` = path of a library to load instead of the installed one.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import os
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tgvc_rt.errors import OptionError

ABI_VERSION = 2  # TGVC_GUIDANCE_F32_ABI in runtime/cpp/include/tgvc/guidance.h
GUIDANCE_IMPLS = ("auto", "native", "numpy")  # DiffusionOptions.guidance_impl values

_F32P = ctypes.POINTER(ctypes.c_float)
_lib: ctypes.CDLL | None = None
_load_error: str | None = None
_loaded = False


def _candidates() -> list[Path]:
    env = os.environ.get("TGVC_GUIDANCE_LIB")
    if env:
        return [Path(env)]
    pkg = Path(__file__).resolve().parents[1]  # tgvc_rt/
    return [pkg / f"_guidance_cpu{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def _load() -> ctypes.CDLL | None:
    """The library (loaded once), or None with the reason in ``_load_error``."""
    global _lib, _load_error, _loaded
    if _loaded:
        return _lib
    _loaded = True
    errors = []
    for path in _candidates():
        if not path.is_file():
            continue
        try:
            lib = ctypes.CDLL(str(path))
            lib.tgvc_guidance_f32_abi.restype = ctypes.c_int
            lib.tgvc_guidance_f32_abi.argtypes = []
            if lib.tgvc_guidance_f32_abi() != ABI_VERSION:
                errors.append(f"{path}: ABI {lib.tgvc_guidance_f32_abi()} != {ABI_VERSION}")
                continue
            lib.tgvc_guidance_f32_create.restype = ctypes.c_void_p
            lib.tgvc_guidance_f32_create.argtypes = [_F32P, _F32P, _F32P] + [ctypes.c_int] * 5
            lib.tgvc_guidance_f32_step.restype = ctypes.c_double
            lib.tgvc_guidance_f32_step.argtypes = [ctypes.c_void_p, _F32P, _F32P, ctypes.c_int]
            lib.tgvc_guidance_f32_set_threads.restype = ctypes.c_int
            lib.tgvc_guidance_f32_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.tgvc_guidance_f32_destroy.restype = None
            lib.tgvc_guidance_f32_destroy.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        _lib = lib
        return lib
    _load_error = "; ".join(errors) or "tgvc_rt._guidance_cpu is not built (pip install -e . with a C++ compiler)"
    return None


def native_available() -> bool:
    """True when the compiled guidance library is built and loadable."""
    return _load() is not None


def native_unavailable_reason() -> str | None:
    """Why ``native_available()`` is False (None when it is True)."""
    return None if _load() is not None else _load_error


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(_F32P)


def default_threads() -> int:
    """Guidance threads when none are given: the CPUs this process may use, at most 4. The decoder's
    other work (ONNX Runtime) waits while guidance runs, so the guidance may take every core."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


def make_native_guidance(ref: np.ndarray | None, pos: np.ndarray, vis: np.ndarray,
                         shape: tuple[int, int, int, int], dtype=np.float32,
                         record: list | None = None, threads: int | None = None
                         ) -> Callable[[np.ndarray, int], np.ndarray]:
    """``guidance(x0, t) -> dL/dx0`` over one window, as ``make_guidance`` but compiled (float32 only).

    ``ref`` ``[2, C, h, w]`` (None: ``x0[[0, F-1]]`` of each call), ``pos`` ``[K, F, 2]`` latent
    (u, v), ``vis`` ``[K, F]``, ``shape`` (F, C, h, w). ``record`` (a list), when given, receives
    ``(t, loss)`` per call (the loss is computed only then). The returned gradient is a float32
    buffer reused by the next call; no allocation per call (x0 that is not C-contiguous float32 is
    copied into a preallocated buffer). ``threads`` (None: ``default_threads()``) split the inner
    frames; results are bit-identical for any count. Raises OptionError when the library is not built.
    """
    lib = _load()
    if lib is None:
        raise OptionError(f"native guidance unavailable: {_load_error}")
    if np.dtype(dtype) != np.float32:
        raise OptionError(f"native guidance computes in float32, got dtype {np.dtype(dtype)}")
    F, C, h, w = (int(s) for s in shape)
    pos = np.ascontiguousarray(pos, dtype=np.float32).reshape(-1, F, 2)
    vis = np.ascontiguousarray(vis, dtype=np.float32).reshape(-1, F)
    K = pos.shape[0]
    if vis.shape[0] != K:
        raise ValueError(f"pos has {K} tracks, vis {vis.shape[0]}")
    if ref is not None:
        ref = np.ascontiguousarray(ref, dtype=np.float32)
        if ref.shape != (2, C, h, w):
            raise ValueError(f"ref must be [2, {C}, {h}, {w}], got {ref.shape}")
    handle = lib.tgvc_guidance_f32_create(_ptr(ref), _ptr(pos), _ptr(vis), K, F, C, h, w)
    if not handle:
        raise ValueError(f"native guidance rejected the window: shape {tuple(shape)}, K = {K}")
    lib.tgvc_guidance_f32_set_threads(handle, int(threads or default_threads()))
    state = {"handle": handle}
    out = np.zeros((F, C, h, w), dtype=np.float32)
    staging = np.empty((F, C, h, w), dtype=np.float32)  # for x0 that is not C-contiguous float32
    out_p = _ptr(out)
    step = lib.tgvc_guidance_f32_step
    with_loss = int(record is not None)

    def guidance(x0: np.ndarray, t: int) -> np.ndarray:
        if x0.shape != out.shape:
            raise ValueError(f"x0 shape {x0.shape} does not match the guidance window {out.shape}")
        if not (x0.dtype == np.float32 and x0.flags.c_contiguous):
            np.copyto(staging, x0, casting="unsafe")
            x0 = staging
        loss = step(state["handle"], x0.ctypes.data_as(_F32P), out_p, with_loss)
        if record is not None:
            record.append((int(t), float(loss)))
        return out

    weakref.finalize(guidance, lib.tgvc_guidance_f32_destroy, handle)
    return guidance


def select_guidance_factory(impl: str = "auto", threads: int | None = None
                            ) -> Callable[..., Callable[[np.ndarray, int], np.ndarray]]:
    """The guidance factory for ``impl``: "native" (compiled; OptionError if not built), "numpy"
    (the reference ``make_guidance``) or "auto" (native when available, else NumPy). ``threads``
    goes to the native guidance (None: ``default_threads()``)."""
    from tgvc_rt.diffusion.guidance import make_guidance

    if impl not in GUIDANCE_IMPLS:
        raise OptionError(f"guidance implementation must be one of {', '.join(GUIDANCE_IMPLS)}, got {impl!r}")
    if impl == "numpy":
        return make_guidance
    if impl == "native" and not native_available():
        raise OptionError(f"native guidance unavailable: {_load_error}")
    if not native_available():
        return make_guidance
    return make_native_guidance if threads is None else functools.partial(make_native_guidance, threads=threads)
