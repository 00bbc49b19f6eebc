"""The device side of a decode: where the loop's buffers live, its frame kernels run and its models read.

A device-resident loop (``decoder/device_loop.py``) talks to two small interfaces:

* a ``Device``: ``upload``/``empty``/``download``/``zero`` buffers, and the three frame kernels of the
  interpolation loop (``image_input``, ``flow_upsample``, ``frame_output``; ``kernels/frame_kernels.py``
  on CUDA), all enqueued on the device's one stream; ``download`` waits for it;
* a ``DeviceModel``: ``run(inputs: name -> buffer) -> name -> buffer``, reading and writing device
  buffers only (outputs belong to the model and are reused by its next ``run`` at the same shapes).

``EmulatedDevice`` and ``HostModel`` implement both with NumPy arrays and the host decoder's own
functions, so the loop's host-side logic (what is uploaded when, which kernel fills which slot, what
comes back) runs and is tested on any machine, bit-exact against the host decoder. The CUDA device is
``backends/cuda_device.py``; the GPU models are ``backends/ort_device.py`` (ONNX Runtime CUDA / TensorRT
providers with I/O binding to device memory) and ``TrtModel`` here over ``trt_runner.TrtSession``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from tgvc_rt.backends.base import Session
from tgvc_rt.diffusion.samplers import apply_guidance, predict_x0
from tgvc_rt.models.interpolator import frames_output, image_input, pad_edges


class Buffer(Protocol):
    """A contiguous device array. The views share its memory: ``at(i)`` (entry ``i`` of the leading axis,
    that axis dropped), ``head(n)``/``tail(i)``/``slice(lo, hi)`` (entries of the leading axis) and
    ``reshape(shape)``."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def at(self, i: int) -> "Buffer": ...

    def head(self, n: int) -> "Buffer": ...

    def tail(self, i: int) -> "Buffer": ...

    def slice(self, lo: int, hi: int) -> "Buffer": ...

    def reshape(self, shape: tuple[int, ...]) -> "Buffer": ...


class Device(Protocol):
    name: str

    def upload(self, array: np.ndarray) -> Buffer: ...

    def empty(self, shape: tuple[int, ...], dtype=np.float32) -> Buffer: ...

    def write(self, buf: Buffer, array: np.ndarray) -> None:
        """Copy ``array`` (same shape and dtype) into ``buf``, ordered on the stream."""

    def release(self, *bufs: Buffer) -> None:
        """Free buffers this device allocated."""

    def zero(self, buf: Buffer) -> None: ...

    def download(self, buf: Buffer) -> np.ndarray: ...

    def image_input(self, key: Buffer, out: Buffer) -> None:
        """uint8 key [H, W, 3] -> every ``out[j]`` float32 [3, Hp, Wp] in [0, 1], edge-padded."""

    def flow_upsample(self, grids: Buffer, flow: Buffer, weight: Buffer, height: int, width: int) -> None:
        """Dense-motion grids [n, gh, gw, 5] -> ``flow[:n]`` [n, 4, Hp, Wp] and ``weight[:n]`` [n, 1, Hp, Wp]:
        bilinear (OpenCV's INTER_LINEAR) to ``height`` x ``width``, then edge-padded."""

    def frame_output(self, frames: Buffer, out: Buffer, reduce: int = 1) -> None:
        """Model frames float [B, 3, Hp, Wp] in [0, 1] -> uint8 ``out`` [B, H, W, 3] (rint, clip, crop);
        ``reduce`` 2 area-averages 2x2 first (``out`` is then the half size)."""

    # -- the diffusion loop's ops (decoder/device_diffusion.py) --
    def copy_into(self, dst: Buffer, src: Buffer) -> None:
        """Copy ``src`` into ``dst`` (same size), on the stream."""

    def fill(self, buf: Buffer, value: float) -> None:
        """Set every float32 of ``buf`` to ``value``."""

    def vae_input(self, frames: Buffer, out: Buffer) -> None:
        """uint8 frames [N, H, W, 3] -> the VAE encoder's float32 images [N, 3, H8, W8] in [0, 1], edge-padded."""

    def normalise(self, latent: Buffer, out: Buffer, mean: Buffer, std: Buffer) -> None:
        """``out = (latent - mean[c]) / std[c]`` over [..., C, h, w]."""

    def denormalise(self, zn: Buffer, out: Buffer, mean: Buffer, std: Buffer) -> None:
        """``out = zn * std[c] + mean[c]``."""

    def noise_mix(self, clean: Buffer, noise: Buffer, out: Buffer, abar: float) -> None:
        """The warm start: ``out = sqrt(abar) clean + sqrt(1 - abar) noise``."""

    def ddim_step(self, x: Buffer, eps: Buffer, abar: float, abar_prev: float) -> None:
        """One unguided DDIM step of ``x`` in place (eta 0)."""

    def residual(self, dz: Buffer, dw: Buffer, warp: Buffer, out: Buffer, blur: float) -> None:
        """The residual output: VAE images ``dz``, ``dw`` [B, 3, H8, W8] in [0, 1], warp frames uint8
        [B, H, W, 3] -> uint8 ``out`` = rint(warp + blur_sigma(255 dz - 255 dw)) (``blur`` 0: none)."""

    def guided_stepper(self, ref: Buffer, pos: np.ndarray, vis: np.ndarray, shape, factory):
        """One window's guided DDIM stepper: ``step(x, eps, t, abar, abar_prev, scale)`` updates ``x`` in place
        (x0 prediction, ``x -= scale (1 - abar) / sqrt(abar) dL/dx0``, DDIM to ``abar_prev``); ``close()``.
        ``ref`` [2, C, h, w] anchor latents, ``pos`` [K, n, 2] latent positions, ``vis`` [K, n]; ``factory``
        the host guidance (devices with their own kernel ignore it)."""

    def close(self) -> None: ...


