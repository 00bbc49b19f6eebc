"""Python launcher of the diffusion kernels: NVRTC at first use, driver-API launches, no PyTorch.

The host work of the diffusion decoder (``tgvc_rt.decoder.diffusion``) around its VAE models, on the
GPU, so that latents and decoded images stay on the device:

* ``latent_affine.cu``: per-channel ``normalise`` (encoder latent -> normalised latent) and
  ``denormalise`` (normalised latent -> decoder input) of ``Autoencoder``;
* ``gaussian_blur.cu``: ``cv2.GaussianBlur(img, (0, 0), sigma)`` on planes [P, H, W];
* ``residual_output.cu``: the residual output, ``residual_change`` (decoder images of the generated
  and of the warp latents -> float32 change planes [B, 3, H, W]) then, after an optional blur in
  place, ``residual_compose`` (change + uint8 warp frames [B, H, W, 3] -> uint8 frames).

``DiffusionKernels`` methods take raw device addresses (ints) and a raw ``CUstream`` handle, enqueue
their launches and return at once; nothing is copied or synchronised, except that
``gaussian_blur`` uploads the taps of a sigma it has not seen yet (once per sigma, on the default
stream; ``close`` frees them). The ``run_*`` methods are the host-array path for tests.
``diffusion_reference`` has the NumPy reference of every op. Importing this module needs neither
CUDA nor cuda-python; constructing ``DiffusionKernels`` does.
"""
from __future__ import annotations

import ctypes

import numpy as np

from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import nvrtc_cache
from tgvc_rt.kernels.kernel_set import KernelSet
from tgvc_rt.kernels import diffusion_reference as ref

SOURCES = {name: nvrtc_cache.KERNEL_DIR / f"{name}.cu"
           for name in ("latent_affine", "gaussian_blur", "residual_output")}
DTYPES = {"float32": (np.float32, "f32"), "float16": (np.float16, "f16")}
MAX_GRID_YZ = 65535  # channels/rows (grid.y) and frames/planes (grid.z) of one launch

_I = ctypes.c_int


def _p(v) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(v) if v else None)


def _dtype(dtype: str) -> tuple[type, str]:
    if dtype not in DTYPES:
        raise OptionError(f"diffusion kernel dtype must be float32 or float16, got {dtype}")
    return DTYPES[dtype]


def _check_grid(what: str, rows: int, frames: int) -> None:
    if not 1 <= rows <= MAX_GRID_YZ or not 0 <= frames <= MAX_GRID_YZ:
        raise OptionError(f"{what}: need 1 <= rows <= {MAX_GRID_YZ} and 0 <= frames <= {MAX_GRID_YZ}, "
                          f"got {rows} and {frames}")


