"""Diffusion kernels (latent_affine.cu, gaussian_blur.cu, residual_output.cu) against the host code path.

Three layers, as tests/test_frame_kernels.py: the NumPy reference (tgvc_rt.kernels.diffusion_reference)
against what the diffusion decoder runs on the host today (backends.base.Autoencoder's normalisation,
cv2.GaussianBlur of H x W x 3 images, the residual branch of decoder.diffusion.iter_diffused); the
kernels themselves on the CPU (g++ with kernels/cuda_emu.h) against the reference, both through their
C++ host launchers and behind the Python launcher (an emulated cuLaunchKernel); and, where there is
one, the GPU. The compile test builds every source with nvcc (or NVRTC).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import cv2
import numpy as np
import pytest

from kernel_compile import check_compiles
from test_frame_kernels import EmuApi, _gxx_build
from tgvc_rt.backends.base import Autoencoder
from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import diffusion_kernels, diffusion_reference as ref, nvrtc_cache

KDIR = Path(diffusion_kernels.__file__).parent
SIGMAS = [4.0, 1.3, 0.4, 2.5]
BLUR_SIZES = [(1, 1), (2, 3), (5, 40), (17, 29), (40, 64), (64, 65)]  # (H, W); some narrower than the kernel
BLUR_TOL = 1e-4  # absolute, on values of magnitude ~50


class FakeSession:
    """A VAE session: returns ``out`` (or a function of the feed) and records what it was fed."""

    def __init__(self, name: str, fn):
        self.name, self.fn, self.fed = name, fn, []

    def run(self, feeds: dict) -> dict:
        x = next(iter(feeds.values()))
        self.fed.append(np.array(x))
        return {self.name: self.fn(x)}


def latents(seed: int, n: int = 3, c: int = 4, h: int = 5, w: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 6.0, (n, c, h, w)).astype(np.float32)


def stats(c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(c)
    return rng.normal(0, 1, c).astype(np.float32), rng.uniform(0.3, 7.0, c).astype(np.float32)


def images01(seed: int, batch: int, hp: int, wp: int) -> np.ndarray:
    """Decoder images in [-0.05, 1.05] with values on the 1/255 grid mixed in."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.05, 1.05, (batch, 3, hp, wp)).astype(np.float32)
    grid = (rng.integers(0, 256, x.shape) + rng.choice([0.0, 0.5], x.shape)) / 255.0
    return np.where(rng.random(x.shape) < 0.3, grid, x).astype(np.float32)


def warp_frames(seed: int, batch: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


def host_residual(both: np.ndarray, n: int, height: int, width: int, warp: np.ndarray, blur: float) -> np.ndarray:
    """decoder.diffusion.iter_diffused's residual branch on decode_float's output ``both`` [2n, Hp, Wp, 3]."""
    change = both[:n, :height, :width] - both[n:, :height, :width]
    if blur > 0:
        change = np.stack([cv2.GaussianBlur(c, (0, 0), blur) for c in change])
    return np.clip(np.rint(warp.astype(np.float32) + change), 0, 255).astype(np.uint8)


def hwc_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 50.0, (height, width, 3)).astype(np.float32)


# ---- (a) NumPy reference == the host code path ----------------------------------------------
def test_reference_normalise_is_autoencoder_encode():
    mean, std = stats()
    z = latents(1)
    ae = Autoencoder(FakeSession("latent", lambda x: z[: x.shape[0]]), None, mean, std, batch=8)
    got = ae.encode(np.zeros((3, 40, 56, 3), np.uint8))
    np.testing.assert_array_equal(got, ref.normalise(z, mean, std))


def test_reference_denormalise_is_autoencoder_decoder_input():
    mean, std = stats()
    zn = latents(2)
    dec = FakeSession("image", lambda x: np.zeros((x.shape[0], 3, 8, 8), np.float32))
    Autoencoder(None, dec, mean, std, batch=8).decode_float(zn)
    np.testing.assert_array_equal(dec.fed[0], ref.denormalise(zn, mean, std))
    np.testing.assert_array_equal(ref.denormalise(ref.normalise(zn, mean, std), mean, std).shape, zn.shape)


