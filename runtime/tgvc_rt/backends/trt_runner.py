"""Run a cached TensorRT engine: ``TrtSession``, the ``Session`` of ``tensorrt`` / ``tensorrt_rtx``.

``open_trt_session(onnx_path, name, ...)`` finds (or builds) the model's engine in the cache
(``trt.load_or_build``, integrity-checked), deserializes it and makes one execution context per
optimisation profile. Two ways to run it:

- ``run_device(inputs, outputs, stream)``: the caller's ``DeviceBuffer``s, bound with
  ``set_tensor_address`` and enqueued with ``execute_async_v3`` on the caller's stream; nothing is
  synchronised or copied (the GPU denoising loop keeps latents on the device);
- ``run(feeds)``: the host ``Session`` interface. Device buffers are kept per input-shape
  signature and reused, feeds are converted to the engine's tensor dtypes (our FP16 exports keep
  float32 at the boundary; an FP16 boundary is converted both ways, outputs coming back float32),
  copied in, run, copied out and synchronised. Returned arrays are reused by the next ``run`` at
  the same shapes.

With TensorRT-RTX, kernels are compiled just in time for the GPU on first use; a runtime cache
file beside the engine (``<engine>.jitcache``) keeps them across runs. ``tensorrt_status()`` says,
without raising, whether this runner can work here. Importing this module needs neither TensorRT
nor CUDA.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgvc_rt.backends.base import Session
from tgvc_rt.backends.cuda import DeviceBuffer
from tgvc_rt.backends.engine_cache import write_atomic
from tgvc_rt.backends.trt import import_tensorrt, load_or_build, profile_shapes
from tgvc_rt.errors import TgvcError

log = logging.getLogger(__name__)

# TensorRT DataType member name -> NumPy dtype (the ones a model-set boundary can use)
_NP_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64,
              "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
_LOGGERS: dict = {}


class EngineLoadError(TgvcError):
    """TensorRT could not deserialize an engine (``open_trt_session`` rebuilds it once)."""


def tensorrt_status() -> tuple[bool, str]:
    """(True, what) when TensorRT, cuda-python and a GPU are all here; (False, why not) otherwise.
    Never raises: the backend fallback chain asks this before choosing TensorRT."""
    try:
        trt, flavour = import_tensorrt()
    except Exception as err:  # noqa: BLE001 - TgvcError, or a broken install (missing libraries)
        return False, str(err).splitlines()[0] if str(err) else "TensorRT cannot be imported"
    from tgvc_rt.kernels.cuda_api import gpu_count

    count, why = gpu_count()
    if not count:
        return False, why
    return True, f"{flavour} {trt.__version__}, {count} GPU(s)"


def _np_dtype(trt_dtype) -> np.dtype:
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if name not in _NP_DTYPES:
        raise TgvcError(f"engine tensor of type {name} is not supported here")
    return np.dtype(_NP_DTYPES[name])


def _logger(trt):
    """One TensorRT logger per module (TensorRT wants the same logger for all its runtimes)."""
    if trt.__name__ not in _LOGGERS:
        _LOGGERS[trt.__name__] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[trt.__name__]


@dataclass
class _Buffers:
    """Device inputs/outputs and host outputs of one input-shape signature (``run``)."""

    inputs: dict[str, DeviceBuffer] = field(default_factory=dict)
    outputs: dict[str, DeviceBuffer] = field(default_factory=dict)
    host: dict[str, np.ndarray] = field(default_factory=dict)

    def free(self) -> None:
        for buf in (*self.inputs.values(), *self.outputs.values()):
            buf.free()


class TrtSession(Session):
    """One deserialized engine with one execution context per optimisation profile.

    ``engine``: serialized bytes or a path; ``api``: a ``kernels.cuda_api`` binding (default
    ``open_api(device_id)``), whose context TensorRT runs in; ``runtime_cache``: TensorRT-RTX's JIT
    kernel cache file (read if present, written on ``close``); ``max_shapes``: how many input-shape
    signatures ``run`` keeps device buffers for.
    """

    device = "tensorrt"
    backend = "tensorrt"  # backends/select.py name

    def __init__(self, engine: bytes | str | Path, api=None, device_id: int = 0,
                 runtime_cache: Path | None = None, label: str | None = None, max_shapes: int = 4):
        trt, self.flavour = import_tensorrt()
        self.trt = trt
        if api is None:
            from tgvc_rt.kernels.cuda_api import open_api

            api = open_api(device_id)
        self.api = api
        if isinstance(engine, (str, Path)):
            label = label or Path(engine).name
            engine = Path(engine).read_bytes()
        self.label = label or "engine"
        self.max_shapes = max(int(max_shapes), 1)
        self._buffers: OrderedDict[tuple, _Buffers] = OrderedDict()
        self.contexts: list = []
        self.stream = 0
        self.engine = None
        self._jit_path = Path(runtime_cache) if runtime_cache is not None and self.flavour == "tensorrt_rtx" else None
        self._jit_cache = None
        self._runtime = trt.Runtime(_logger(trt))
        try:
            self.engine = self._runtime.deserialize_cuda_engine(engine)
        except Exception as err:  # noqa: BLE001 - some versions raise instead of returning None
            log.info("%s: deserialize_cuda_engine raised %s", self.label, err)
        if self.engine is None:
            raise EngineLoadError(f"{self.label}: TensorRT could not deserialize the engine (made by another "
                                  "TensorRT version, for another GPU, or damaged)")
        eng = self.engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        self.inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _np_dtype(eng.get_tensor_dtype(n)) for n in self.inputs + self.outputs}
        self.profiles = [{n: [tuple(int(d) for d in s) for s in eng.get_tensor_profile_shape(n, p)]
                          for n in self.inputs} for p in range(eng.num_optimization_profiles)]
        self.stream = int(self.api.stream_create())
        for p in range(len(self.profiles)):
            ctx = self._create_context()
            if ctx is None:
                self.close()
                raise TgvcError(f"{self.label}: TensorRT could not create an execution context "
                                "(out of GPU memory?)")  # not the engine's fault: no rebuild
            if p and not ctx.set_optimization_profile_async(p, self.stream):
                self.close()
                raise TgvcError(f"{self.label}: cannot select optimisation profile {p}")
            self.contexts.append(ctx)
        self.api.sync(self.stream)

    def _create_context(self):
        if self._jit_path is None or not hasattr(self.engine, "create_runtime_config"):
            return self.engine.create_execution_context()
        config = self.engine.create_runtime_config()
        if self._jit_cache is None:
            self._jit_cache = config.create_runtime_cache()
            if self._jit_path.is_file() and not self._jit_cache.deserialize(self._jit_path.read_bytes()):
                log.info("%s: JIT runtime cache is for another GPU or version; starting afresh", self._jit_path.name)
        config.set_runtime_cache(self._jit_cache)
        return self.engine.create_execution_context(runtime_config=config)

    # ---- shapes ------------------------------------------------------------------------------
    def _check_names(self, given, what: str, expected: list[str]) -> None:
        missing = [n for n in expected if n not in given]
        unknown = [n for n in given if n not in expected]
        if missing or unknown:
            raise TgvcError(f"{self.label}: {what} must be {', '.join(expected)}"
                            + (f"; missing {', '.join(missing)}" if missing else "")
                            + (f"; unknown {', '.join(unknown)}" if unknown else ""))

    def _context_for(self, shapes: dict[str, tuple]) -> object:
        """The context of the first profile whose [min, max] ranges hold every input shape."""
        for p, profile in enumerate(self.profiles):
            if all(len(shapes[n]) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shapes[n], hi))
                   for n, (lo, _, hi) in profile.items()):
                return self.contexts[p]
        ranges = "; ".join(f"{n} {shapes[n]} not within {lo}..{hi}" for n, (lo, _, hi) in self.profiles[0].items()
                           if len(shapes[n]) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shapes[n], hi)))
        raise TgvcError(f"{self.label}: input shapes outside the engine's profiles ({ranges}); "
                        "rebuild the engines for a larger size")

    def _set_shapes(self, shapes: dict[str, tuple]):
        self._check_names(shapes, "inputs", self.inputs)
        shapes = {n: tuple(int(d) for d in s) for n, s in shapes.items()}
        ctx = self._context_for(shapes)
        for n, s in shapes.items():
            if not ctx.set_input_shape(n, s):
                raise TgvcError(f"{self.label}: TensorRT rejects shape {s} for input {n}")
        out = {n: tuple(int(d) for d in ctx.get_tensor_shape(n)) for n in self.outputs}
        bad = [n for n, s in out.items() if any(d < 0 for d in s)]
        if bad:
            raise TgvcError(f"{self.label}: TensorRT cannot infer the shape of {', '.join(bad)} from these inputs")
        return ctx, out

    def output_shapes(self, input_shapes: dict[str, tuple]) -> dict[str, tuple]:
        """Output name -> shape for inputs of ``input_shapes`` (name -> shape)."""
        return self._set_shapes(input_shapes)[1]

    # ---- running -----------------------------------------------------------------------------
    def run_device(self, inputs: dict[str, DeviceBuffer], outputs: dict[str, DeviceBuffer], stream: int) -> None:
        """Enqueue the engine on ``stream`` over the caller's device buffers; no copy, no sync.

        The buffers must have the engine's dtypes; outputs the shapes that the input shapes give
        (``output_shapes``). They must stay alive until ``stream`` has run the work."""
        self._check_names(outputs, "outputs", self.outputs)
        for n, buf in {**inputs, **outputs}.items():
            if n in self.dtypes and np.dtype(buf.dtype) != self.dtypes[n]:
                raise TgvcError(f"{self.label}: {n} is {np.dtype(buf.dtype).name}, the engine takes "
                                f"{self.dtypes[n].name}")
        ctx, expected = self._set_shapes({n: buf.shape for n, buf in inputs.items()})
        for n, buf in outputs.items():
            if tuple(buf.shape) != expected[n]:
                raise TgvcError(f"{self.label}: output {n} buffer is {tuple(buf.shape)}, "
                                f"the engine gives {expected[n]}")
        for n, buf in {**inputs, **outputs}.items():
            if not ctx.set_tensor_address(n, int(buf.ptr)):
                raise TgvcError(f"{self.label}: TensorRT rejects the device address of {n}")
        if not ctx.execute_async_v3(int(stream)):
            raise TgvcError(f"{self.label}: TensorRT could not enqueue the engine")

    def _buffers_for(self, arrays: dict[str, np.ndarray]) -> _Buffers:
        sig = tuple((n, a.shape) for n, a in arrays.items())
        bufs = self._buffers.get(sig)
        if bufs is not None:
            self._buffers.move_to_end(sig)
            return bufs
        out_shapes = self.output_shapes({n: a.shape for n, a in arrays.items()})
        bufs = _Buffers()
        try:
            for n, a in arrays.items():
                bufs.inputs[n] = DeviceBuffer.empty(self.api, a.shape, self.dtypes[n])
            for n, s in out_shapes.items():
                bufs.outputs[n] = DeviceBuffer.empty(self.api, s, self.dtypes[n])
                bufs.host[n] = np.empty(s, self.dtypes[n])
        except BaseException:
            bufs.free()
            raise
        self._buffers[sig] = bufs
        while len(self._buffers) > self.max_shapes:  # run() has synchronised: nothing in flight
            self._buffers.popitem(last=False)[1].free()
        return bufs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_names(feeds, "inputs", self.inputs)
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=self.dtypes[n]) for n in self.inputs}
        bufs = self._buffers_for(arrays)
        for n, a in arrays.items():
            if a.size:
                self.api.h2d(bufs.inputs[n].ptr, a, self.stream)
        self.run_device(bufs.inputs, bufs.outputs, self.stream)
        result = {}
        for n in self.outputs:
            host = bufs.host[n]
            if host.size:
                self.api.d2h(host, bufs.outputs[n].ptr, self.stream)
            result[n] = host.astype(np.float32) if host.dtype == np.float16 else host
        self.api.sync(self.stream)
        return result

    # ---- lifetime ----------------------------------------------------------------------------
    def save_runtime_cache(self) -> None:
        """Write TensorRT-RTX's JIT kernel cache (no-op for TensorRT or without a cache file)."""
        if self._jit_cache is None or self._jit_path is None:
            return
        try:
            blob = self._jit_cache.serialize()
            if blob is not None:
                write_atomic(self._jit_path, bytes(blob))
        except Exception as err:  # noqa: BLE001 - a cache that cannot be saved only costs a recompile
            log.warning("%s: JIT runtime cache not saved (%s)", self._jit_path.name, err)

    def close(self) -> None:
        """Save the JIT cache, free the buffers, stream, contexts and engine (idempotent)."""
        if getattr(self, "api", None) is None:
            return
        if self.stream:
            self.api.sync(self.stream)
        self.save_runtime_cache()
        for bufs in self._buffers.values():
            bufs.free()
        self._buffers.clear()
        self.contexts.clear()
        self.engine = None
        self._jit_cache = None
        if self.stream:
            self.api.stream_destroy(self.stream)
        self.stream = 0
        self.api = None

    def __enter__(self) -> "TrtSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def open_trt_session(onnx_path: str | Path, name: str, shapes: dict | None = None, precision: str = "fp16",
                     cache_dir: Path | None = None, *, max_size: tuple[int, int] = (352, 288),
                     profiles: Path | dict | None = None, builder=None, api=None,
                     jit_cache: bool = True) -> TrtSession:
    """A ``TrtSession`` for model ``name`` of ``onnx_path`` from the engine cache (built on a miss).

    ``shapes``: input -> [min, opt, max]; by default the model's profile (``engines/profiles.json``
    or ``profiles``) for frames up to ``max_size`` (width, height), as ``build-engines`` uses. An
    engine that verifies on disk but that TensorRT cannot load is rebuilt once; a second failure is
    a ``TgvcError``. ``builder``: see ``engine_cache.EngineBuilder``; ``api``: a CUDA binding
    (default ``kernels.cuda_api.open_api()``, opened first: without a GPU nothing is built)."""
    if shapes is None:
        shapes = profile_shapes(name, max_size, profiles)
    if api is None:  # no GPU: fail before a build that could not be used
        from tgvc_rt.kernels.cuda_api import open_api

        api = open_api()
    path, data = load_or_build(onnx_path, name, shapes, precision, cache_dir, builder)

    def load(engine_path: Path, engine: bytes) -> TrtSession:
        jit = engine_path.with_suffix(".jitcache") if jit_cache else None
        return TrtSession(engine, api=api, runtime_cache=jit, label=engine_path.name)

    try:
        return load(path, data)
    except EngineLoadError as err:
        log.warning("%s; rebuilding it once", err)
    path, data = load_or_build(onnx_path, name, shapes, precision, cache_dir, builder, rebuild=True)
    try:
        return load(path, data)
    except EngineLoadError as err:
        raise TgvcError(f"{err}, even after a rebuild: check that TensorRT supports this GPU") from None
