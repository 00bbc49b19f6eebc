"""Glue between the CUDA guidance kernels and a GPU model backend: latents never leave the GPU.

A GPU denoising loop keeps ``z``, ``eps`` and ``x0`` in device buffers that the model runtime reads
and writes directly (zero copy): ORT's I/O binding takes a raw pointer (``bind_ort_buffer``),
TensorRT's ``set_tensor_address`` too, and an ``OrtValue`` on CUDA gives its own
(``ort_value_ptr``). Per sampler step, ``GuidedStepper.step`` enqueues on the model's stream:

    x0 = (z - sqrt(1 - abar_t) eps) / sqrt(abar_t)          (tgvc_axpby)
    z -= s N (1 - abar_t) / sqrt(abar_t) * dL/dx0           (tgvc_guidance_step, fused; N = K Npairs)
    z  = DDIM(z, eps; abar_t -> abar_prev)                   (tgvc_axpby)

with no host synchronisation; the window's constants (track records, reference taps) are prepared
once, when the stepper is made (tgvc_guidance_prepare). Importing this module needs no CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import launcher


@dataclass
class DeviceBuffer:
    """A device allocation (or a borrowed pointer when ``owned`` is False) with its array shape."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    api: object
    owned: bool = True

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @staticmethod
    def empty(api, shape, dtype=np.float32) -> "DeviceBuffer":
        shape = tuple(int(s) for s in shape)
        return DeviceBuffer(api.alloc(int(np.prod(shape)) * np.dtype(dtype).itemsize), shape, np.dtype(dtype), api)

    @staticmethod
    def from_host(api, array: np.ndarray) -> "DeviceBuffer":
        a = np.ascontiguousarray(array)
        buf = DeviceBuffer.empty(api, a.shape, a.dtype)
        if a.size:
            api.h2d(buf.ptr, a)
        return buf

    def to_host(self, stream: int = 0) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        if out.size:
            self.api.d2h(out, self.ptr, stream)
        return out

    def _entry_bytes(self) -> int:
        return int(np.prod(self.shape[1:])) * np.dtype(self.dtype).itemsize

    def slice(self, lo: int, hi: int) -> "DeviceBuffer":
        """Entries ``lo .. hi-1`` of the leading axis: a borrowed view of the same memory."""
        if not 0 <= lo <= hi <= self.shape[0]:
            raise IndexError(f"slice {lo}:{hi} of a buffer of {self.shape}")
        return DeviceBuffer(self.ptr + lo * self._entry_bytes(), (hi - lo, *self.shape[1:]), self.dtype, self.api,
                            owned=False)

    def head(self, n: int) -> "DeviceBuffer":
        return self.slice(0, int(n))

    def tail(self, i: int) -> "DeviceBuffer":
        return self.slice(int(i), self.shape[0])

    def at(self, i: int) -> "DeviceBuffer":
        """Entry ``i`` of the leading axis, that axis dropped."""
        view = self.slice(int(i), int(i) + 1)
        return DeviceBuffer(view.ptr, tuple(self.shape[1:]), self.dtype, self.api, owned=False)

    def reshape(self, shape) -> "DeviceBuffer":
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != self.size:
            raise ValueError(f"cannot view {self.shape} as {shape}")
        return DeviceBuffer(self.ptr, shape, self.dtype, self.api, owned=False)

    def free(self) -> None:
        if self.owned and self.ptr:
            self.api.free(self.ptr)
        self.ptr = 0


def ort_value_ptr(value, device_type: str = "cuda") -> int:
    """Device address of an ``onnxruntime.OrtValue`` living on CUDA (or ``device_type``)."""
    if str(value.device_name()).lower() != device_type:
        raise OptionError(f"OrtValue is on {value.device_name()}, not {device_type}")
    return int(value.data_ptr())


def bind_ort_buffer(io_binding, name: str, buf: DeviceBuffer, output: bool = False, device_id: int = 0,
                    device_type: str = "cuda") -> None:
    """Bind ``buf`` as input/output ``name`` of an ORT ``IOBinding`` (CUDA provider), zero copy."""
    bind = io_binding.bind_output if output else io_binding.bind_input
    bind(name, device_type, device_id, buf.dtype, list(buf.shape), buf.ptr)


class GuidedStepper:
    """One window's guidance on the GPU: track data uploaded once, then one ``step`` per timestep.

    ``shape`` (F, C, h, w); ``ref`` [2, C, h, w] (host array, uploaded; or a ``DeviceBuffer`` already on the
    device, borrowed); ``pos`` [K, F, 2] latent (u, v); ``vis`` [K, F].
    ``dtype`` is that of the latent buffers the model reads/writes ("float32" or "float16").
    """

    def __init__(self, kernels: launcher.CudaGuidance, ref: np.ndarray, pos: np.ndarray, vis: np.ndarray,
                 shape: tuple[int, int, int, int], dtype: str = "float32", stream: int = 0):
        if dtype not in launcher.DTYPES:
            raise OptionError(f"latent dtype must be float32 or float16, got {dtype}")
        self.k, self.shape, self.dtype, self.stream = kernels, tuple(int(s) for s in shape), dtype, int(stream)
        np_dtype = np.float32 if dtype == "float32" else np.float16
        api = kernels.api
        pos, vis = np.asarray(pos, np.float32), np.asarray(vis, np.float32)
        launcher.check_track_data(pos, vis)
        if isinstance(ref, DeviceBuffer):
            self.ref = DeviceBuffer(ref.ptr, ref.shape, ref.dtype, api, owned=False)
        else:
            self.ref = DeviceBuffer.from_host(api, np.asarray(ref).astype(np_dtype))
        self.K = int(pos.shape[0])
        self.pos = DeviceBuffer.from_host(api, pos.reshape(-1) if self.K else np.zeros(2, np.float32))
        self.vis = DeviceBuffer.from_host(api, vis.reshape(-1) if self.K else np.zeros(1, np.float32))
        self.x0 = DeviceBuffer.empty(api, self.shape, np_dtype)
        self.plan = kernels.prepare(self.ref.ptr, self.pos.ptr, self.vis.ptr, self.shape, self.K, dtype=dtype,
                                    stream=self.stream)

    def step(self, z: int, eps: int, abar_t: float, abar_prev: float, scale: float, guide: bool = True) -> None:
        """Enqueue x0 prediction, the guidance update of ``z`` (in place) and the DDIM step to abar_prev."""
        n = int(np.prod(self.shape))
        a, b = launcher.x0_coefficients(abar_t)
        self.k.axpby(z, eps, self.x0.ptr, n, a, b, dtype=self.dtype, stream=self.stream)
        if guide and self.K and scale:
            pairs = self.K * launcher.num_pairs(self.shape[0])
            self.k.step(self.plan, self.x0.ptr, z=z, step=launcher.guidance_step_size(scale, abar_t, pairs),
                        loss=0, stream=self.stream)  # no loss: the decoding loop never reads it
        a, b = launcher.ddim_coefficients(abar_t, abar_prev)
        self.k.axpby(z, eps, z, n, a, b, dtype=self.dtype, stream=self.stream)

    def close(self) -> None:
        self.k.free_plan(self.plan)
        for buf in (self.ref, self.pos, self.vis, self.x0):
            buf.free()