def test_reference_taps_are_cv2_gaussian_kernel():
    for sigma in [*SIGMAS, 0.07, 0.0625, 0.3, 0.5, 0.7, 1.0, 3.0, 5.5, 8.0, 12.3, 31.7]:
        taps = ref.gaussian_taps(sigma)
        n = ref.gaussian_ksize(sigma)
        assert len(taps) == n and n % 2 == 1
        np.testing.assert_array_equal(taps, cv2.getGaussianKernel(n, sigma, cv2.CV_32F).ravel())
        img = hwc_image(3, 9, 11)  # cv2's own size choice for (0, 0) is the same n
        np.testing.assert_array_equal(cv2.GaussianBlur(img, (0, 0), sigma), cv2.GaussianBlur(img, (n, n), sigma))
    with pytest.raises(ValueError):
        ref.gaussian_ksize(0.0)


def test_reference_fma32_is_a_single_rounding():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(0, 100, 100000).astype(np.float32) for _ in range(3))
    got = ref.fma32(a, b, c)
    exact = [np.float32(float(np.longdouble(x) * np.longdouble(y) + np.longdouble(z))) for x, y, z in
             zip(a[:2000], b[:2000], c[:2000])]  # a * b exact in 64 bits; + c: a rounding far below float32's
    np.testing.assert_array_equal(got[:2000], np.array(exact, np.float32))
    assert (got != (a * b + c)).any()  # not the two-rounding result
    # a tie of float32 made by the sum, broken by the product's low bits
    one, tiny = np.float32(1.0), np.float32(2.0 ** -24)
    assert ref.fma32(tiny, np.float32(1.0 + 2.0 ** -23), one) == np.nextafter(one, np.float32(2))


@pytest.mark.parametrize("height,width", BLUR_SIZES + [(72, 88), (135, 240)])
def test_reference_blur_is_cv2_gaussian_blur(height, width):
    """Planar reference == cv2.GaussianBlur on the H x W x 3 image, within BLUR_TOL (a few ulps)."""
    img = hwc_image(height * 100 + width, height, width)
    for sigma in SIGMAS:
        want = cv2.GaussianBlur(img, (0, 0), sigma).reshape(height, width, 3)
        got = ref.gaussian_blur(img.transpose(2, 0, 1), sigma).transpose(1, 2, 0)
        np.testing.assert_allclose(got, want, rtol=0, atol=BLUR_TOL)


def test_reference_residual_is_host_path():
    """decode_float of [generated; warp] latents, the change, the (optional) blur and the uint8 frames."""
    n, height, width, hp, wp = 3, 37, 45, 40, 48
    mean, std = stats()
    images = images01(4, 2 * n, hp, wp)
    for dtype in (np.float32, np.float16):
        dec = FakeSession("image", lambda x, dtype=dtype: images.astype(dtype)[: x.shape[0]])
        both = Autoencoder(None, dec, mean, std, batch=2 * n).decode_float(latents(5, 2 * n))
        dz, dw = images[:n].astype(dtype), images[n:].astype(dtype)
        change = ref.residual_change(dz, dw, height, width)
        want_change = (both[:n, :height, :width] - both[n:, :height, :width]).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(change, want_change)
        warp = warp_frames(6, n, height, width)
        np.testing.assert_array_equal(ref.residual_compose(change, warp), host_residual(both, n, height, width,
                                                                                        warp, 0.0))
        blurred = ref.residual_compose(ref.gaussian_blur(change, 4.0), warp)
        host = host_residual(both, n, height, width, warp, 4.0)
        diff = np.abs(blurred.astype(int) - host)  # the blur is within BLUR_TOL: a rounding tie may flip
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_reference_compose_edges():
    change = np.array([[[[np.nan, np.inf, -np.inf, 0.5, 1.5, -0.5, 300.0, -300.0]]] * 3], np.float32)
    warp = np.full((1, 1, 8, 3), 10, np.uint8)
    got = ref.residual_compose(change, warp)[0, 0, :, 0]
    np.testing.assert_array_equal(got, [0, 255, 0, 10, 12, 10, 255, 0])  # 10.5 -> 10, 11.5 -> 12, 9.5 -> 10


