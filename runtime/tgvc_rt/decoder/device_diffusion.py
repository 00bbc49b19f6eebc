"""Guided diffusion refinement with every per-window tensor on a device (``--mode diffusion`` on a GPU).

The same windows, anchors, conditioning, warm start, guided DDIM and output as
``decoder/diffusion.iter_diffused`` (read that module first), with the tensors in device buffers:

    warp frames (uint8, uploaded per VAE batch) -> vae_input -> VAE encoder -> normalise -> per-frame latents
    per window: zw, anchors -> cond, clean; host-drawn noise (the group's seeded generator, same draws as
    the host decoder) -> noise_mix -> x; per step: UNet -> the device's guided stepper (x0, guidance, DDIM;
    on CUDA the ``GuidedStepper`` of backends/cuda.py over the guidance kernel)
    -> denormalise -> VAE decoder -> residual (change, blur, + warp, rint) or the decoded frame -> download

Only the warp frames go up and the finished frames come back; the noise, drawn on the host so that a
stream decodes the same on every backend's random source, goes up once per window. On the emulated
device (backends/device.py) every op is the host decoder's own arithmetic, so the frames equal
``iter_diffused``'s bit for bit; on a GPU they differ by the kernels' and the model runtime's rounding.
Handles what the decoder uses by default (eta 0, one guidance iteration, no re-prediction); ``supported``
says when to use the host path instead.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from tgvc_rt.backends.device import Device, DeviceModel, Staging
from tgvc_rt.diffusion.guidance import latent_positions, num_pairs
from tgvc_rt.diffusion.schedules import start_timestep, timesteps_for
from tgvc_rt.diffusion.window import COND_CHANNELS, plan_windows
from tgvc_rt.types import Tracks


@dataclass
class DeviceDiffusionModels:
    """What the device loop runs: the three models as ``DeviceModel``s and the set's constants."""

    vae_encoder: DeviceModel
    vae_decoder: DeviceModel
    unet: DeviceModel
    latent_mean: np.ndarray   # [C] float32
    latent_std: np.ndarray    # [C] float32
    alphas_cumprod: np.ndarray


def supported(options) -> bool:
    """Whether the device loop takes these diffusion options (else the host loop runs)."""
    return options.eta == 0.0 and options.guidance_iters == 1 and not options.guidance_repredict


def iter_diffused_device(warp_frames: Iterable[np.ndarray], num_frames: int, key_a: np.ndarray, key_b: np.ndarray,
                         tracks: Tracks | None, models: DeviceDiffusionModels, options, device: Device,
                         seed: int = 0, guidance_factory: Callable | None = None) -> Iterator[np.ndarray]:
    """The refined frames of a group in order, uint8 ``[H, W, 3]``, as ``iter_diffused`` yields them."""
    options.validate()
    F = int(num_frames)
    key_a, key_b = np.asarray(key_a, np.uint8), np.asarray(key_b, np.uint8)
    H, W = key_a.shape[:2]
    source = iter(warp_frames)
    if F <= 2:
        for _ in range(F):
            next(source)
        yield key_a.copy()
        if F == 2:
            yield key_b.copy()
        return
    run = _Group(source, F, key_a, key_b, tracks, models, options, device, seed, guidance_factory)
    try:
        yield key_a.copy()
        yield from run.windows()
        yield key_b.copy()
    finally:
        run.release()


