"""A few CUDA driver calls behind one small interface, over cuda-python or pycuda.

What the guidance launcher and the TensorRT runner need: load a module, find a function, launch
it on a caller-given stream (a raw ``CUstream`` handle as int, 0 = the legacy default stream),
allocate and copy, create/synchronise/destroy a stream. Imports happen on first use, so this module imports cleanly without CUDA.
"""
from __future__ import annotations

import ctypes

import numpy as np

from tgvc_rt.errors import TgvcError


class CudaUnavailable(TgvcError):
    """No usable CUDA driver, binding or GPU."""


def import_driver():
    """The driver binding of cuda-python (new ``cuda.bindings`` or old ``cuda`` layout)."""
    try:
        from cuda.bindings import driver
        return driver
    except ImportError:
        pass
    try:
        from cuda import cuda as driver  # type: ignore[no-redef]
        return driver
    except ImportError as err:
        raise CudaUnavailable("cuda-python is not installed (pip install 'tgvc-rt[gpu]')") from err


def gpu_count() -> tuple[int, str]:
    """How many CUDA GPUs cuda-python's driver API reaches, and, when none, why (one line; never raises)."""
    try:
        drv = import_driver()
    except Exception:  # noqa: BLE001 - CudaUnavailable, or a broken install
        return 0, "cuda-python is not installed (pip install 'tgvc-rt[gpu]')"
    try:
        err = drv.cuInit(0)[0]
        if int(err) != 0:
            return 0, f"no usable CUDA driver ({err})"
        err, count = drv.cuDeviceGetCount()
        if int(err) != 0 or int(count) < 1:
            return 0, "no NVIDIA GPU found"
    except Exception as err:  # noqa: BLE001 - no libcuda.so and the like
        return 0, f"CUDA driver unavailable: {err}"
    return int(count), ""