# ---- (b) the kernels on the CPU (emulated CUDA) ------------------------------------------------
@pytest.fixture(scope="module")
def emu_lib(tmp_path_factory):
    out = _gxx_build(tmp_path_factory.mktemp("diffusion_emu") / "diffusion_emu.so", "-shared", "-fPIC",
                     source="diffusion_emu_main.cpp")
    lib = ctypes.CDLL(str(out))
    P, I = ctypes.c_void_p, ctypes.c_int
    lib.tgvc_cuda_latent_affine.argtypes = [I, P, I, I, I, P, P, P, P]
    lib.tgvc_gaussian_taps.argtypes = [ctypes.c_double, P, I]
    lib.tgvc_cuda_gaussian_blur.argtypes = [P, P, P, I, I, I, P, I, P]
    lib.tgvc_cuda_residual_change.argtypes = [I, P, P, I, I, I, I, I, P, P]
    lib.tgvc_cuda_residual_compose.argtypes = [P, P, I, I, I, P, P]
    return lib


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def emu_blur(lib, planes: np.ndarray, sigma: float, in_place: bool = False) -> np.ndarray:
    n = lib.tgvc_gaussian_taps(sigma, None, 0)
    taps = np.zeros(n, np.float32)
    assert lib.tgvc_gaussian_taps(sigma, _ptr(taps), n) == n
    src = np.ascontiguousarray(planes, np.float32).copy()
    tmp, dst = np.empty_like(src), src if in_place else np.empty_like(src)
    p = int(np.prod(src.shape[:-2]))
    assert lib.tgvc_cuda_gaussian_blur(_ptr(src), _ptr(tmp), _ptr(dst), p, *src.shape[-2:], _ptr(taps), n, None) == 0
    return dst


def test_emulated_latent_affine(emu_lib):
    mean, std = stats(5)
    x = latents(7, 2, 5, 6, 9)
    for inverse, op in ((0, ref.normalise), (1, ref.denormalise)):
        out = np.full_like(x, np.nan)
        assert emu_lib.tgvc_cuda_latent_affine(inverse, _ptr(x), 2, 5, 54, _ptr(mean), _ptr(std), _ptr(out), None) == 0
        np.testing.assert_array_equal(out, op(x, mean, std))
        y = x.copy()  # in place
        assert emu_lib.tgvc_cuda_latent_affine(inverse, _ptr(y), 2, 5, 54, _ptr(mean), _ptr(std), _ptr(y), None) == 0
        np.testing.assert_array_equal(y, op(x, mean, std))


def test_emulated_gaussian_taps(emu_lib):
    for sigma in [*SIGMAS, 0.07, 0.3, 0.7, 5.5, 12.3, 31.7]:
        n = emu_lib.tgvc_gaussian_taps(sigma, None, 0)
        taps = np.zeros(n, np.float32)
        assert emu_lib.tgvc_gaussian_taps(sigma, _ptr(taps), n) == n == ref.gaussian_ksize(sigma)
        np.testing.assert_array_equal(taps, ref.gaussian_taps(sigma))
    assert emu_lib.tgvc_gaussian_taps(0.0, None, 0) == -1 and emu_lib.tgvc_gaussian_taps(float("nan"), None, 0) == -1


@pytest.mark.parametrize("height,width", BLUR_SIZES)
def test_emulated_gaussian_blur(emu_lib, height, width):
    planes = np.random.default_rng(height + width).normal(0, 50, (2, 3, height, width)).astype(np.float32)
    for sigma in (4.0, 1.3):
        want = ref.gaussian_blur(planes, sigma)
        np.testing.assert_array_equal(emu_blur(emu_lib, planes, sigma), want)
        np.testing.assert_array_equal(emu_blur(emu_lib, planes, sigma, in_place=True), want)


@pytest.mark.parametrize("height,width,hp,wp", [(1, 1, 8, 8), (17, 29, 24, 32), (37, 45, 40, 48)])
def test_emulated_residual(emu_lib, height, width, hp, wp):
    b = 2
    images = images01(height, 2 * b, hp, wp)
    warp = warp_frames(width, b, height, width)
    for code, dt in ((0, np.float32), (1, np.float16)):
        x = images.astype(dt)
        change = np.full((b, 3, height, width), np.nan, np.float32)
        assert emu_lib.tgvc_cuda_residual_change(code, _ptr(x), _ptr(x[b:]), b, hp, wp, height, width,
                                                 _ptr(change), None) == 0
        np.testing.assert_array_equal(change, ref.residual_change(x[:b], x[b:], height, width))
        change[0, 0, 0, 0], change[-1, 2, -1, -1] = np.nan, 0.5  # NaN reads as 0; a rounding tie
        out = np.zeros_like(warp)
        assert emu_lib.tgvc_cuda_residual_compose(_ptr(change), _ptr(warp), b, height, width, _ptr(out), None) == 0
        np.testing.assert_array_equal(out, ref.residual_compose(change, warp))
        w2 = warp.copy()  # in place
        assert emu_lib.tgvc_cuda_residual_compose(_ptr(change), _ptr(w2), b, height, width, _ptr(w2), None) == 0
        np.testing.assert_array_equal(w2, out)


