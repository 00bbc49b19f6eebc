"""Frame kernels (image_input.cu, flow_upsample.cu, frame_output.cu) against the host code path.

Three layers: the NumPy reference (tgvc_rt.kernels.frame_reference) against what the interpolating
decoder runs on the host today (models.interpolator.image_input / frames_output, cv2.resize +
pad_edges, cv2 INTER_AREA); the kernels themselves on the CPU (g++ with kernels/cuda_emu.h) against
the reference, both through their C++ host launchers and behind the Python launcher (an emulated
cuLaunchKernel); and, where there is one, the GPU. The compile test builds every source with nvcc
(or NVRTC) so a syntax error fails on a CPU-only machine too.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tgvc_rt.decoder.dense_motion import grid_size
from tgvc_rt.decoder.interpolate import _full_res
from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import frame_kernels, frame_reference as ref, nvrtc_cache
from tgvc_rt.models.interpolator import frames_output, image_input, pad_edges, padded_size

from kernel_compile import check_compiles

KDIR = Path(frame_kernels.__file__).parent
SIZES = [(1, 1), (2, 3), (17, 29), (64, 64), (64, 65), (72, 88), (144, 176), (135, 240)]  # (H, W)


def key_frame(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def motion_grid(seed: int, height: int, width: int, channels: int = 5, n: int | None = None) -> np.ndarray:
    """Random dense-motion grids of the decoder's size (scale 0.25): flows in pixels, weights in [0, 1]."""
    h, w = grid_size(height, width, 0.25)
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 8.0, (n or 1, h, w, channels)).astype(np.float32)
    if channels == 5:
        g[..., 4] = rng.uniform(0.0, 1.0, (n or 1, h, w))
    return g if n else g[0]


def model_frames(seed: int, batch: int, hp: int, wp: int) -> np.ndarray:
    """Model outputs in [-0.05, 1.05] with exact rounding ties ((k + 0.5) / 255) mixed in."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.05, 1.05, (batch, 3, hp, wp)).astype(np.float32)
    ties = (rng.integers(0, 255, x.shape) + 0.5) / 255.0
    return np.where(rng.random(x.shape) < 0.2, ties, x).astype(np.float32)


def host_flow(grid: np.ndarray, height: int, width: int, hp: int, wp: int) -> np.ndarray:
    """What decoder.interpolate._model_outputs builds per frame: [5, hp, wp]."""
    return pad_edges(_full_res(grid, height, width), hp, wp)


def close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> None:
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


# ---- (a) NumPy reference == the host code path ----------------------------------------------
@pytest.mark.parametrize("height,width", SIZES)
def test_reference_image_input_is_host_path(height, width):
    frame = key_frame(height * 1000 + width, height, width)
    for pad in (64, 32, 1):
        hp, wp = padded_size(height, width, pad)
        got = ref.image_input(frame, hp, wp)
        assert got.dtype == np.float32 and got.shape == (3, hp, wp)
        np.testing.assert_array_equal(got, image_input(frame, hp, wp)[0])
    np.testing.assert_array_equal(ref.image_input(frame, hp, wp, "float16"), got.astype(np.float16))


@pytest.mark.parametrize("height,width", SIZES)
def test_reference_flow_upsample_is_cv2_resize_and_pad(height, width):
    hp, wp = padded_size(height, width)
    grid = motion_grid(height + 7 * width, height, width)
    want = host_flow(grid, height, width, hp, wp)
    flow, weight = ref.flow_upsample(grid, height, width, hp, wp)
    assert flow.shape == (4, hp, wp) and weight.shape == (1, hp, wp)
    close(flow, want[:4])  # bit-identical with OpenCV 5.1's generic float path
    close(weight, want[4:5])
    ones = grid.copy()  # the `camera` case: a weight of ones, resized like the rest
    ones[..., 4] = 1.0
    flow_u, weight_u = ref.flow_upsample(grid, height, width, hp, wp, unit_weight=True)
    np.testing.assert_array_equal(flow_u, flow)
    close(weight_u, host_flow(ones, height, width, hp, wp)[4:5])
    np.testing.assert_array_equal(ref.flow_upsample(grid[..., :4], height, width, hp, wp)[1], weight_u)


@pytest.mark.parametrize("h,w,height,width", [(1, 1, 5, 7), (1, 4, 17, 9), (9, 11, 5, 7), (6, 8, 6, 8),
                                              (3, 3, 100, 37), (45, 80, 720, 1280)])
def test_reference_flow_upsample_odd_scales(h, w, height, width):
    """Shrinking, identity, single-row/column and non-integer scales: still cv2's numbers."""
    grid = np.random.default_rng(h * w).normal(0, 10, (h, w, 5)).astype(np.float32)
    hp, wp = padded_size(height, width)
    flow, weight = ref.flow_upsample(grid, height, width, hp, wp)
    want = host_flow(grid, height, width, hp, wp)
    close(np.concatenate([flow, weight]), want)


