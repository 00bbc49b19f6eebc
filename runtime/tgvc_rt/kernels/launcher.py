"""Python launcher of ``guidance.cu``: NVRTC at first use, driver-API launches, no PyTorch.

``CudaGuidance`` has two faces:

* device pointers (the decoding loop): ``prepare(...)`` once per window (positions, visibility and
  reference latents are constants of a window) returns a ``DevicePlan``; ``step(plan, x0, ...)``
  at every sampler step enqueues loss, gradient and the in-place latent update in one launch.
  ``guidance(...)`` does both (two launches). ``axpby(...)`` and ``convert(...)`` are the DDIM and
  dtype helpers. All take raw device addresses (ints) and a raw ``CUstream`` handle, enqueue work
  and return at once; nothing is copied to the host and nothing synchronises. Pointers come from
  our own ``alloc`` or from the model backend (ORT ``OrtValue.data_ptr()``, TensorRT bindings,
  ``torch.Tensor.data_ptr()``).
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

HALO = 5
MAX_TRACKS = 65536  # the kernel's fixed-point sums are exact up to this many tracks (TGVC_MAX_TRACKS)
DTYPES = {"float32": 0, "float16": 1}


@dataclass(frozen=True)
class GuidanceOptions:
    tile_h: int = 40  # most latent rows one block owns (tiles are balanced over the plane); 40x64
    # is a whole 512x320 latent plane per block (44 KB of shared memory)
    tile_w: int = 64  # most latent columns one block owns
    block: int = 256  # threads per block (compiled in as TGVC_BLOCK)
    min_blocks: int = 4  # step blocks per SM asked of the register allocator (TGVC_MIN_BLOCKS):
    # 4 x 256 threads keeps all 448 active blocks of a 16-frame, 32-channel window resident at once
    defines: tuple[str, ...] = ()  # extra NVRTC options


@dataclass
class DevicePlan:
    """One window's prepared device data (``prepare``): track records, reference taps, loss slots."""

    ptr: int  # workspace base (float32 units, layout of workspace_layout)
    floats: int
    shape: tuple[int, int, int, int]  # (F, C, h, w)
    K: int
    dtype: str
    owned: bool = True