def test_emulated_launchers_refuse_bad_shapes(emu_lib):
    buf = np.zeros(4096, np.float32)
    p = _ptr(buf)
    assert emu_lib.tgvc_cuda_latent_affine(2, p, 1, 4, 4, p, p, p, None) != 0
    assert emu_lib.tgvc_cuda_latent_affine(0, p, 1, 0, 4, p, p, p, None) != 0
    assert emu_lib.tgvc_cuda_gaussian_blur(p, p, p + 64, 1, 4, 4, p, 3, None) != 0  # tmp == src
    assert emu_lib.tgvc_cuda_gaussian_blur(p, p + 64, p, 1, 4, 4, p, 4, None) != 0  # even ksize
    assert emu_lib.tgvc_cuda_residual_change(0, p, p, 1, 8, 8, 9, 8, p, None) != 0  # H > Hp
    assert emu_lib.tgvc_cuda_residual_change(2, p, p, 1, 8, 8, 8, 8, p, None) != 0
    assert emu_lib.tgvc_cuda_residual_compose(p, p, 1, 0, 8, p, None) != 0


@pytest.fixture(scope="module")
def emu_kernels(emu_lib):
    """A DiffusionKernels whose launches run the emulated kernels (no NVRTC, no GPU)."""
    dk = diffusion_kernels.DiffusionKernels.__new__(diffusion_kernels.DiffusionKernels)
    dk.block, dk.api, dk._fn, dk._taps = 64, EmuApi(emu_lib), {}, {}
    dk.fn = lambda module, name: name
    return dk


def test_python_launcher_on_emulated_kernels(emu_kernels):
    dk = emu_kernels
    mean, std = stats(6)
    x = latents(8, 3, 6, 5, 7)
    np.testing.assert_array_equal(dk.run_normalise(x, mean, std), ref.normalise(x, mean, std))
    np.testing.assert_array_equal(dk.run_denormalise(x, mean, std), ref.denormalise(x, mean, std))
    assert dk.api.launches[-1][:3] == ("tgvc_latent_denormalise_f32", (1, 6, 3), (64, 1, 1))
    planes = np.random.default_rng(9).normal(0, 50, (2, 3, 19, 70)).astype(np.float32)
    np.testing.assert_array_equal(dk.run_gaussian_blur(planes, 4.0), ref.gaussian_blur(planes, 4.0))
    assert [k[:2] for k in dk.api.launches[-2:]] == [("tgvc_gaussian_rows_f32", (2, 19, 6)),
                                                     ("tgvc_gaussian_cols_f32", (2, 19, 6))]
    b, height, width, hp, wp = 2, 21, 70, 24, 72
    images = images01(10, 2 * b, hp, wp)
    warp = warp_frames(11, b, height, width)
    for dt in (np.float32, np.float16):
        z, w = images[:b].astype(dt), images[b:].astype(dt)
        change = dk.run_residual_change(z, w, height, width)
        np.testing.assert_array_equal(change, ref.residual_change(z, w, height, width))
        np.testing.assert_array_equal(dk.run_residual_compose(change, warp), ref.residual_compose(change, warp))
        for blur in (0.0, 4.0):
            want = ref.residual_change(z, w, height, width)
            if blur:
                want = ref.gaussian_blur(want, blur)
            np.testing.assert_array_equal(dk.run_residual_output(z, w, warp, blur=blur),
                                          ref.residual_compose(want, warp))
    assert dk.api.launches[-1][:2] == ("tgvc_residual_compose_u8", (2, height, b))
    assert dk.api.launches[-4][0] == "tgvc_residual_change_f16"
    assert len(dk._taps) == 1  # sigma 4 uploaded once
    dk.close()
    assert not dk.api.buffers  # the host-array path and close free what they allocate