class _Group:
    """One group's device state: per-frame warp pixels (host, for the residual) and latents (device)."""

    def __init__(self, source, F, key_a, key_b, tracks, models, options, device, seed, guidance_factory):
        self.source, self.F, self.key_a, self.key_b = source, F, key_a, key_b
        self.models, self.options, self.device = models, options, device
        self.H, self.W = key_a.shape[:2]
        self.h8, self.w8 = -(-self.H // 8) * 8, -(-self.W // 8) * 8
        self.batch = max(int(options.vae_batch), 1)
        self.pixels: dict[int, np.ndarray] = {}
        self.zn: dict[int, object] = {}     # local frame -> normalised latent buffer [C, h, w]
        self.read_upto = self.encoded = 0
        self.mean = device.upload(np.asarray(models.latent_mean, np.float32))
        self.std = device.upload(np.asarray(models.latent_std, np.float32))
        abar = models.alphas_cumprod
        t_start = start_timestep(options.strength, len(abar))
        self.timesteps = timesteps_for(options.steps, t_start, options.spacing)
        self.t_start = t_start if self.timesteps.size else -1
        self.abar = abar
        self.rng = np.random.default_rng(seed)
        self.tracks = tracks
        self.guide = options.guidance_scale != 0.0 and tracks is not None and tracks.num_tracks > 0
        if self.guide:
            self.pos_all = latent_positions(tracks.xy)
            self.vis_all = tracks.vis.astype(np.float32)
        self.guidance_factory = guidance_factory
        self.owned: list = [self.mean, self.std]

    # -- warp frames in, latents out -------------------------------------------------------------
    def _read(self, upto: int) -> None:
        while self.read_upto <= upto:
            f = self.read_upto
            frame = next(self.source, None)
            if frame is None:
                raise ValueError(f"the group has {self.F} frames, the warp frames end at {f}")
            frame = np.asarray(frame, np.uint8)
            if frame.shape != (self.H, self.W, 3):
                raise ValueError("keyframes and warp frames differ in size")
            self.pixels[f] = self.key_a if f == 0 else self.key_b if f == self.F - 1 else frame
            self.read_upto += 1

    def _encode(self, upto: int) -> None:
        """Encode warp frames up to ``upto`` in the VAE batches of the whole group (as the host does)."""
        dev = self.device
        while self.encoded <= upto:
            lo = self.encoded
            hi = min(lo + self.batch, self.F)
            self._read(hi - 1)
            frames = dev.upload(np.stack([self.pixels[f] for f in range(lo, hi)]))
            image = dev.empty((hi - lo, 3, self.h8, self.w8))
            dev.vae_input(frames, image)
            latent = self.models.vae_encoder.run({"image": image})["latent"]
            for i in range(hi - lo):
                z = dev.empty(latent.shape[1:])
                dev.normalise(latent.at(i), z, self.mean, self.std)
                self.zn[lo + i] = z
            dev.release(frames, image)
            self.encoded = hi

    # -- windows -------------------------------------------------------------------------------------
    def windows(self) -> Iterator[np.ndarray]:
        dev, opts = self.device, self.options
        first = None
        for s, e in plan_windows(self.F, opts.window):
            self._encode(e)
            n = e - s + 1
            c, h, w = self.zn[s].shape
            if first is None:
                first = dev.empty((c, h, w))
                self.owned.append(first)
                dev.copy_into(first, self.zn[s])
            zw = dev.empty((n, c, h, w))
            for i in range(n):
                dev.copy_into(zw.at(i), self.zn[s + i])
            x = self._warm_start(zw, first, self.zn[e])
            cond = self._cond(first, self.zn[e], zw)
            self._sample(x, cond, first, self.zn[e], s, e)
            dev.copy_into(first, x.at(n - 1))  # the generated join latent anchors the next window
            yield from self._output(x, zw, s, e)
            dev.release(zw, x, cond)
            for f in [f for f in self.pixels if f < e]:
                del self.pixels[f]
            for f in [f for f in self.zn if f < e]:
                dev.release(self.zn.pop(f))
        if next(self.source, None) is not None:
            raise ValueError(f"the group has {self.F} frames, there are more warp frames")

    def _warm_start(self, zw, first, last):
        dev = self.device
        x = dev.empty(zw.shape)
        for i in range(zw.shape[0]):
            dev.copy_into(x.at(i), first if i == 0 else last if i == zw.shape[0] - 1 else zw.at(i))
        if self.t_start >= 0:
            noise = dev.upload(self.rng.standard_normal(zw.shape, dtype=np.float32))
            dev.noise_mix(x, noise, x, float(self.abar[self.t_start]))
            dev.release(noise)
        return x

    def _cond(self, first, last, zw):
        dev = self.device
        n, c, h, w = zw.shape
        cond = dev.empty((n, COND_CHANNELS, h, w))
        dev.fill(cond, 0.0)
        dev.copy_into(cond.at(0).head(c), first)
        dev.copy_into(cond.at(n - 1).head(c), last)
        for i in (0, n - 1):
            dev.fill(cond.at(i).at(c), 1.0)
        for i in range(n):
            dev.copy_into(cond.at(i).tail(c + 1), zw.at(i))
        return cond

    def _sample(self, x, cond, first, last, s, e):
        dev, opts = self.device, self.options
        n = e - s + 1
        if not self.timesteps.size:
            return
        ref = dev.empty((2, *first.shape))
        dev.copy_into(ref.at(0), first)
        dev.copy_into(ref.at(1), last)
        stepper = None
        if self.guide:
            stepper = dev.guided_stepper(ref, self.pos_all[:, s:e + 1], self.vis_all[:, s:e + 1], x.shape,
                                         self.guidance_factory)
        scale = opts.guidance_scale * (self.tracks.num_tracks * num_pairs(n) if self.guide else 1)
        staging = Staging(dev)
        try:
            for i, t in enumerate(self.timesteps.tolist()):
                a = float(self.abar[t])
                a_prev = float(self.abar[self.timesteps[i + 1]]) if i + 1 < len(self.timesteps) else 1.0
                t_buf = staging.put("t", np.array([t], np.float32))
                eps = self.models.unet.run({"sample": x.reshape((1, *x.shape)), "timestep": t_buf,
                                            "cond": cond.reshape((1, *cond.shape))})["eps"]
                eps = eps.reshape(x.shape)
                if stepper is not None:
                    stepper.step(x, eps, t, a, a_prev, scale)
                else:
                    dev.ddim_step(x, eps, a, a_prev)
        finally:
            if stepper is not None:
                stepper.close()
            staging.release()
            dev.release(ref)

    def _output(self, x, zw, s, e) -> Iterator[np.ndarray]:
        """Frames s+1 .. min(e, F-2), a VAE batch at a time."""
        dev, opts = self.device, self.options
        stop = min(e, self.F - 2)
        count = stop - s
        for i in range(0, count, self.batch):
            j = min(i + self.batch, count)
            k = j - i
            if opts.output == "residual":
                both = dev.empty((2 * k, *x.shape[1:]))
                for q in range(k):
                    dev.copy_into(both.at(q), x.at(1 + i + q))
                    dev.copy_into(both.at(k + q), zw.at(1 + i + q))
                images = self._decode(both)
                warp = dev.upload(np.stack([self.pixels[f] for f in range(s + 1 + i, s + 1 + j)]))
                out = dev.empty((k, self.H, self.W, 3), np.uint8)
                dev.residual(images.head(k), images.tail(k), warp, out, opts.residual_blur)
                frames = dev.download(out)
                dev.release(both, images, warp, out)
            else:
                part = dev.empty((k, *x.shape[1:]))
                for q in range(k):
                    dev.copy_into(part.at(q), x.at(1 + i + q))
                images = self._decode(part)
                out = dev.empty((k, self.H, self.W, 3), np.uint8)
                dev.frame_output(images, out)
                frames = dev.download(out)
                dev.release(part, images, out)
            yield from frames

    def _decode(self, zn):
        """VAE-decode normalised latents [N, C, h, w] in the decoder's batches -> images [N, 3, h8, w8]."""
        dev = self.device
        n = zn.shape[0]
        latent = dev.empty(zn.shape)
        dev.denormalise(zn, latent, self.mean, self.std)
        images = None
        for lo in range(0, n, self.batch):
            hi = min(lo + self.batch, n)
            out = self.models.vae_decoder.run({"latent": latent.slice(lo, hi)})["image"]
            if images is None:
                images = dev.empty((n, *out.shape[1:]))
            dev.copy_into(images.slice(lo, hi), out)
        dev.release(latent)
        return images

    def release(self) -> None:
        self.device.release(*self.owned, *self.zn.values())
        self.zn = {}

