"""The ``Device`` of the device-resident loop (backends/device.py) on an NVIDIA GPU: cuda-python's driver
API (``kernels/cuda_api.py``), our frame kernels (``kernels/frame_kernels.py``, NVRTC at first use) and one
non-blocking stream that the kernels, the copies and the model runtimes all enqueue on.

Uploads of host arrays wait for their copy (the host array may go away); ``write`` into a buffer, the
kernels and the models do not; ``download`` waits for the stream, so a frame is read only once everything
before it has run. Constructing it needs cuda-python, a GPU and NVRTC; importing it needs none of them.
"""
from __future__ import annotations

import math

import numpy as np

from tgvc_rt.backends.cuda import DeviceBuffer
from tgvc_rt.kernels import cuda_api
from tgvc_rt.kernels.frame_kernels import FrameKernels

_FLOAT = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}


class CudaDevice:
    def __init__(self, device_id: int = 0, api=None, kernels: FrameKernels | None = None):
        self.api = api or cuda_api.open_api(device_id)
        self.name = f"cuda:{device_id} {self.api.device_name()}"
        self.kernels = kernels or FrameKernels(self.api)
        self.stream = self.api.stream_create()
        self._guidance = None

    def upload(self, array: np.ndarray) -> DeviceBuffer:
        a = np.ascontiguousarray(array)
        buf = DeviceBuffer.empty(self.api, a.shape, a.dtype)
        if a.size:
            self.api.h2d(buf.ptr, a, self.stream)
        return buf

    def empty(self, shape, dtype=np.float32) -> DeviceBuffer:
        return DeviceBuffer.empty(self.api, shape, dtype)

    def write(self, buf: DeviceBuffer, array: np.ndarray) -> None:
        a = np.ascontiguousarray(array, dtype=buf.dtype)
        if a.shape != tuple(buf.shape):
            raise ValueError(f"write of {a.shape} into a buffer of {buf.shape}")
        if a.size:
            self.api.h2d(buf.ptr, a, self.stream)

    def copy(self, dst: DeviceBuffer, src_ptr: int) -> None:
        """Device-to-device copy of ``dst.nbytes`` from ``src_ptr`` into ``dst``, on the stream."""
        self.api.d2d(dst.ptr, src_ptr, dst.nbytes, self.stream)

    def release(self, *bufs: DeviceBuffer) -> None:
        for buf in bufs:
            buf.free()

    def zero(self, buf: DeviceBuffer) -> None:
        if buf.nbytes % 4:
            raise ValueError("zero() takes buffers of 4-byte words")
        self.api.memset32(buf.ptr, buf.nbytes // 4, self.stream)

    def download(self, buf: DeviceBuffer) -> np.ndarray:
        return buf.to_host(self.stream)

    def image_input(self, key: DeviceBuffer, out: DeviceBuffer) -> None:
        height, width = key.shape[:2]
        self.kernels.image_input(key.ptr, height, width, out.shape[2], out.shape[3], out.ptr, copies=out.shape[0],
                                 dtype=_FLOAT[out.dtype], stream=self.stream)

    def flow_upsample(self, grids: DeviceBuffer, flow: DeviceBuffer, weight: DeviceBuffer, height: int,
                      width: int) -> None:
        n, gh, gw, channels = grids.shape
        self.kernels.flow_upsample(grids.ptr, gh, gw, height, width, flow.shape[2], flow.shape[3], flow.ptr,
                                   weight.ptr, index=0, count=n, channels=channels, dtype=_FLOAT[flow.dtype],
                                   stream=self.stream)

    def frame_output(self, frames: DeviceBuffer, out: DeviceBuffer, reduce: int = 1) -> None:
        b, _, hp, wp = frames.shape
        self.kernels.frame_output(frames.ptr, b, hp, wp, out.shape[1], out.shape[2], out.ptr, reduce=reduce,
                                  dtype=_FLOAT[frames.dtype], stream=self.stream)

    # -- the diffusion loop's ops ------------------------------------------------------------------------
    def copy_into(self, dst: DeviceBuffer, src: DeviceBuffer) -> None:
        if dst.nbytes != src.nbytes:
            raise ValueError(f"copy of {src.shape} into {dst.shape}")
        self.api.d2d(dst.ptr, src.ptr, dst.nbytes, self.stream)

    def fill(self, buf: DeviceBuffer, value: float) -> None:
        if buf.dtype != np.float32:
            raise ValueError("fill() takes float32 buffers")
        bits = int(np.array([value], np.float32).view(np.uint32)[0])
        self.api.fill32(buf.ptr, bits, buf.size, self.stream)

    def vae_input(self, frames: DeviceBuffer, out: DeviceBuffer) -> None:
        height, width = frames.shape[1:3]
        for i in range(frames.shape[0]):
            self.kernels.image_input(frames.at(i).ptr, height, width, out.shape[2], out.shape[3], out.at(i).ptr,
                                     copies=1, dtype=_FLOAT[out.dtype], stream=self.stream)

    def noise_mix(self, clean: DeviceBuffer, noise: DeviceBuffer, out: DeviceBuffer, abar: float) -> None:
        self.guidance.axpby(clean.ptr, noise.ptr, out.ptr, clean.size, math.sqrt(abar), math.sqrt(1.0 - abar),
                            dtype=_FLOAT[clean.dtype], stream=self.stream)

    def ddim_step(self, x: DeviceBuffer, eps: DeviceBuffer, abar: float, abar_prev: float) -> None:
        from tgvc_rt.kernels.launcher import ddim_coefficients

        a, b = ddim_coefficients(abar, abar_prev)
        self.guidance.axpby(x.ptr, eps.ptr, x.ptr, x.size, a, b, dtype=_FLOAT[x.dtype], stream=self.stream)

    @property
    def guidance(self):
        """The guidance kernels (``kernels/launcher.CudaGuidance``) on this device's binding, compiled on first use."""
        if self._guidance is None:
            from tgvc_rt.kernels.launcher import CudaGuidance

            self._guidance = CudaGuidance(api=self.api)
        return self._guidance

    def guided_stepper(self, ref: DeviceBuffer, pos: np.ndarray, vis: np.ndarray, shape, factory=None):
        return CudaStepper(self, ref, pos, vis, shape)

    def close(self) -> None:
        self.api.sync(self.stream)
        self.api.stream_destroy(self.stream)
        self.stream = 0


class CudaStepper:
    """``Device.guided_stepper`` on CUDA: ``backends/cuda.GuidedStepper`` (x0, the fused guidance update,
    DDIM; all enqueued on the device's stream) with the host sampler's scale convention (``scale`` already
    multiplied by K x Npairs, as ``diffusion/samplers.apply_guidance`` takes it)."""

    def __init__(self, device: CudaDevice, ref: DeviceBuffer, pos: np.ndarray, vis: np.ndarray, shape):
        from tgvc_rt.backends.cuda import GuidedStepper
        from tgvc_rt.kernels.launcher import num_pairs

        self.inner = GuidedStepper(device.guidance, ref, pos, vis, tuple(shape), dtype=_FLOAT[ref.dtype],
                                   stream=device.stream)
        self.pairs = max(int(pos.shape[0]) * num_pairs(int(shape[0])), 1)

    def step(self, x: DeviceBuffer, eps: DeviceBuffer, t: int, abar: float, abar_prev: float, scale: float) -> None:
        self.inner.step(x.ptr, eps.ptr, abar, abar_prev, scale / self.pairs)

    def close(self) -> None:
        self.inner.close()