def test_python_launcher_validates(emu_kernels):
    dk = emu_kernels
    n = len(dk.api.launches)
    with pytest.raises(OptionError):
        dk.normalise(1, 1, 1, 0, 10, 1, 1)
    with pytest.raises(OptionError):
        dk.gaussian_blur(1, 1, 2, 3, 8, 8, 4.0)  # tmp == src
    with pytest.raises(OptionError):
        dk.gaussian_blur(1, 2, 3, 3, 8, 8, 0.0)
    with pytest.raises(OptionError):
        dk.residual_change(1, 2, 1, 8, 8, 9, 8, 3)
    with pytest.raises(OptionError):
        dk.residual_change(1, 2, 1, 8, 8, 8, 8, 3, dtype="bfloat16")
    with pytest.raises(OptionError):
        dk.run_normalise(latents(1), [0.0], [1.0])
    dk.normalise(1, 1, 0, 4, 10, 1, 1)  # nothing to do: no launch
    dk.residual_compose(1, 2, 0, 8, 8, 3)
    assert len(dk.api.launches) == n
    with pytest.raises(OptionError):
        diffusion_kernels.DiffusionKernels(block=100)


# ---- (c) compile checks ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(diffusion_kernels.SOURCES))
def test_kernel_source_compiles(tmp_path, name):
    """A syntax error in a diffusion kernel fails here, GPU or not (nvcc, else NVRTC)."""
    check_compiles(diffusion_kernels.SOURCES[name], tmp_path)


def test_nvrtc_compile_when_available(tmp_path):
    try:
        nvrtc_cache.nvrtc_version()
    except Exception as err:
        pytest.skip(f"NVRTC not available: {err}")
    names = {"latent_affine": [b"tgvc_latent_normalise_f32", b"tgvc_latent_denormalise_f32"],
             "gaussian_blur": [b"tgvc_gaussian_rows_f32", b"tgvc_gaussian_cols_f32"],
             "residual_output": [b"tgvc_residual_change_f32", b"tgvc_residual_change_f16",
                                 b"tgvc_residual_compose_u8"]}
    for name, src in diffusion_kernels.SOURCES.items():
        k = nvrtc_cache.cached_compile("compute_75", source_path=src, directory=tmp_path)
        assert k.is_ptx and all(e in k.image for e in names[name])


# ---- (d) GPU tests ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dk_gpu():
    try:
        dk = diffusion_kernels.DiffusionKernels()
    except Exception as err:  # no binding, no driver, no GPU, no NVRTC
        pytest.skip(f"no usable GPU for the diffusion kernels: {err}")
    yield dk
    dk.close()


@pytest.mark.gpu
def test_gpu_latent_affine(dk_gpu):
    mean, std = stats(4)
    x = latents(12, 4, 4, 90, 160)
    np.testing.assert_array_equal(dk_gpu.run_normalise(x, mean, std), ref.normalise(x, mean, std))
    np.testing.assert_array_equal(dk_gpu.run_denormalise(x, mean, std), ref.denormalise(x, mean, std))


@pytest.mark.gpu
@pytest.mark.parametrize("height,width", [(1, 1), (17, 29), (64, 65), (288, 352), (720, 1280)])
def test_gpu_gaussian_blur(dk_gpu, height, width):
    img = hwc_image(height, height, width)
    planes = np.ascontiguousarray(img.transpose(2, 0, 1))
    for sigma in (4.0, 1.3):
        got = dk_gpu.run_gaussian_blur(planes, sigma)
        np.testing.assert_array_equal(got, ref.gaussian_blur(planes, sigma))  # __fmaf_rn: the reference's FMAs
        np.testing.assert_allclose(got.transpose(1, 2, 0), cv2.GaussianBlur(img, (0, 0), sigma).reshape(img.shape),
                                   rtol=0, atol=BLUR_TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("height,width,hp,wp", [(17, 29, 24, 32), (270, 480, 272, 480), (720, 1280, 720, 1280)])
def test_gpu_residual(dk_gpu, height, width, hp, wp):
    b = 2
    images = images01(height, 2 * b, hp, wp)
    warp = warp_frames(width, b, height, width)
    for dt in (np.float32, np.float16):
        z, w = images[:b].astype(dt), images[b:].astype(dt)
        change = dk_gpu.run_residual_change(z, w, height, width)
        np.testing.assert_array_equal(change, ref.residual_change(z, w, height, width))
        np.testing.assert_array_equal(dk_gpu.run_residual_compose(change, warp), ref.residual_compose(change, warp))
        for blur in (0.0, 4.0):
            want = ref.residual_change(z, w, height, width)
            if blur:
                want = ref.gaussian_blur(want, blur)
            np.testing.assert_array_equal(dk_gpu.run_residual_output(z, w, warp, blur=blur),
                                          ref.residual_compose(want, warp))