@pytest.mark.parametrize("height,width", SIZES)
def test_reference_frame_output_is_host_path(height, width):
    hp, wp = padded_size(height, width)
    x = model_frames(height + width, 3, hp, wp)
    np.testing.assert_array_equal(ref.frame_output(x, height, width), frames_output(x, height, width))
    x16 = x.astype(np.float16)
    np.testing.assert_array_equal(ref.frame_output(x16, height, width),
                                  frames_output(x16.astype(np.float32), height, width))


@pytest.mark.parametrize("height,width", SIZES)
def test_reference_area_reduce_is_cv2_inter_area(height, width):
    """The small-frame path of _inner_frames: the model ran at 2H x 2W, cv2 INTER_AREA back to H x W."""
    hp, wp = padded_size(2 * height, 2 * width)
    x = model_frames(3 * height + width, 2, hp, wp)
    big = frames_output(x, 2 * height, 2 * width)
    want = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, 3)
                     for f in big])
    np.testing.assert_array_equal(ref.frame_output(x, height, width, reduce=2), want)


# ---- (b) the kernels on the CPU (emulated CUDA) ------------------------------------------------
def _gxx_build(out: Path, *extra: str, source: str = "frame_emu_main.cpp") -> Path:
    gxx = shutil.which("g++")
    if not gxx:
        pytest.skip("g++ not available")
    r = subprocess.run([gxx, "-std=c++20", "-O1", "-pthread", "-ffp-contract=off", "-DTGVC_EMU",
                        "-DTGVC_FRAME_BLOCK=32", *extra, str(KDIR / source), "-o", str(out)],
                       capture_output=True, text=True, timeout=180)
    if r.returncode and "barrier" in r.stderr:
        pytest.skip("this g++ has no C++20 <barrier>")
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def emu_exe(tmp_path_factory):
    return _gxx_build(tmp_path_factory.mktemp("frame_emu") / "frame_emu")


