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
        self._diffusion = None
        self._pool: dict[int, list[int]] = {}  # bytes -> free device pointers

    def upload(self, array: np.ndarray) -> DeviceBuffer:
        a = np.ascontiguousarray(array)
        buf = self.empty(a.shape, a.dtype)
        if a.size:
            self.api.h2d(buf.ptr, a, self.stream)
        return buf

    def empty(self, shape, dtype=np.float32) -> DeviceBuffer:
        """A buffer from the pool (released buffers of the same size are reused: every use is ordered on the
        one stream, so reuse needs no synchronisation), else a new allocation."""
        shape = tuple(int(d) for d in shape)
        nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
        free = self._pool.get(nbytes)
        ptr = free.pop() if free else self.api.alloc(nbytes)
        return DeviceBuffer(ptr, shape, np.dtype(dtype), self.api, owned=False)

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
        """Return buffers made by ``empty``/``upload`` to the pool (freed on ``close``)."""
        for buf in bufs:
            if buf is not None and buf.ptr:
                self._pool.setdefault(max(buf.nbytes, 1), []).append(buf.ptr)
                buf.ptr = 0

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

    @property
    def diffusion(self):
        """The diffusion kernels (``kernels/diffusion_kernels.DiffusionKernels``), compiled on first use."""
        if self._diffusion is None:
            from tgvc_rt.kernels.diffusion_kernels import DiffusionKernels

            self._diffusion = DiffusionKernels(self.api)
        return self._diffusion

    def normalise(self, latent: DeviceBuffer, out: DeviceBuffer, mean: DeviceBuffer, std: DeviceBuffer) -> None:
        n, c, hw = _latent_dims(latent)
        self.diffusion.normalise(latent.ptr, out.ptr, n, c, hw, mean.ptr, std.ptr, stream=self.stream)

    def denormalise(self, zn: DeviceBuffer, out: DeviceBuffer, mean: DeviceBuffer, std: DeviceBuffer) -> None:
        n, c, hw = _latent_dims(zn)
        self.diffusion.denormalise(zn.ptr, out.ptr, n, c, hw, mean.ptr, std.ptr, stream=self.stream)

    def residual(self, dz: DeviceBuffer, dw: DeviceBuffer, warp: DeviceBuffer, out: DeviceBuffer, blur: float) -> None:
        b, _, hp, wp = dz.shape
        height, width = warp.shape[1:3]
        change = self.empty((b, 3, height, width))
        try:
            self.diffusion.residual_change(dz.ptr, dw.ptr, b, hp, wp, height, width, change.ptr,
                                           dtype=_FLOAT[dz.dtype], stream=self.stream)
            if blur > 0:
                tmp = self.empty(change.shape)
                self.diffusion.gaussian_blur(change.ptr, tmp.ptr, change.ptr, b * 3, height, width, blur,
                                             stream=self.stream)
                self.release(tmp)
            self.diffusion.residual_compose(change.ptr, warp.ptr, b, height, width, out.ptr, stream=self.stream)
        finally:
            self.release(change)

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
        for ptrs in self._pool.values():
            for ptr in ptrs:
                self.api.free(ptr)
        self._pool = {}
        self.api.stream_destroy(self.stream)
        self.stream = 0


def _latent_dims(buf: DeviceBuffer) -> tuple[int, int, int]:
    """(n, c, h*w) of latents [n, c, h, w] or [c, h, w]."""
    shape = buf.shape if len(buf.shape) == 4 else (1, *buf.shape)
    return int(shape[0]), int(shape[1]), int(shape[2] * shape[3])


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