def balanced_tile(h: int, w: int, max_h: int = 40, max_w: int = 64) -> tuple[int, int]:
    """Tile of at most max_h x max_w, equal-sized over the plane (mirrors tgvc_guidance_default_tile)."""
    ny, nx = -(-h // max_h), -(-w // max_w)
    return -(-h // ny), -(-w // nx)


def smem_bytes(tile_h: int, tile_w: int) -> int:
    """Dynamic shared memory of a step block (mirrors tgvc_guidance_smem_bytes)."""
    return 3 * (tile_h + 2 * HALO) * (tile_w + 2 * HALO) * 4


def workspace_layout(F: int, C: int, K: int, nblocks: int) -> dict[str, int]:
    """Float offsets in a plan's workspace (mirrors guidance_host.inc): counter, track records
    (4 F K), reference taps (50 C K), one loss partial per step block; ``total`` floats."""
    trk, rp = 4, 4 + 4 * F * K
    partials = rp + 50 * C * K
    return {"counter": 0, "trk": trk, "rp": rp, "partials": partials, "total": partials + nblocks}


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


def check_track_data(pos: np.ndarray, vis: np.ndarray) -> None:
    """Host-side contract checks: at most MAX_TRACKS tracks, finite positions, vis in [0, 1]."""
    if pos.shape[0] > MAX_TRACKS:
        raise OptionError(f"the CUDA guidance kernel takes at most {MAX_TRACKS} tracks, got {pos.shape[0]}")
    if pos.size and not np.isfinite(pos).all():
        raise OptionError("track positions must be finite")
    if vis.size and (vis.min() < 0 or vis.max() > 1 or not np.isfinite(vis).all()):
        raise OptionError("visibilities must lie in [0, 1]")


_P, _I, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
_STEP_TYPES = (_P, _P, _P, _I, _I, _I, _I, _I, _I, _I, _P, _P, _F, _P, _P, _P)  # tgvc_guidance_step_* arguments


def _p(v) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(v) if v else None)


class CudaGuidance:
    """Compiled guidance kernels on one device; cheap to call."""

    def __init__(self, device: int = 0, options: GuidanceOptions = GuidanceOptions(),
                 api=None, prefer: str = "cuda-python"):
        if options.block % 32 or not 32 <= options.block <= 1024 or options.min_blocks < 1:
            raise OptionError(f"block must be a multiple of 32 in [32, 1024] and min_blocks >= 1, got {options}")
        self.options = options
        self.api = api or cuda_api.open_api(device, prefer)
        cc = self.api.compute_capability()
        arch, _ = nvrtc_cache.pick_target(cc)
        defines = (f"-DTGVC_BLOCK={options.block}", f"-DTGVC_MIN_BLOCKS={options.min_blocks}", *options.defines)
        self.kernel = nvrtc_cache.cached_compile(arch, defines)
        image = self.kernel.image if not self.kernel.is_ptx else self.kernel.image.rstrip(b"\0 ") + b"\0"
        self.module = self.api.load(image)
        self._fn: dict[str, object] = {}
        self._smem_set: dict[str, int] = {}
        self._plan: DevicePlan | None = None  # reused by guidance()
        self._step_key = None  # buffers of the last step() call and their ready launch (stepper)
        self._step_run = None
        self._loss_ptr = self.api.alloc(4)

    # -- device-pointer API -------------------------------------------------------------
    def fn(self, name: str):
        if name not in self._fn:
            self._fn[name] = self.api.function(self.module, name)
        return self._fn[name]

    @property
    def loss_ptr(self) -> int:
        """Device float the last ``step(..., loss=None)`` call wrote the loss to."""
        return self._loss_ptr

    def tiling(self, h: int, w: int) -> tuple[int, int, int]:
        """(tile_h, tile_w, tiles per plane) of the step kernel for an h x w latent."""
        th, tw = balanced_tile(h, w, self.options.tile_h, self.options.tile_w)
        return th, tw, -(-h // th) * -(-w // tw)

    def prepare(self, ref: int, pos: int, vis: int, shape: tuple[int, int, int, int], K: int, *,
                dtype: str = "float32", stream: int = 0, plan: DevicePlan | None = None) -> DevicePlan:
        """Enqueue the per-window preparation: track records and reference taps (``ref`` [2, C, h, w]
        of ``dtype``, ``pos`` float32 [K, F, 2] latent (u, v), ``vis`` float32 [K, F] in [0, 1]).
        Reuses ``plan``'s workspace when it is large enough, else allocates a new one."""
        F, C, h, w = (int(s) for s in shape)
        if dtype not in DTYPES:
            raise OptionError(f"latent dtype must be float32 or float16, got {dtype}")
        if not 0 <= K <= MAX_TRACKS:
            raise OptionError(f"the CUDA guidance kernel takes 0..{MAX_TRACKS} tracks, got {K}")
        need = workspace_layout(F, C, K, F * C * self.tiling(h, w)[2])["total"]
        if plan is None or not plan.owned or plan.floats < need:
            if plan is not None:
                self.free_plan(plan)
            plan = DevicePlan(self.api.alloc(4 * need), need, (F, C, h, w), K, dtype)
        plan.shape, plan.K, plan.dtype = (F, C, h, w), K, dtype
        lay = workspace_layout(F, C, K, 0)
        n = max(F * K, 2 * C * K, 1)
        i = ctypes.c_int
        name = "tgvc_guidance_prepare_" + ("f32" if dtype == "float32" else "f16")
        self.api.launch(self.fn(name), (-(-n // self.options.block), 1, 1), (self.options.block, 1, 1), 0, stream,
                        [_p(ref), _p(pos), _p(vis), i(F), i(C), i(h), i(w), i(K),
                         _p(plan.ptr + 4 * lay["trk"]), _p(plan.ptr + 4 * lay["rp"]), _p(plan.ptr)])
        return plan

    def step(self, plan: DevicePlan, x0: int, *, grad: int = 0, z: int = 0, step: float = 0.0,
             loss: int | None = None, stream: int = 0) -> None:
        """Enqueue one guidance step on ``stream`` (one launch): the fp32 gradient into ``grad`` if
        non-zero, ``z -= step * grad`` on the latent ``z`` (dtype of the plan) if non-zero, the
        normalised loss into ``loss`` (default ``self.loss_ptr``; 0: no loss). ``x0`` has the plan's
        shape and dtype. Returns without synchronising."""
        key = (id(plan), plan.ptr, plan.K, plan.shape, plan.dtype, x0, grad, z, loss, stream)
        if key != self._step_key:  # a new buffer set: build its ready launch once
            self._step_run = self.stepper(plan, x0, grad=grad, z=z, loss=loss, stream=stream)
            self._step_key = key
        self._step_run(step)

    def stepper(self, plan: DevicePlan, x0: int, *, grad: int = 0, z: int = 0, loss: int | None = None,
                stream: int = 0):
        """A ready launch of ``step`` for fixed buffers: returns ``run(step)``, which only sets the step
        size and enqueues the kernel (one driver call, no other Python work): the cheapest per-step
        path for a sampler loop whose buffers stay put. Valid while ``plan`` is neither re-prepared
        with another K/shape/dtype nor freed."""
        F, C, h, w = plan.shape
        th, tw, tiles = self.tiling(h, w)
        loss = self._loss_ptr if loss is None else loss
        name = "tgvc_guidance_step_" + ("f32" if plan.dtype == "float32" else "f16")
        smem = smem_bytes(th, tw)
        fn = self.fn(name)
        if smem > 48 * 1024 and self._smem_set.get(name, 0) < smem:
            self.api.set_max_dynamic_smem(fn, smem)
            self._smem_set[name] = smem
        lay = workspace_layout(F, C, plan.K, 0)
        vals = (x0, plan.ptr + 4 * lay["trk"], plan.ptr + 4 * lay["rp"], F, C, h, w, plan.K, th, tw, grad, z, 0.0,
                plan.ptr + 4 * lay["partials"], plan.ptr, loss)
        args = [t((int(v) or None) if t is _P else v) for t, v in zip(_STEP_TYPES, vals)]
        step_arg = args[12]
        grid, block = (tiles, C, F), (self.options.block, 1, 1)
        api = self.api
        if api.name != "cuda-python":
            def run(step: float) -> None:
                step_arg.value = step
                api.launch(fn, grid, block, smem, stream, args)
            return run
        params = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        launch, handle, addr = api.drv.cuLaunchKernel, api.drv.CUstream(int(stream)), ctypes.addressof(params)

        def run(step: float) -> None:
            step_arg.value = step
            err = launch(fn, tiles, C, F, block[0], 1, 1, smem, handle, addr, 0)[0]
            if int(err):
                raise cuda_api.CudaUnavailable(f"cuLaunchKernel failed: {err}")
        run._keep = (args, params)  # the launch reads these addresses
        return run

    def guidance(self, x0: int, ref: int, pos: int, vis: int, shape: tuple[int, int, int, int], K: int, *,
                 dtype: str = "float32", grad: int = 0, z: int = 0, step: float = 0.0,
                 loss: int | None = None, stream: int = 0) -> None:
        """``prepare`` (into a reused internal plan) + ``step``: for callers whose ref/pos/vis change."""
        self._plan = self.prepare(ref, pos, vis, shape, K, dtype=dtype, stream=stream, plan=self._plan)
        self.step(self._plan, x0, grad=grad, z=z, step=step, loss=loss, stream=stream)

    def free_plan(self, plan: DevicePlan) -> None:
        if plan.owned and plan.ptr:
            self.api.free(plan.ptr)
        plan.ptr = 0
        self._step_key = self._step_run = None

    def axpby(self, x: int, y: int, out: int, n: int, a: float, b: float, *, dtype: str = "float32",
              stream: int = 0) -> None:
        """``out = a * x + b * y`` over n elements (DDIM step, x0 prediction; see ddim_coefficients)."""
        if n <= 0:
            return
        name = "tgvc_axpby_f32" if dtype == "float32" else "tgvc_axpby_f16"
        bs = self.options.block
        blocks = min(-(-n // bs), 65535)
        self.api.launch(self.fn(name), (blocks, 1, 1), (bs, 1, 1), 0, stream,
                        [_p(x), _p(y), _p(out), ctypes.c_longlong(n), ctypes.c_float(a), ctypes.c_float(b)])

    def convert(self, src: int, dst: int, n: int, *, to_half: bool, stream: int = 0) -> None:
        """fp32 -> fp16 (``to_half``) or fp16 -> fp32, n elements."""
        if n <= 0:
            return
        name = "tgvc_f32_to_f16" if to_half else "tgvc_f16_to_f32"
        bs = self.options.block
        blocks = min(-(-n // bs), 65535)
        self.api.launch(self.fn(name), (blocks, 1, 1), (bs, 1, 1), 0, stream,
                        [_p(src), _p(dst), ctypes.c_longlong(n)])

    # -- host-array convenience path (tests) --------------------------------------------
    def to_device(self, array: np.ndarray) -> int:
        a = np.ascontiguousarray(array)
        ptr = self.api.alloc(a.nbytes)
        self.api.h2d(ptr, a)
        return ptr

    def loss_and_grad(self, x0: np.ndarray, ref: np.ndarray, pos: np.ndarray,
                      vis: np.ndarray) -> tuple[float, np.ndarray]:
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
        check_track_data(pos, vis)
        ptrs = [self.to_device(a) for a in (x0, ref, pos.reshape(-1) if K else np.zeros(2, np.float32),
                                            vis.reshape(-1) if K else np.zeros(1, np.float32))]
        grad_ptr = self.api.alloc(4 * x0.size)
        try:
            self.guidance(*ptrs, (F, C, h, w), K, dtype=dtype, grad=grad_ptr)
            grad = np.empty((F, C, h, w), np.float32)
            self.api.d2h(grad, grad_ptr)
            loss = np.empty(1, np.float32)
            self.api.d2h(loss, self._loss_ptr)
        finally:
            for p in ptrs + [grad_ptr]:
                self.api.free(p)
        return float(loss[0]), grad

    def close(self) -> None:
        if self._plan is not None:
            self.free_plan(self._plan)
            self._plan = None
        if self._loss_ptr:
            self.api.free(self._loss_ptr)
        self._loss_ptr = 0