def emulate(exe: Path, op: str, data: np.ndarray, args: list[int], out_dtype, out_shape) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.bin", Path(d) / "out.bin"
        src.write_bytes(np.ascontiguousarray(data).tobytes())
        r = subprocess.run([str(exe), op, str(src), str(dst), *map(str, args)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        return np.frombuffer(dst.read_bytes(), out_dtype).reshape(out_shape)


EMU_SIZES = [(1, 1), (2, 3), (17, 29), (64, 65), (72, 88)]
F16 = [("float32", 0, np.float32), ("float16", 1, np.float16)]


@pytest.mark.parametrize("height,width", EMU_SIZES)
def test_emulated_image_input(emu_exe, height, width):
    frame = key_frame(height + width, height, width)
    hp, wp = padded_size(height, width)
    for name, code, dt in F16:
        got = emulate(emu_exe, "image", frame, [code, height, width, hp, wp, 2], dt, (2, 3, hp, wp))
        want = ref.image_input(frame, hp, wp, name)
        np.testing.assert_array_equal(got[0], want)
        np.testing.assert_array_equal(got[1], want)


@pytest.mark.parametrize("height,width", EMU_SIZES + [(135, 240)])
def test_emulated_flow_upsample(emu_exe, height, width):
    hp, wp = padded_size(height, width)
    grids = motion_grid(height * width, height, width, n=2)
    h, w = grids.shape[1:3]
    batch, index = 4, 1  # frames 1 and 2 of a batch of 4; slots 0 and 3 stay untouched (NaN)
    for unit in (0, 1):
        for name, code, dt in F16:
            out = emulate(emu_exe, "flow", grids, [code, 2, h, w, 5, height, width, hp, wp, batch, index, unit],
                          dt, (-1,))
            flow = out[:batch * 4 * hp * wp].reshape(batch, 4, hp, wp)
            weight = out[batch * 4 * hp * wp:].reshape(batch, 1, hp, wp)
            assert np.isnan(flow[[0, 3]]).all() and np.isnan(weight[[0, 3]]).all()
            for j in range(2):
                wf, ww = ref.flow_upsample(grids[j], height, width, hp, wp, unit_weight=bool(unit), dtype=name)
                np.testing.assert_array_equal(flow[index + j], wf)
                np.testing.assert_array_equal(weight[index + j], ww)
    # four channels: the weight is one everywhere, as unit_weight
    out = emulate(emu_exe, "flow", grids[:1, ..., :4], [0, 1, h, w, 4, height, width, hp, wp, 1, 0, 0], np.float32,
                  (5, hp, wp))
    wf, ww = ref.flow_upsample(grids[0], height, width, hp, wp, unit_weight=True)
    np.testing.assert_array_equal(out[:4], wf)
    np.testing.assert_array_equal(out[4:], ww)


@pytest.mark.parametrize("height,width", EMU_SIZES)
def test_emulated_frame_output(emu_exe, height, width):
    for reduce in (1, 2):
        hp, wp = padded_size(reduce * height, reduce * width)
        x = model_frames(height * width + reduce, 3, hp, wp)
        x[0, 0, 0, 0] = np.nan  # NaN reads as 0
        for name, code, dt in F16:
            xi = x.astype(dt)
            got = emulate(emu_exe, "output", xi, [code, 3, hp, wp, height, width, reduce], np.uint8,
                          (3, height, width, 3))
            np.testing.assert_array_equal(got, ref.frame_output(np.nan_to_num(xi, nan=0.0), height, width, reduce))


def test_emulated_launchers_refuse_bad_shapes(emu_exe):
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.bin"
        src.write_bytes(bytes(4096))
        for args in (["image", 0, 4, 4, 3, 4, 1], ["output", 0, 1, 4, 4, 3, 3, 2], ["output", 0, 1, 4, 4, 2, 2, 3]):
            r = subprocess.run([str(emu_exe), args[0], str(src), str(Path(d) / "o"), *map(str, args[1:])],
                               capture_output=True, timeout=60)
            assert r.returncode == 3, args


class EmuApi:
    """cuda_api's interface over host memory, launches run by the emulated kernels (tgvc_emu_launch_named)."""

    name = "emu"

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        self.lib.tgvc_emu_launch_named.argtypes = [ctypes.c_char_p] + [ctypes.c_uint] * 4 + [ctypes.c_void_p]
        self.buffers: dict[int, np.ndarray] = {}
        self.launches: list[tuple] = []

    def alloc(self, nbytes: int) -> int:
        buf = np.empty(max(int(nbytes), 1) + 64, np.uint8)
        ptr = buf.ctypes.data + (-buf.ctypes.data) % 64
        self.buffers[ptr] = buf
        return ptr

    def free(self, ptr: int) -> None:
        self.buffers.pop(int(ptr))

    def h2d(self, ptr: int, array: np.ndarray, stream: int = 0) -> None:
        a = np.ascontiguousarray(array)
        ctypes.memmove(ptr, a.ctypes.data, a.nbytes)

    def d2h(self, array: np.ndarray, ptr: int, stream: int = 0) -> None:
        ctypes.memmove(array.ctypes.data, ptr, array.nbytes)

    def sync(self, stream: int = 0) -> None:
        pass

    def launch(self, fn, grid, block, smem: int, stream: int, args: list) -> None:
        assert block[1:] == (1, 1) and smem == 0
        self.launches.append((fn, tuple(grid), tuple(block), stream))
        params = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        assert self.lib.tgvc_emu_launch_named(fn.encode(), *grid, block[0], params) == 0, fn


@pytest.fixture(scope="module")
def emu_kernels(tmp_path_factory):
    """A FrameKernels whose launches run the emulated kernels (no NVRTC, no GPU)."""
    lib = _gxx_build(tmp_path_factory.mktemp("frame_emu_lib") / "frame_emu.so", "-shared", "-fPIC")
    fk = frame_kernels.FrameKernels.__new__(frame_kernels.FrameKernels)
    fk.block, fk.api, fk._fn = 64, EmuApi(ctypes.CDLL(str(lib))), {}
    fk.fn = lambda module, name: name
    return fk


def test_python_launcher_on_emulated_kernels(emu_kernels):
    fk = emu_kernels
    height, width = 37, 70
    hp, wp = padded_size(height, width)
    frame = key_frame(5, height, width)
    for dtype in ("float32", "float16"):
        got = fk.run_image_input(frame, hp, wp, copies=3, dtype=dtype)
        assert got.shape == (3, 3, hp, wp)
        for g in got:
            np.testing.assert_array_equal(g, ref.image_input(frame, hp, wp, dtype))
    assert fk.api.launches[-1][:3] == ("tgvc_image_input_f16", (2, hp, 3), (64, 1, 1))
    grids = motion_grid(6, height, width, n=3)
    for dtype in ("float32", "float16"):
        for unit in (False, True):
            flow, weight = fk.run_flow_upsample(grids, height, width, hp, wp, batch=5, index=2, unit_weight=unit,
                                                dtype=dtype)
            assert np.isnan(flow[:2]).all() and np.isnan(weight[:2]).all()
            for j in range(3):
                wf, ww = ref.flow_upsample(grids[j], height, width, hp, wp, unit_weight=unit, dtype=dtype)
                np.testing.assert_array_equal(flow[2 + j], wf)
                np.testing.assert_array_equal(weight[2 + j], ww)
    assert fk.api.launches[-1][1] == (2, hp, 3)
    for reduce in (1, 2):
        hp2, wp2 = padded_size(reduce * height, reduce * width)
        x = model_frames(7, 2, hp2, wp2)
        for xi in (x, x.astype(np.float16)):
            np.testing.assert_array_equal(fk.run_frame_output(xi, height, width, reduce=reduce),
                                          ref.frame_output(xi, height, width, reduce))
    assert fk.api.launches[-1][:2] == ("tgvc_frame_output_f16", (-(-width // 64), height, 2))
    assert not fk.api.buffers  # the host-array path frees what it allocates


def test_python_launcher_validates(emu_kernels):
    fk = emu_kernels
    n = len(fk.api.launches)
    with pytest.raises(OptionError):
        fk.image_input(1, 10, 10, 8, 16, 1)
    with pytest.raises(OptionError):
        fk.image_input(1, 10, 10, 16, 16, 1, dtype="bfloat16")
    with pytest.raises(OptionError):
        fk.flow_upsample(1, 4, 4, 10, 10, 16, 16, 1, 1, channels=3)
    with pytest.raises(OptionError):
        fk.frame_output(1, 1, 16, 16, 10, 10, 1, reduce=2)
    with pytest.raises(OptionError):
        fk.frame_output(1, 1, 16, 16, 10, 10, 1, reduce=3)
    fk.flow_upsample(1, 4, 4, 10, 10, 16, 16, 0, 0)  # nothing to write: no launch
    fk.frame_output(1, 0, 16, 16, 10, 10, 1)
    assert len(fk.api.launches) == n
    with pytest.raises(OptionError):
        frame_kernels.FrameKernels(block=100)


# ---- (c) compile checks ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(frame_kernels.SOURCES))
def test_kernel_source_compiles(tmp_path, name):
    """A syntax error in a frame kernel fails here, GPU or not (nvcc, else NVRTC)."""
    check_compiles(frame_kernels.SOURCES[name], tmp_path)


def test_nvrtc_compile_when_available(tmp_path):
    try:
        nvrtc_cache.nvrtc_version()
    except Exception as err:
        pytest.skip(f"NVRTC not available: {err}")
    for name, src in frame_kernels.SOURCES.items():
        k = nvrtc_cache.cached_compile("compute_75", source_path=src, directory=tmp_path)
        assert k.is_ptx and f"tgvc_{name}_f32".encode() in k.image and f"tgvc_{name}_f16".encode() in k.image
    assert len(list(tmp_path.glob("*.ptx"))) == 3


# ---- (d) GPU tests ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fk_gpu():
    try:
        return frame_kernels.FrameKernels()
    except Exception as err:  # no binding, no driver, no GPU, no NVRTC
        pytest.skip(f"no usable GPU for the frame kernels: {err}")


GPU_SIZES = [(1, 1), (17, 29), (64, 65), (288, 352), (720, 1280)]


@pytest.mark.gpu
@pytest.mark.parametrize("height,width", GPU_SIZES)
def test_gpu_image_input(fk_gpu, height, width):
    frame = key_frame(height, height, width)
    hp, wp = padded_size(height, width)
    for dtype in ("float32", "float16"):
        got = fk_gpu.run_image_input(frame, hp, wp, copies=2, dtype=dtype)
        want = image_input(frame, hp, wp)[0].astype(ref.DTYPES[dtype])
        np.testing.assert_array_equal(got[0], want)
        np.testing.assert_array_equal(got[1], want)


@pytest.mark.gpu
@pytest.mark.parametrize("height,width", GPU_SIZES)
def test_gpu_flow_upsample(fk_gpu, height, width):
    hp, wp = padded_size(height, width)
    grids = motion_grid(width, height, width, n=3)
    for unit in (False, True):
        flow, weight = fk_gpu.run_flow_upsample(grids, height, width, hp, wp, batch=4, index=1, unit_weight=unit)
        assert np.isnan(flow[0]).all() and np.isnan(weight[0]).all()
        for j in range(3):
            wf, ww = ref.flow_upsample(grids[j], height, width, hp, wp, unit_weight=unit)
            np.testing.assert_array_equal(flow[1 + j], wf)  # __fmul_rn/__fadd_rn: the reference's roundings
            np.testing.assert_array_equal(weight[1 + j], ww)
            if not unit:
                close(np.concatenate([flow[1 + j], weight[1 + j]]), host_flow(grids[j], height, width, hp, wp))
    flow, weight = fk_gpu.run_flow_upsample(grids, height, width, hp, wp, dtype="float16")
    wf, ww = ref.flow_upsample(grids[2], height, width, hp, wp, dtype="float16")
    np.testing.assert_array_equal(flow[2], wf)
    np.testing.assert_array_equal(weight[2], ww)


@pytest.mark.gpu
@pytest.mark.parametrize("height,width", GPU_SIZES)
def test_gpu_frame_output(fk_gpu, height, width):
    for reduce in (1, 2):
        hp, wp = padded_size(reduce * height, reduce * width)
        x = model_frames(height + reduce, 3, hp, wp)
        for xi in (x, x.astype(np.float16)):
            np.testing.assert_array_equal(fk_gpu.run_frame_output(xi, height, width, reduce=reduce),
                                          ref.frame_output(xi, height, width, reduce))
    hp, wp = padded_size(height, width)
    x = model_frames(1, 2, hp, wp)
    np.testing.assert_array_equal(fk_gpu.run_frame_output(x, height, width), frames_output(x, height, width))


@pytest.mark.gpu
def test_gpu_enqueue_on_stream(fk_gpu):
    """Device-pointer API on a caller's stream: the launches chain without host copies in between."""
    api = fk_gpu.api
    if api.name != "cuda-python":
        pytest.skip("raw stream handles need cuda-python")
    height, width = 135, 240
    hp, wp = padded_size(height, width)
    drv = api.drv
    err, stream = drv.cuStreamCreate(0)
    assert int(err) == 0
    s = int(stream)
    frame = key_frame(9, height, width)
    fptr, img, out = api.alloc(frame.nbytes), api.alloc(4 * 2 * 3 * hp * wp), api.alloc(2 * height * width * 3)
    try:
        api.h2d(fptr, frame)
        fk_gpu.image_input(fptr, height, width, hp, wp, img, copies=2, stream=s)
        fk_gpu.frame_output(img, 2, hp, wp, height, width, out, stream=s)  # x / 255 * 255 round-trips
        api.sync(s)
        got = np.empty((2, height, width, 3), np.uint8)
        api.d2h(got, out)
        np.testing.assert_array_equal(got[0], frame)
        np.testing.assert_array_equal(got[1], frame)
    finally:
        for p in (fptr, img, out):
            api.free(p)
        drv.cuStreamDestroy(stream)