class DeviceModel(Protocol):
    backend: str

    def run(self, inputs: dict[str, Buffer]) -> dict[str, Buffer]: ...


class Staging:
    """Named device buffers rewritten in place while their shape and dtype stay (the loops' small per-batch and
    per-step inputs): ``put(name, array)`` uploads once, then writes."""

    def __init__(self, device: Device):
        self.device, self.bufs = device, {}

    def put(self, name: str, array: np.ndarray):
        array = np.ascontiguousarray(array)
        buf = self.bufs.get(name)
        if buf is None or tuple(buf.shape) != array.shape or buf.dtype != array.dtype:
            if buf is not None:
                self.device.release(buf)
            buf = self.bufs[name] = self.device.upload(array)
        else:
            self.device.write(buf, array)
        return buf

    def release(self) -> None:
        self.device.release(*self.bufs.values())
        self.bufs = {}


# --- NumPy emulation -----------------------------------------------------------------------------
@dataclass
class HostBuffer:
    """An emulated device buffer: a NumPy array."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def at(self, i: int) -> "HostBuffer":
        return HostBuffer(self.array[i])

    def head(self, n: int) -> "HostBuffer":
        return HostBuffer(self.array[:n])

    def tail(self, i: int) -> "HostBuffer":
        return HostBuffer(self.array[i:])

    def slice(self, lo: int, hi: int) -> "HostBuffer":
        return HostBuffer(self.array[lo:hi])

    def reshape(self, shape) -> "HostBuffer":
        return HostBuffer(self.array.reshape(shape))


class EmulatedDevice:
    """The ``Device`` interface on NumPy arrays, with the host decoder's own functions as kernels (so a loop
    run on it must equal the host decoder bit for bit). ``uploads``/``downloads`` count bytes moved, the
    way a real device's transfers would be."""

    name = "emulated"

    def __init__(self):
        self.uploaded = 0
        self.downloaded = 0

    def upload(self, array: np.ndarray) -> HostBuffer:
        a = np.array(array, copy=True)
        self.uploaded += a.nbytes
        return HostBuffer(a)

    def empty(self, shape, dtype=np.float32) -> HostBuffer:
        return HostBuffer(np.empty(tuple(int(s) for s in shape), dtype))

    def write(self, buf: HostBuffer, array: np.ndarray) -> None:
        self.uploaded += array.nbytes
        buf.array[...] = array

    def release(self, *bufs: HostBuffer) -> None:
        pass

    def zero(self, buf: HostBuffer) -> None:
        buf.array[...] = 0

    def download(self, buf: HostBuffer) -> np.ndarray:
        self.downloaded += buf.array.nbytes
        return buf.array.copy()

    def image_input(self, key: HostBuffer, out: HostBuffer) -> None:
        hp, wp = out.shape[-2:]
        out.array[...] = image_input(key.array, hp, wp)

    def flow_upsample(self, grids: HostBuffer, flow: HostBuffer, weight: HostBuffer, height: int, width: int) -> None:
        hp, wp = flow.shape[-2:]
        for j, grid in enumerate(grids.array):
            up = cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
            full = pad_edges(up.reshape(height, width, -1).transpose(2, 0, 1), hp, wp)
            flow.array[j] = full[:4]
            weight.array[j] = full[4:5]

    def frame_output(self, frames: HostBuffer, out: HostBuffer, reduce: int = 1) -> None:
        height, width = out.shape[1:3]
        if reduce == 1:
            out.array[...] = frames_output(frames.array, height, width)
        else:
            big = frames_output(frames.array, height * reduce, width * reduce)
            out.array[...] = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in big])

    # -- diffusion ops: the host decoder's own expressions (decoder/diffusion.py, backends/base.py) --
    def copy_into(self, dst: HostBuffer, src: HostBuffer) -> None:
        dst.array[...] = src.array

    def fill(self, buf: HostBuffer, value: float) -> None:
        buf.array[...] = value

    def vae_input(self, frames: HostBuffer, out: HostBuffer) -> None:
        h8, w8 = out.shape[-2:]
        h, w = frames.shape[1:3]
        padded = np.pad(frames.array, ((0, 0), (0, h8 - h), (0, w8 - w), (0, 0)), mode="edge")
        out.array[...] = padded.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)

    def normalise(self, latent: HostBuffer, out: HostBuffer, mean: HostBuffer, std: HostBuffer) -> None:
        shape = (-1, 1, 1)
        out.array[...] = (latent.array - mean.array.reshape(shape)) / std.array.reshape(shape)

    def denormalise(self, zn: HostBuffer, out: HostBuffer, mean: HostBuffer, std: HostBuffer) -> None:
        shape = (-1, 1, 1)
        out.array[...] = zn.array * std.array.reshape(shape) + mean.array.reshape(shape)

    def noise_mix(self, clean: HostBuffer, noise: HostBuffer, out: HostBuffer, abar: float) -> None:
        out.array[...] = (math.sqrt(abar) * clean.array + math.sqrt(1.0 - abar) * noise.array).astype(np.float32)

    def ddim_step(self, x: HostBuffer, eps: HostBuffer, abar: float, abar_prev: float) -> None:
        x0 = predict_x0(x.array, eps.array, abar)
        x.array[...] = (math.sqrt(abar_prev) * x0 + math.sqrt(max(1.0 - abar_prev, 0.0)) * eps.array).astype(x0.dtype)

    def residual(self, dz: HostBuffer, dw: HostBuffer, warp: HostBuffer, out: HostBuffer, blur: float) -> None:
        height, width = warp.shape[1:3]
        a = dz.array.transpose(0, 2, 3, 1) * np.float32(255.0)
        b = dw.array.transpose(0, 2, 3, 1) * np.float32(255.0)
        change = a[:, :height, :width] - b[:, :height, :width]
        if blur > 0:
            change = np.stack([cv2.GaussianBlur(c, (0, 0), blur) for c in change])
        out.array[...] = np.clip(np.rint(warp.array.astype(np.float32) + change), 0, 255).astype(np.uint8)

    def guided_stepper(self, ref: HostBuffer, pos: np.ndarray, vis: np.ndarray, shape, factory) -> "HostStepper":
        return HostStepper(ref, pos, vis, shape, factory)

    def close(self) -> None:
        pass


