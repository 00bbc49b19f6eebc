"""The device-resident interpolation loop (decoder/device_loop.py) on the emulated device: the same frames
as the host decoder, bit for bit, with the keyframes uploaded once per group and only frames coming back."""
from __future__ import annotations

import ctypes
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from tgvc_rt.backends.device import EmulatedDevice, HostModel
from tgvc_rt.decoder.device_loop import iter_group_device, supported
from tgvc_rt.decoder.interpolate import InterpOptions, interpolate_group
from tgvc_rt.models import load_model_set
from tgvc_rt.types import Tracks

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def interpolator():
    return load_model_set("default").session("interpolator")


def _group(h: int, w: int, f: int, with_tracks: bool = True, seed: int = 1):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    key_b = np.roll(base, (3, 5), axis=(0, 1))
    if not with_tracks:
        return base, key_b, Tracks.empty(f)
    gy, gx = np.meshgrid(np.linspace(8, h - 9, 5), np.linspace(8, w - 9, 6), indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
    xy = np.stack([pts + [5.0 * t / (f - 1), 3.0 * t / (f - 1)] for t in range(f)], axis=1)
    vis = np.ones(xy.shape[:2], bool)
    vis[::4, f // 2] = False  # some tracks hidden mid-group
    return base, key_b, Tracks(xy.astype(np.float32), vis)


@pytest.mark.parametrize("h, w, f, batch, with_tracks", [
    (200, 264, 6, 1, True),    # work at full size, one frame per model call
    (200, 264, 7, 2, True),    # batches of two, the last one short
    (120, 136, 5, 1, True),    # a small frame: the model works at 2x, frames are area-reduced on the device
    (200, 264, 5, 1, False),   # no tracks: zero initial flow
])
def test_device_loop_equals_the_host_decoder(interpolator, h, w, f, batch, with_tracks):
    key_a, key_b, tracks = _group(h, w, f, with_tracks)
    options = replace(InterpOptions(), batch=batch)
    host = interpolate_group(key_a, key_b, tracks, interpolator.run, options)
    device, model = EmulatedDevice(), HostModel(interpolator)
    frames = np.stack(list(iter_group_device(key_a, key_b, tracks, device, model, options)))
    np.testing.assert_array_equal(frames, host)
    assert model.calls == -(-(f - 2) // batch)
    assert device.downloaded == (f - 2) * h * w * 3  # only the finished in-between frames come back
    scale = 2 if min(h, w) < options.min_side else 1
    keys_up = 2 * (h * scale) * (w * scale) * 3
    assert device.uploaded < keys_up + model.calls * 200_000  # keys once; per batch only small track data


def test_half_size_path_is_left_to_the_host():
    options = InterpOptions()
    assert supported(288, 352, options) and supported(120, 136, options)
    assert not supported(544, 1280, options)


def test_decoder_on_the_emulated_device_loop_equals_the_host_loop():
    """The whole decode of the golden stream through the pipeline's device-loop wiring."""
    from pathlib import Path

    from tgvc_rt.decoder.pipeline import DecodeOptions, DecodeStats, iter_decoded_frames

    data = (Path(__file__).parent / "data" / "golden_sample_v1.tgv").read_bytes()
    host_stats, dev_stats = DecodeStats(), DecodeStats()
    host = np.stack(list(iter_decoded_frames(data, DecodeOptions(device_loop="off"), host_stats)))
    dev = np.stack(list(iter_decoded_frames(data, DecodeOptions(device_loop="emulated"), dev_stats)))
    np.testing.assert_array_equal(dev, host)
    assert host_stats.loop == "host" and dev_stats.loop == "device (emulated)"
    assert host_stats.backend.startswith("models on cpu")


def test_diffusion_decode_on_the_emulated_device_loop_equals_the_host_loop():
    """Mode diffusion through the pipeline's wiring: interpolation and refinement both on the device loop."""
    from pathlib import Path

    from tgvc_rt.decoder.diffusion import DiffusionOptions
    from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames

    data = (Path(__file__).parent / "data" / "golden_sample_v1.tgv").read_bytes()
    frames = {}
    for loop in ("off", "emulated"):
        options = DecodeOptions(mode="diffusion", device_loop=loop,
                                diffusion=DiffusionOptions(guidance_impl="numpy"))
        frames[loop] = np.stack([f for f, _ in zip(iter_decoded_frames(data, options), range(12))])
    np.testing.assert_array_equal(frames["emulated"], frames["off"])


# ---- the CUDA device class and the real kernel sources, on the CPU ----------------------------------
class _EmuDeviceApi:
    """``tests/test_frame_kernels.EmuApi`` (host memory, kernels run by the g++ emulation) plus what
    ``CudaDevice`` asks of a binding beyond the kernels."""

    def __new__(cls, lib):
        from test_frame_kernels import EmuApi

        class Api(EmuApi):
            def device_name(self):
                return "emulated"

            def stream_create(self):
                return 7  # a made-up handle: the emulation runs everything in order

            def stream_destroy(self, stream):
                pass

            def memset32(self, ptr, count, stream=0):
                ctypes.memset(ptr, 0, 4 * count)

            def fill32(self, ptr, bits, count, stream=0):
                words = np.full(count, bits, np.uint32)
                ctypes.memmove(ptr, words.ctypes.data, 4 * count)

            def d2d(self, dst, src, nbytes, stream=0):
                ctypes.memmove(dst, src, nbytes)

        return Api(lib)


class _DownloadingModel:
    """A host session as a DeviceModel over device buffers: inputs copied down, outputs copied up."""

    backend = "cpu (test)"

    def __init__(self, session, device):
        self.session, self.device, self.out = session, device, {}

    def run(self, inputs):
        got = self.session.run({n: b.to_host() for n, b in inputs.items()})
        self.device.release(*self.out.values())
        self.out = {n: self.device.upload(a) for n, a in got.items()}
        return self.out


def test_cuda_device_with_the_emulated_kernels_equals_the_host_decoder(interpolator, tmp_path):
    """CudaDevice (argument packing, buffer views, the stream) and the three .cu kernels themselves, run by
    the CPU emulation: the device loop's frames equal the host decoder's."""
    import ctypes as _ctypes

    from test_frame_kernels import _gxx_build

    from tgvc_rt.backends.cuda_device import CudaDevice
    from tgvc_rt.kernels.frame_kernels import FrameKernels

    lib = _gxx_build(tmp_path / "frame_emu.so", "-shared", "-fPIC")
    api = _EmuDeviceApi(_ctypes.CDLL(str(lib)))
    fk = FrameKernels.__new__(FrameKernels)
    fk.block, fk.api, fk._fn = 64, api, {}
    fk.fn = lambda module, name: name
    device = CudaDevice(api=api, kernels=fk)
    key_a, key_b, tracks = _group(40, 56, 5, True)  # small: the model works at 2x, frames come back area-reduced
    options = replace(InterpOptions(), batch=2)
    host = interpolate_group(key_a, key_b, tracks, interpolator.run, options)
    model = _DownloadingModel(interpolator, device)
    frames = np.stack(list(iter_group_device(key_a, key_b, tracks, device, model, options)))
    np.testing.assert_array_equal(frames, host)
    assert {launch[0] for launch in api.launches} == {"tgvc_image_input_f32", "tgvc_flow_upsample_f32",
                                                      "tgvc_frame_output_f32"}
    assert all(launch[3] == 7 for launch in api.launches)  # everything on the device's stream
    device.release(*model.out.values())
    device.close()
    assert not api.buffers  # the loop frees what it allocates


# ---- the diffusion loop on the emulated device -----------------------------------------------------
@pytest.fixture(scope="module")
def model_set():
    return load_model_set("default")


def _device_models(models):
    from tgvc_rt.decoder.device_diffusion import DeviceDiffusionModels

    return DeviceDiffusionModels(HostModel(models.session("vae_encoder")), HostModel(models.session("vae_decoder")),
                                 HostModel(models.session("unet")), models.latent_mean, models.latent_std,
                                 models.alphas_cumprod())


@pytest.mark.parametrize("f, window, steps, output, with_tracks, blur", [
    (6, 16, 1, "residual", True, 4.0),    # the defaults: one window, one step
    (12, 6, 2, "residual", True, 0.0),    # three chained windows, two steps, no blur
    (7, 16, 1, "latent", False, 4.0),     # decoded latents, no tracks (no guidance)
])
def test_diffusion_device_loop_equals_the_host_decoder(model_set, f, window, steps, output, with_tracks, blur):
    from tgvc_rt.decoder.device_diffusion import iter_diffused_device
    from tgvc_rt.decoder.diffusion import DiffusionOptions, iter_diffused
    from tgvc_rt.diffusion.guidance_native import select_guidance_factory

    key_a, key_b, tracks = _group(60, 84, f, with_tracks, seed=f)  # sides not multiples of 8: padded for the VAE
    rng = np.random.default_rng(5)
    warp = [key_a] + [rng.integers(0, 255, key_a.shape, dtype=np.uint8) for _ in range(f - 2)] + [key_b]
    options = DiffusionOptions(steps=steps, window=window, output=output, residual_blur=blur, vae_batch=3,
                               guidance_impl="numpy")
    host = np.stack(list(iter_diffused(iter(warp), f, key_a, key_b, tracks, model_set, options, seed=11)))
    device = EmulatedDevice()
    dev = np.stack(list(iter_diffused_device(iter(warp), f, key_a, key_b, tracks, _device_models(model_set),
                                             options, device, seed=11,
                                             guidance_factory=select_guidance_factory("numpy"))))
    np.testing.assert_array_equal(dev, host)
    assert device.downloaded == (f - 2) * 60 * 84 * 3  # only the refined in-between frames come back


def test_ort_device_model_binds_our_buffers(interpolator, tmp_path):
    """backends/ort_device.py's binding logic with host memory standing for device memory (ONNX Runtime's
    "cpu" device type): the first run at a shape learns the outputs and copies them into our buffers, later
    runs write straight into those buffers; results equal the plain session's."""
    import ctypes as _ctypes

    from test_frame_kernels import _gxx_build

    from tgvc_rt.backends.cuda_device import CudaDevice
    from tgvc_rt.backends.ort_device import OrtDeviceModel
    from tgvc_rt.kernels.frame_kernels import FrameKernels

    lib = _gxx_build(tmp_path / "frame_emu.so", "-shared", "-fPIC")
    api = _EmuDeviceApi(_ctypes.CDLL(str(lib)))
    fk = FrameKernels.__new__(FrameKernels)
    fk.block, fk.api, fk._fn = 64, api, {}
    device = CudaDevice(api=api, kernels=fk)
    model = OrtDeviceModel(interpolator, device, device_type="cpu")
    ref = np.load(Path(__file__).parent / "data" / "interpolator_reference.npz")
    feeds = {n: np.ascontiguousarray(ref[n], np.float32) for n in interpolator.inputs}
    want = {k: v.copy() for k, v in interpolator.run(feeds).items()}
    inputs = {n: device.upload(a) for n, a in feeds.items()}
    first = model.run(inputs)
    ptrs = {n: b.ptr for n, b in first.items()}
    second = model.run(inputs)
    assert {n: b.ptr for n, b in second.items()} == ptrs  # bound, reused
    for out in (first, second):
        for name, buf in out.items():
            np.testing.assert_allclose(buf.to_host(), want[name], rtol=1e-5, atol=1e-5)
    device.release(*inputs.values(), *second.values())
    device.close()
    assert not api.buffers  # every buffer went back to the pool, and the pool was freed


def test_cuda_device_diffusion_ops_with_the_emulated_kernels(tmp_path):
    """CudaDevice's diffusion ops (argument packing, views, the pool) with the .cu diffusion kernels run by
    the CPU emulation, against the emulated device's host arithmetic: normalise and denormalise bit for bit,
    the residual output bit for bit without blur and within 1 (rarely) with it."""
    import ctypes as _ctypes

    from test_frame_kernels import _gxx_build

    from tgvc_rt.backends.cuda_device import CudaDevice
    from tgvc_rt.kernels.diffusion_kernels import DiffusionKernels
    from tgvc_rt.kernels.frame_kernels import FrameKernels

    frame_api = _EmuDeviceApi(_ctypes.CDLL(str(_gxx_build(tmp_path / "f.so", "-shared", "-fPIC"))))
    diff_api = _EmuDeviceApi(_ctypes.CDLL(str(_gxx_build(tmp_path / "d.so", "-shared", "-fPIC",
                                                          source="diffusion_emu_main.cpp"))))
    fk = FrameKernels.__new__(FrameKernels)
    fk.block, fk.api, fk._fn, fk.fn = 64, frame_api, {}, (lambda module, name: name)
    dk = DiffusionKernels.__new__(DiffusionKernels)
    dk.block, dk.api, dk._fn, dk._taps, dk.fn = 64, diff_api, {}, {}, (lambda module, name: name)
    cuda = CudaDevice(api=frame_api, kernels=fk)
    cuda._diffusion = dk
    host = EmulatedDevice()
    rng = np.random.default_rng(2)
    latent = rng.standard_normal((3, 32, 5, 7)).astype(np.float32)
    mean, std = rng.standard_normal(32).astype(np.float32), (rng.random(32) + 0.5).astype(np.float32)
    for op in ("normalise", "denormalise"):
        want = host.empty(latent.shape)
        getattr(host, op)(host.upload(latent), want, host.upload(mean), host.upload(std))
        got = cuda.empty(latent.shape)
        getattr(cuda, op)(cuda.upload(latent), got, cuda.upload(mean), cuda.upload(std))
        np.testing.assert_array_equal(cuda.download(got), want.array)
    dz, dw = (rng.random((2, 3, 16, 24), dtype=np.float32) for _ in range(2))
    warp = rng.integers(0, 255, (2, 13, 21, 3), dtype=np.uint8)
    for blur in (0.0, 4.0):
        want = host.empty(warp.shape, np.uint8)
        host.residual(host.upload(dz), host.upload(dw), host.upload(warp), want, blur)
        got = cuda.empty(warp.shape, np.uint8)
        cuda.residual(cuda.upload(dz), cuda.upload(dw), cuda.upload(warp), got, blur)
        diff = np.abs(cuda.download(got).astype(int) - want.array)
        assert diff.max() <= (0 if blur == 0 else 1) and diff.mean() < 1e-2
    buf = cuda.empty((4, 6))
    cuda.fill(buf.at(1), 1.5)
    cuda.copy_into(buf.at(2), buf.at(1))
    assert (cuda.download(buf)[1:3] == 1.5).all()
