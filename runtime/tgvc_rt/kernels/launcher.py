"""Python launcher of ``guidance.cu``: NVRTC at first use, driver-API launches, no PyTorch.

``CudaGuidance`` has two faces:

* device pointers (the decoding loop): ``guidance(...)``, ``axpby(...)``, ``convert(...)`` take raw
  device addresses (ints) and a raw ``CUstream`` handle, enqueue work and return at once; nothing
  is copied to the host and nothing synchronises. Pointers come from our own ``alloc`` or from the
  model backend (ORT ``OrtValue.data_ptr()``, TensorRT bindings, ``torch.Tensor.data_ptr()``).
* host arrays (tests): ``loss_and_grad(x0, ref, pos, vis)`` has the call shape of
  ``tgvc_rt.diffusion.guidance.guidance_loss_and_grad`` and returns ``(loss, grad)`` as NumPy.

Importing this module needs neither CUDA nor cuda-python; constructing ``CudaGuidance`` does.
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np

from tgvc_rt.kernels import cuda_api, nvrtc_cache
from tgvc_rt.errors import OptionError

BLOCK = 256
HALO = 5
DTYPES = {"float32": 0, "float16": 1}
VARIANTS = ("fixed", "float_smem", "scatter")  # default: fixed (deterministic)


@dataclass(frozen=True)
class GuidanceOptions:
    tile_h: int = 40  # most latent rows one block owns (tiles are balanced over the plane); 40x64
    # (a whole 512x320 latent plane per block) measured 1.5x faster than 20x64 on an H100
    tile_w: int = 64  # most latent columns one block owns
    variant: str = "fixed"  # fixed: int64 shared accumulators (bit-reproducible); others: benchmark
    defines: tuple[str, ...] = ()  # extra NVRTC options, e.g. ("-DTGVC_MIN_BLOCKS=2",)


def balanced_tile(h: int, w: int, max_h: int = 40, max_w: int = 64) -> tuple[int, int]:
    """Tile of at most max_h x max_w, equal-sized over the plane (mirrors tgvc_guidance_default_tile)."""
    ny, nx = -(-h // max_h), -(-w // max_w)
    return -(-h // ny), -(-w // nx)


def smem_bytes(tile_h: int, tile_w: int, acc_bytes: int = 8) -> int:
    acc = (tile_h * tile_w * acc_bytes + 15) & ~15
    return acc + (tile_h + 2 * HALO) * (tile_w + 2 * HALO) * 4


def num_pairs(F: int) -> int:
    """``Npairs`` of docs/guidance.md (17 for F = 16); mirrors tgvc_pair_weights in guidance.cu."""
    n, a, b = F - 1, (F - 1) // 3, (6 * (F - 1)) // 10
    return sum(1 if (f <= a or f >= b) else 2 for f in range(1, max(n, 1)))


def guidance_step_size(scale: float, abar_t: float, pairs: int = 1) -> float:
    """The factor of ``z -= step * dL/dx0``: ``s * N * (1 - abar_t) / sqrt(abar_t)``, N = K * Npairs."""
    return float(scale) * float(pairs) * (1.0 - float(abar_t)) / math.sqrt(float(abar_t))


def ddim_coefficients(abar_t: float, abar_prev: float) -> tuple[float, float]:
    """(a, b) with ``z_prev = a * z_t + b * eps`` (DDIM, eta = 0)."""
    st, sp = math.sqrt(abar_t), math.sqrt(abar_prev)
    return sp / st, math.sqrt(1.0 - abar_prev) - sp * math.sqrt(1.0 - abar_t) / st


def x0_coefficients(abar_t: float) -> tuple[float, float]:
    """(a, b) with ``x0 = a * z_t + b * eps``."""
    st = math.sqrt(abar_t)
    return 1.0 / st, -math.sqrt(1.0 - abar_t) / st


def _p(v) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(v) if v else None)


class CudaGuidance:
    """Compiled guidance kernels on one device; cheap to call, holds a small workspace."""

    def __init__(self, device: int = 0, options: GuidanceOptions = GuidanceOptions(),
                 api=None, prefer: str = "cuda-python"):
        if options.variant not in VARIANTS:
            raise OptionError(f"guidance kernel variant must be one of {VARIANTS}, got {options.variant!r}")
        self.options = options
        self.api = api or cuda_api.open_api(device, prefer)
        cc = self.api.compute_capability()
        arch, _ = nvrtc_cache.pick_target(cc)
        self.kernel = nvrtc_cache.cached_compile(arch, options.defines)
        image = self.kernel.image if not self.kernel.is_ptx else self.kernel.image.rstrip(b"\0 ") + b"\0"
        self.module = self.api.load(image)
        self._fn: dict[str, object] = {}
        self._smem_set: dict[str, int] = {}
        self._ws_ptr, self._ws_floats = 0, 0
        self._loss_ptr = self.api.alloc(4)

    # -- device-pointer API -------------------------------------------------------------
    def fn(self, name: str):
        if name not in self._fn:
            self._fn[name] = self.api.function(self.module, name)
        return self._fn[name]

    def workspace(self, floats: int) -> int:
        """A device buffer of at least ``floats`` floats, grown on demand (never per step)."""
        if floats > self._ws_floats:
            if self._ws_ptr:
                self.api.free(self._ws_ptr)
            self._ws_floats = max(floats, 1024)
            self._ws_ptr = self.api.alloc(4 * self._ws_floats)
        return self._ws_ptr

    @property
    def loss_ptr(self) -> int:
        """Device float the last ``guidance(..., loss_ptr=None)`` call wrote the loss to."""
        return self._loss_ptr

    def guidance(self, x0: int, ref: int, pos: int, vis: int, shape: tuple[int, int, int, int], K: int, *,
                 dtype: str = "float32", grad: int = 0, z: int = 0, step: float = 0.0,
                 loss: int | None = None, stream: int = 0, variant: str | None = None) -> None:
        """Enqueue L, dL/dx0 (docs/guidance.md) on ``stream``.

        ``shape`` is (F, C, h, w) of x0 (``ref`` is [2, C, h, w], same dtype; ``pos`` float32 [K, F, 2]
        latent (u, v); ``vis`` float32 [K, F]). Writes the fp32 gradient to ``grad`` if non-zero, applies
        ``z -= step * grad`` to the latent ``z`` (dtype of x0) if non-zero, and the normalised loss to
        ``loss`` (default: ``self.loss_ptr``). Returns without synchronising.
        """
        F, C, h, w = (int(s) for s in shape)
        variant = variant or self.options.variant
        if dtype not in DTYPES:
            raise OptionError(f"latent dtype must be float32 or float16, got {dtype}")
        loss = self._loss_ptr if loss is None else loss
        if variant == "scatter":
            return self._scatter(x0, ref, pos, vis, (F, C, h, w), K, grad, z, step, loss, stream, dtype)
        th, tw = balanced_tile(h, w, self.options.tile_h, self.options.tile_w)
        grid = (-(-h // th) * -(-w // tw), C, F)
        name = {"fixed": "tgvc_guidance_", "float_smem": "tgvc_guidance_fsmem_"}[variant]
        if variant == "float_smem" and dtype != "float32":
            raise OptionError("the float_smem variant is float32 only")
        name += "f32" if dtype == "float32" else "f16"
        smem = smem_bytes(th, tw, 8 if variant == "fixed" else 4)
        fn = self.fn(name)
        if smem > 48 * 1024 and self._smem_set.get(name, 0) < smem:
            self.api.set_max_dynamic_smem(fn, smem)
            self._smem_set[name] = smem
        nblocks = grid[0] * grid[1] * grid[2]
        ws = self.workspace(nblocks)
        i, f = ctypes.c_int, ctypes.c_float
        self.api.launch(fn, grid, (BLOCK, 1, 1), smem, stream,
                        [_p(x0), _p(ref), _p(pos), _p(vis), i(F), i(C), i(h), i(w), i(K), i(th), i(tw),
                         _p(grad), _p(z), f(step), _p(ws)])
        self._finalize(ws, nblocks, F, C, K, loss, stream)

    def _finalize(self, ws: int, n: int, F: int, C: int, K: int, loss: int, stream: int) -> None:
        if not loss:
            return
        i = ctypes.c_int
        self.api.launch(self.fn("tgvc_guidance_finalize"), (1, 1, 1), (BLOCK, 1, 1), 0, stream,
                        [_p(ws), i(n), i(F), i(C), i(K), _p(loss)])

    def _scatter(self, x0, ref, pos, vis, shape, K, grad, z, step, loss, stream, dtype) -> None:
        """Global-atomics baseline (float32, not bit-reproducible); kept for the benchmark."""
        F, C, h, w = shape
        if dtype != "float32" or not grad:
            raise OptionError("the scatter variant is float32 only and needs a grad buffer")
        self.api.memset32(grad, F * C * h * w, stream)
        n = K * F * C
        nblocks = max(-(-n // BLOCK), 1)
        ws = self.workspace(nblocks)
        i = ctypes.c_int
        self.api.launch(self.fn("tgvc_guidance_scatter_f32"), (nblocks, 1, 1), (BLOCK, 1, 1), 0, stream,
                        [_p(x0), _p(ref), _p(pos), _p(vis), i(F), i(C), i(h), i(w), i(K), _p(grad), _p(ws)])
        self._finalize(ws, nblocks, F, C, K, loss, stream)
        if z:
            self.axpby(z, grad, z, F * C * h * w, 1.0, -step, stream=stream)

    def axpby(self, x: int, y: int, out: int, n: int, a: float, b: float, *, dtype: str = "float32",
              stream: int = 0) -> None:
        """``out = a * x + b * y`` over n elements (DDIM step, x0 prediction; see ddim_coefficients)."""
        if n <= 0:
            return
        name = "tgvc_axpby_f32" if dtype == "float32" else "tgvc_axpby_f16"
        blocks = min(-(-n // BLOCK), 65535)
        self.api.launch(self.fn(name), (blocks, 1, 1), (BLOCK, 1, 1), 0, stream,
                        [_p(x), _p(y), _p(out), ctypes.c_longlong(n), ctypes.c_float(a), ctypes.c_float(b)])

    def convert(self, src: int, dst: int, n: int, *, to_half: bool, stream: int = 0) -> None:
        """fp32 -> fp16 (``to_half``) or fp16 -> fp32, n elements."""
        if n <= 0:
            return
        name = "tgvc_f32_to_f16" if to_half else "tgvc_f16_to_f32"
        blocks = min(-(-n // BLOCK), 65535)
        self.api.launch(self.fn(name), (blocks, 1, 1), (BLOCK, 1, 1), 0, stream,
                        [_p(src), _p(dst), ctypes.c_longlong(n)])

    # -- host-array convenience path (tests) --------------------------------------------
    def to_device(self, array: np.ndarray) -> int:
        a = np.ascontiguousarray(array)
        ptr = self.api.alloc(a.nbytes)
        self.api.h2d(ptr, a)
        return ptr

    def loss_and_grad(self, x0: np.ndarray, ref: np.ndarray, pos: np.ndarray, vis: np.ndarray,
                      variant: str | None = None) -> tuple[float, np.ndarray]:
        """Same inputs and outputs as the NumPy reference; x0/ref float32 or float16 arrays."""
        x0 = np.asarray(x0)
        dtype = "float16" if x0.dtype == np.float16 else "float32"
        x0 = x0.astype(np.dtype(dtype), copy=False)
        ref = np.asarray(ref).astype(np.dtype(dtype), copy=False)
        pos = np.asarray(pos, np.float32)
        vis = np.asarray(vis, np.float32)
        F, C, h, w = x0.shape
        K = pos.shape[0]
        if ref.shape != (2, C, h, w) or pos.shape != (K, F, 2) or vis.shape != (K, F):
            raise OptionError("guidance inputs: x0 [F,C,h,w], ref [2,C,h,w], pos [K,F,2], vis [K,F]")
        ptrs = [self.to_device(a) for a in (x0, ref, pos.reshape(-1) if K else np.zeros(2, np.float32),
                                            vis.reshape(-1) if K else np.zeros(1, np.float32))]
        grad_ptr = self.api.alloc(4 * x0.size)
        try:
            self.guidance(*ptrs, (F, C, h, w), K, dtype=dtype, grad=grad_ptr, variant=variant)
            grad = np.empty((F, C, h, w), np.float32)
            self.api.d2h(grad, grad_ptr)
            loss = np.empty(1, np.float32)
            self.api.d2h(loss, self._loss_ptr)
        finally:
            for p in ptrs + [grad_ptr]:
                self.api.free(p)
        return float(loss[0]), grad

    def close(self) -> None:
        for p in (self._ws_ptr, self._loss_ptr):
            if p:
                self.api.free(p)
        self._ws_ptr = self._loss_ptr = 0