class HostStepper:
    """One window's guided DDIM step with the host sampler's arithmetic (``diffusion/samplers.py``): the
    stepper of the emulated device."""

    def __init__(self, ref: HostBuffer, pos: np.ndarray, vis: np.ndarray, shape, factory):
        self.guidance = factory(np.array(ref.array), pos, vis, tuple(shape))

    def step(self, x: HostBuffer, eps: HostBuffer, t: int, abar: float, abar_prev: float, scale: float) -> None:
        x0 = predict_x0(x.array, eps.array, abar)
        xa, e, x0 = apply_guidance(x.array, eps.array, x0, abar, t, self.guidance, scale, 1, None)
        x.array[...] = (math.sqrt(abar_prev) * x0 + math.sqrt(max(1.0 - abar_prev, 0.0)) * e).astype(x0.dtype)

    def close(self) -> None:
        pass


class HostModel:
    """A host ``Session`` behind the ``DeviceModel`` interface, for the emulated device."""

    def __init__(self, session: Session, backend: str | None = None):
        self.session = session
        self.backend = backend or getattr(session, "backend", "cpu")
        self.calls = 0

    def run(self, inputs: dict[str, HostBuffer]) -> dict[str, HostBuffer]:
        self.calls += 1
        out = self.session.run({name: buf.array for name, buf in inputs.items()})
        return {name: HostBuffer(np.array(a, copy=True)) for name, a in out.items()}


class TrtModel:
    """A ``trt_runner.TrtSession`` as a ``DeviceModel``: output buffers allocated on ``device`` once per
    input-shape signature, the engine enqueued on the device's stream."""

    backend = "tensorrt"

    def __init__(self, session, device):
        self.session, self.device = session, device
        self._key = None
        self._outputs: dict = {}

    def run(self, inputs: dict) -> dict:
        key = tuple((n, tuple(b.shape)) for n, b in sorted(inputs.items()))
        if key != self._key:
            shapes = self.session.output_shapes({n: tuple(b.shape) for n, b in inputs.items()})
            self.device.release(*self._outputs.values())
            self._outputs = {n: self.device.empty(s, np.float32) for n, s in shapes.items()}
            self._key = key
        self.session.run_device(inputs, self._outputs, self.device.stream)
        return self._outputs