class DiffusionKernels(KernelSet):
    """The three diffusion kernels compiled for one device; cheap to call."""

    SOURCES = SOURCES

    def __init__(self, api=None, *, device: int = 0, block: int = 128, prefer: str = "cuda-python",
                 defines: tuple[str, ...] = ()):
        super().__init__(api, device=device, block=block, prefer=prefer, defines=defines)
        self._taps: dict[float, tuple[int, int]] = {}

    def taps(self, sigma: float) -> tuple[int, int]:
        """(device address, ksize) of OpenCV's float32 Gaussian taps for ``sigma``, uploaded at first use."""
        key = float(sigma)
        if key not in self._taps:
            try:
                taps = ref.gaussian_taps(key)
            except ValueError as err:
                raise OptionError(str(err)) from None
            ptr = self.api.alloc(taps.nbytes)
            self.api.h2d(ptr, taps)
            self._taps[key] = (ptr, len(taps))
        return self._taps[key]

    def close(self) -> None:
        """Free the uploaded taps (the kernels stay usable; taps upload again when needed)."""
        for ptr, _ in self._taps.values():
            self.api.free(ptr)
        self._taps.clear()

    # -- device-pointer API -------------------------------------------------------------
    def _affine(self, name: str, x: int, out: int, n: int, c: int, hw: int, mean: int, std: int,
                stream: int) -> None:
        _check_grid(name, c, n)
        if hw < 1:
            raise OptionError(f"{name}: hw must be >= 1, got {hw}")
        if n == 0:
            return
        self.api.launch(self.fn("latent_affine", f"tgvc_latent_{name}_f32"), self._grid(hw, c, n),
                        (self.block, 1, 1), 0, stream, [_p(x), _I(hw), _p(mean), _p(std), _p(out)])

    def normalise(self, x: int, out: int, n: int, c: int, hw: int, mean: int, std: int, *,
                  stream: int = 0) -> None:
        """Enqueue float32 latents ``x`` [n, c, hw] -> ``out`` = (x - mean[c]) / std[c] (``out`` may be
        ``x``); ``mean``, ``std``: device float32 [c]. Bit-exact with ``Autoencoder.encode``."""
        self._affine("normalise", x, out, n, c, hw, mean, std, stream)

    def denormalise(self, x: int, out: int, n: int, c: int, hw: int, mean: int, std: int, *,
                    stream: int = 0) -> None:
        """Enqueue float32 normalised latents ``x`` [n, c, hw] -> ``out`` = x * std[c] + mean[c] (``out``
        may be ``x``); bit-exact with ``Autoencoder.decode_float``'s decoder input."""
        self._affine("denormalise", x, out, n, c, hw, mean, std, stream)

    def gaussian_blur(self, src: int, tmp: int, dst: int, planes: int, height: int, width: int,
                      sigma: float, *, stream: int = 0) -> None:
        """Enqueue the blur of float32 ``src`` [planes, height, width] into ``dst`` (same shape; may be
        ``src``) through ``tmp`` (same size, distinct from both): every plane as
        cv2.GaussianBlur(plane, (0, 0), sigma) blurs it (row pass into ``tmp``, column pass into ``dst``)."""
        _check_grid("gaussian_blur", height, planes)
        if width < 1:
            raise OptionError(f"gaussian_blur: width must be >= 1, got {width}")
        if tmp in (src, dst):
            raise OptionError("gaussian_blur: tmp must be a buffer of its own")
        taps, ksize = self.taps(sigma)
        if planes == 0:
            return
        grid = self._grid(width, height, planes)
        self.api.launch(self.fn("gaussian_blur", "tgvc_gaussian_rows_f32"), grid, (self.block, 1, 1), 0, stream,
                        [_p(src), _I(height), _I(width), _p(taps), _I(ksize), _p(tmp)])
        self.api.launch(self.fn("gaussian_blur", "tgvc_gaussian_cols_f32"), grid, (self.block, 1, 1), 0, stream,
                        [_p(tmp), _I(height), _I(width), _p(taps), _I(ksize), _p(dst)])

    def residual_change(self, dz: int, dw: int, batch: int, hp: int, wp: int, height: int, width: int,
                        out: int, *, dtype: str = "float32", stream: int = 0) -> None:
        """Enqueue the decoder images ``dz`` (generated latents) and ``dw`` (warp latents), each
        [batch, 3, hp, wp] of ``dtype`` in [0, 1], -> float32 ``out`` [batch, 3, height, width] =
        dz * 255 - dw * 255 cropped to height x width. With one decoder run over both halves
        (as the host decoder does), ``dw`` is ``dz`` + batch * 3 * hp * wp elements."""
        _, sfx = _dtype(dtype)
        _check_grid("residual_change", height, batch)
        if width < 1 or height > hp or width > wp:
            raise OptionError(f"residual_change: {height} x {width} does not fit {hp} x {wp}")
        if batch == 0:
            return
        self.api.launch(self.fn("residual_output", "tgvc_residual_change_" + sfx), self._grid(width, height, batch),
                        (self.block, 1, 1), 0, stream,
                        [_p(dz), _p(dw), _I(hp), _I(wp), _I(height), _I(width), _p(out)])

    def residual_compose(self, change: int, warp: int, batch: int, height: int, width: int, out: int, *,
                         stream: int = 0) -> None:
        """Enqueue float32 ``change`` [batch, 3, height, width] + uint8 ``warp`` frames [batch, height,
        width, 3] (RGB) -> uint8 ``out`` [batch, height, width, 3] = clip(rint(warp + change), 0, 255)
        (``out`` may be ``warp``)."""
        _check_grid("residual_compose", height, batch)
        if width < 1:
            raise OptionError(f"residual_compose: width must be >= 1, got {width}")
        if batch == 0:
            return
        self.api.launch(self.fn("residual_output", "tgvc_residual_compose_u8"), self._grid(width, height, batch),
                        (self.block, 1, 1), 0, stream, [_p(change), _p(warp), _I(height), _I(width), _p(out)])

    # -- host-array convenience path (tests) --------------------------------------------
    def _run_affine(self, method, x: np.ndarray, mean, std) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        n, c = x.shape[:2]
        hw = int(np.prod(x.shape[2:], dtype=np.int64))
        mean, std = np.asarray(mean, np.float32).ravel(), np.asarray(std, np.float32).ravel()
        if mean.size != c or std.size != c:
            raise OptionError(f"mean and std need {c} values, got {mean.size} and {std.size}")
        out = np.empty_like(x)
        return self._run([x, mean, std], [out], lambda xp, m, s, o: method(xp, o, n, c, hw, m, s))[0]

    def run_normalise(self, x: np.ndarray, mean, std) -> np.ndarray:
        """float32 [N, C, ...] -> (x - mean[c]) / std[c] (NumPy in and out)."""
        return self._run_affine(self.normalise, x, mean, std)

    def run_denormalise(self, zn: np.ndarray, mean, std) -> np.ndarray:
        """float32 [N, C, ...] -> zn * std[c] + mean[c] (NumPy in and out)."""
        return self._run_affine(self.denormalise, zn, mean, std)

    def run_gaussian_blur(self, planes: np.ndarray, sigma: float) -> np.ndarray:
        """float32 [..., H, W] -> every plane blurred as cv2.GaussianBlur(plane, (0, 0), sigma)."""
        planes = np.ascontiguousarray(planes, np.float32)
        height, width = planes.shape[-2:]
        p = int(np.prod(planes.shape[:-2], dtype=np.int64))
        out = np.empty_like(planes)
        tmp = np.empty_like(planes)
        return self._run([planes], [tmp, out], lambda s, t, d: self.gaussian_blur(s, t, d, p, height, width,
                                                                                  sigma))[1]

    def run_residual_change(self, dz: np.ndarray, dw: np.ndarray, height: int, width: int) -> np.ndarray:
        """[B, 3, hp, wp] float32 or float16 (both the same) -> float32 change [B, 3, height, width]."""
        dz, dw = np.ascontiguousarray(dz), np.ascontiguousarray(dw)
        dtype = "float16" if dz.dtype == np.float16 else "float32"
        np_dtype = _dtype(dtype)[0]
        dz, dw = dz.astype(np_dtype, copy=False), dw.astype(np_dtype, copy=False)
        if dz.shape != dw.shape:
            raise OptionError(f"dz and dw differ in shape: {dz.shape} vs {dw.shape}")
        b, _, hp, wp = dz.shape
        out = np.zeros((b, 3, height, width), np.float32)
        return self._run([dz, dw], [out], lambda z, w, o: self.residual_change(z, w, b, hp, wp, height, width, o,
                                                                               dtype=dtype))[0]

    def run_residual_compose(self, change: np.ndarray, warp: np.ndarray) -> np.ndarray:
        """float32 change [B, 3, H, W] + uint8 warp [B, H, W, 3] -> uint8 [B, H, W, 3]."""
        change = np.ascontiguousarray(change, np.float32)
        warp = np.ascontiguousarray(warp, np.uint8)
        b, _, height, width = change.shape
        if warp.shape != (b, height, width, 3):
            raise OptionError(f"warp frames {warp.shape} do not match the change planes {change.shape}")
        out = np.zeros_like(warp)
        return self._run([change, warp], [out], lambda c, w, o: self.residual_compose(c, w, b, height, width,
                                                                                      o))[0]

    def run_residual_output(self, dz: np.ndarray, dw: np.ndarray, warp: np.ndarray, *, blur: float = 0.0) -> np.ndarray:
        """The whole residual output as the decoder chains it on the device: ``residual_change``, the blur
        of the change planes in place when ``blur`` > 0 (sigma), ``residual_compose``; [B, 3, hp, wp]
        float32 or float16 images and uint8 warp [B, H, W, 3] -> uint8 [B, H, W, 3]."""
        dz, dw = np.ascontiguousarray(dz), np.ascontiguousarray(dw)
        dtype = "float16" if dz.dtype == np.float16 else "float32"
        dz, dw = dz.astype(_dtype(dtype)[0], copy=False), dw.astype(_dtype(dtype)[0], copy=False)
        warp = np.ascontiguousarray(warp, np.uint8)
        b, height, width = warp.shape[:3]
        hp, wp = dz.shape[2:]
        planes = np.zeros((2, b, 3, height, width), np.float32)  # change, blur buffer
        out = np.zeros_like(warp)

        def launch(z, w, wf, pl, o):
            change, tmp = pl, pl + planes[0].nbytes
            self.residual_change(z, w, b, hp, wp, height, width, change, dtype=dtype)
            if blur > 0:
                self.gaussian_blur(change, tmp, change, 3 * b, height, width, blur)
            self.residual_compose(change, wf, b, height, width, o)
        return self._run([dz, dw, warp, planes], [out], launch)[0]