class CudaPythonApi:
    """cuda-python driver API on the device's primary context (shared with torch/ORT/cupy)."""

    name = "cuda-python"

    def __init__(self, device: int = 0):
        try:
            self.drv = drv = import_driver()
            self._ok(drv.cuInit(0), "cuInit")
            self.dev = self._ok(drv.cuDeviceGet(device), "cuDeviceGet")
            self.ctx = self._ok(drv.cuDevicePrimaryCtxRetain(self.dev), "cuDevicePrimaryCtxRetain")
        except CudaUnavailable:
            raise
        except Exception as err:  # no libcuda.so, no device
            raise CudaUnavailable(f"CUDA driver unavailable: {err}") from err
        self.activate()

    def _ok(self, result, what: str):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise CudaUnavailable(f"{what} failed: {err}")
        if isinstance(result, tuple) and len(result) > 1:
            return result[1] if len(result) == 2 else result[1:]
        return None

    def activate(self) -> None:
        self._ok(self.drv.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")

    def compute_capability(self) -> int:
        a = self.drv.CUdevice_attribute
        major = self._ok(self.drv.cuDeviceGetAttribute(a.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.dev), "attr")
        minor = self._ok(self.drv.cuDeviceGetAttribute(a.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.dev), "attr")
        return int(major) * 10 + int(minor)

    def device_name(self) -> str:
        raw = self._ok(self.drv.cuDeviceGetName(128, self.dev), "cuDeviceGetName")
        return bytes(raw).split(b"\0")[0].decode()

    def load(self, image: bytes):
        return self._ok(self.drv.cuModuleLoadData(image), "cuModuleLoadData")

    def function(self, module, name: str):
        return self._ok(self.drv.cuModuleGetFunction(module, name.encode()), f"cuModuleGetFunction({name})")

    def set_max_dynamic_smem(self, fn, nbytes: int) -> None:
        attr = self.drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        self._ok(self.drv.cuFuncSetAttribute(fn, attr, int(nbytes)), "cuFuncSetAttribute")

    def launch(self, fn, grid, block, smem: int, stream: int, args: list, params=None) -> None:
        """``args``: ctypes scalars (c_void_p for pointers), kept alive for the call. ``params``: a
        ready ``c_void_p`` array of their addresses (callers that relaunch with the same ctypes
        objects, values updated in place, skip rebuilding it)."""
        if params is None:
            params = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        handle = self._streams.get(stream) if hasattr(self, "_streams") else None
        if handle is None:
            self._streams = getattr(self, "_streams", {})
            handle = self._streams[stream] = self.drv.CUstream(int(stream))
        err = self.drv.cuLaunchKernel(fn, *grid, *block, int(smem), handle, ctypes.addressof(params), 0)[0]
        if int(err) != 0:
            raise CudaUnavailable(f"cuLaunchKernel failed: {err}")

    def alloc(self, nbytes: int) -> int:
        return int(self._ok(self.drv.cuMemAlloc(max(int(nbytes), 1)), "cuMemAlloc"))

    def free(self, ptr: int) -> None:
        self.drv.cuMemFree(self.drv.CUdeviceptr(int(ptr)))

    def h2d(self, ptr: int, array: np.ndarray, stream: int = 0) -> None:
        a = np.ascontiguousarray(array)
        self._ok(self.drv.cuMemcpyHtoDAsync(self.drv.CUdeviceptr(int(ptr)), a.ctypes.data, a.nbytes,
                                            self.drv.CUstream(int(stream))), "cuMemcpyHtoDAsync")
        self.sync(stream)  # the host buffer may go away once we return

    def d2h(self, array: np.ndarray, ptr: int, stream: int = 0) -> None:
        self._ok(self.drv.cuMemcpyDtoHAsync(array.ctypes.data, self.drv.CUdeviceptr(int(ptr)), array.nbytes,
                                            self.drv.CUstream(int(stream))), "cuMemcpyDtoHAsync")
        self.sync(stream)

    def d2d(self, dst: int, src: int, nbytes: int, stream: int = 0) -> None:
        self._ok(self.drv.cuMemcpyDtoDAsync(self.drv.CUdeviceptr(int(dst)), self.drv.CUdeviceptr(int(src)),
                                            int(nbytes), self.drv.CUstream(int(stream))), "cuMemcpyDtoDAsync")

    def fill32(self, ptr: int, bits: int, count: int, stream: int = 0) -> None:
        """Set ``count`` 32-bit words at ``ptr`` to ``bits`` (e.g. a float32's bit pattern), on the stream."""
        self._ok(self.drv.cuMemsetD32Async(self.drv.CUdeviceptr(int(ptr)), int(bits), int(count),
                                           self.drv.CUstream(int(stream))), "cuMemsetD32Async")

    def memset32(self, ptr: int, count: int, stream: int = 0) -> None:
        self._ok(self.drv.cuMemsetD32Async(self.drv.CUdeviceptr(int(ptr)), 0, int(count),
                                           self.drv.CUstream(int(stream))), "cuMemsetD32Async")

    def sync(self, stream: int = 0) -> None:
        self._ok(self.drv.cuStreamSynchronize(self.drv.CUstream(int(stream))), "cuStreamSynchronize")

    def stream_create(self) -> int:
        """A new non-blocking stream (raw ``CUstream`` handle as int); release with ``stream_destroy``."""
        non_blocking = 1  # CU_STREAM_NON_BLOCKING: no implicit sync with the legacy default stream
        return int(self._ok(self.drv.cuStreamCreate(non_blocking), "cuStreamCreate"))

    def stream_destroy(self, stream: int) -> None:
        if int(stream):
            self.drv.cuStreamDestroy(self.drv.CUstream(int(stream)))


class PycudaApi:
    """The same interface over pycuda (default stream only; raw stream handles are not wrapped)."""

    name = "pycuda"

    def __init__(self, device: int = 0):
        try:
            import pycuda.driver as cuda
            cuda.init()
            self.cuda = cuda
            self.dev = cuda.Device(device)
            self.ctx = self.dev.retain_primary_context()
        except Exception as err:
            raise CudaUnavailable(f"pycuda unavailable: {err}") from err
        self.activate()

    def activate(self) -> None:
        self.ctx.push()

    def compute_capability(self) -> int:
        major, minor = self.dev.compute_capability()
        return major * 10 + minor

    def device_name(self) -> str:
        return self.dev.name()

    def load(self, image: bytes):
        return self.cuda.module_from_buffer(image)

    def function(self, module, name: str):
        return module.get_function(name)

    def set_max_dynamic_smem(self, fn, nbytes: int) -> None:
        fn.set_attribute(self.cuda.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, int(nbytes))

    def launch(self, fn, grid, block, smem: int, stream: int, args: list) -> None:
        if int(stream) != 0:
            raise CudaUnavailable("the pycuda path launches on the default stream only")
        conv = {ctypes.c_void_p: lambda v: np.uintp(v or 0), ctypes.c_int: np.int32,
                ctypes.c_longlong: np.int64, ctypes.c_float: np.float32, ctypes.c_double: np.float64}
        vals = [conv[type(a)](a.value) for a in args]
        fn(*vals, block=tuple(block), grid=tuple(grid), shared=int(smem))

    def alloc(self, nbytes: int) -> int:
        buf = self.cuda.mem_alloc(max(int(nbytes), 1))
        self._keep = getattr(self, "_keep", {})
        self._keep[int(buf)] = buf
        return int(buf)

    def free(self, ptr: int) -> None:
        getattr(self, "_keep", {}).pop(int(ptr), None)

    def h2d(self, ptr: int, array: np.ndarray, stream: int = 0) -> None:
        self.cuda.memcpy_htod(int(ptr), np.ascontiguousarray(array))

    def d2h(self, array: np.ndarray, ptr: int, stream: int = 0) -> None:
        self.cuda.memcpy_dtoh(array, int(ptr))

    def d2d(self, dst: int, src: int, nbytes: int, stream: int = 0) -> None:
        self.cuda.memcpy_dtod(int(dst), int(src), int(nbytes))

    def fill32(self, ptr: int, bits: int, count: int, stream: int = 0) -> None:
        self.cuda.memset_d32(int(ptr), int(bits), int(count))

    def memset32(self, ptr: int, count: int, stream: int = 0) -> None:
        self.cuda.memset_d32(int(ptr), 0, int(count))

    def sync(self, stream: int = 0) -> None:
        self.cuda.Context.synchronize()

    def stream_create(self) -> int:
        """0: this path works on the default stream only."""
        return 0

    def stream_destroy(self, stream: int) -> None:
        pass


def open_api(device: int = 0, prefer: str = "cuda-python"):
    """The first binding that works: ``prefer`` first, then the other."""
    order = [CudaPythonApi, PycudaApi] if prefer != "pycuda" else [PycudaApi, CudaPythonApi]
    errors = []
    for cls in order:
        try:
            return cls(device)
        except CudaUnavailable as err:
            errors.append(f"{cls.name}: {err}")
    raise CudaUnavailable("no CUDA binding works: " + "; ".join(errors))
