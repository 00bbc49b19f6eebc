"""Guided diffusion decoding of one keyframe group (``--mode diffusion``), PyTorch-free.

``diffuse_group`` refines the warp decoder's frames with the model set's video UNet:
VAE-encode keyframes and warp frames -> per window (``diffusion.window``: at most ``window``
frames, chained with a one-frame overlap) build ``cond``, warm-start from the noised warp latents
(``diffusion.warm_start``), run guided DDIM (``diffusion.samplers``, guidance from the tracks in
latent coordinates, ``diffusion.guidance``) -> VAE-decode the in-between frames, by default as a
residual on the warp frames (``warp + D(z) - D(z_warp)``, ``DiffusionOptions.output``). The keyframes are
passed through exactly at frames 0 and F-1. Images whose size is not a multiple of 8 are padded
(edge replication, bottom/right) for the VAE and cropped back; track coordinates are unaffected.

``iter_diffused`` does this window by window on a stream of warp frames: it takes the warp frames of
one window (and of the VAE batch the window ends in), yields that window's refined frames and keeps
only the latent of the join, so its memory does not grow with the group's length. ``diffuse_group``
is the same on a stacked group.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from tgvc_rt.diffusion.guidance import latent_positions, num_pairs
from tgvc_rt.diffusion.guidance_native import select_guidance_factory
from tgvc_rt.diffusion.samplers import sample_ddim
from tgvc_rt.diffusion.schedules import start_timestep, timesteps_for
from tgvc_rt.diffusion.warm_start import warm_start
from tgvc_rt.diffusion.window import build_cond, plan_windows
from tgvc_rt.errors import OptionError
from tgvc_rt.types import Tracks

OUTPUTS = ("residual", "latent")
GuidanceFactory = Callable[..., Callable[[np.ndarray, int], np.ndarray]]


@dataclass
class DiffusionOptions:
    steps: int = 1                 # DDIM steps (UNet evaluations) per window; with the default set 1 step
    #                                scored best on the held-out clips (JOD 1 > 2 > 3 > 6 steps, docs/decoder.md)
    strength: float = 0.2          # warm-start strength in [0, 1]: t_start = round(strength*T) - 1; 0.2 had
    #                                the lowest held-out latent MSE of 0.2-0.5 with the default set (export/README.md)
    guidance_scale: float = 30.0   # s of docs/guidance.md (paper: 30); 0 disables guidance
    eta: float = 0.0               # DDIM stochasticity (0 = deterministic DDIM)
    window: int = 16               # max frames per diffusion window (UNet training length)
    threads: int | None = None     # CPU threads of the native guidance (the models' device and threads are
    #                                DecodeOptions': the ModelSet opens the sessions)
    spacing: str = "trailing"      # timestep spacing: trailing | leading | linspace
    guidance_iters: int = 1        # guidance updates per step (eps held fixed unless repredict)
    guidance_repredict: bool = False  # re-run the UNet after each guidance update (costly)
    vae_batch: int = 4             # frames per VAE call (memory bound; results do not depend on it)
    guidance_factory: GuidanceFactory | None = None
    """``factory(ref, pos, vis, shape) -> guidance(x0, t)``; None = chosen by ``guidance_impl``.
    The CUDA kernel plugs in here."""
    output: str = "residual"
    """How refined latents become pixels: "residual" adds the decoded change of the latents to the warp
    frames, ``warp + D(z) - D(z_warp)`` (the VAE's own reconstruction error cancels; one more VAE decode),
    "latent" decodes ``D(z)`` alone."""
    residual_blur: float = 4.0
    """Gaussian sigma (px) applied to the decoded change of the residual output: keeps the UNet's
    correction at the latent's scale (8 px) and drops the pixel-scale texture that TAEF2 makes of small
    latent perturbations. 0 = off. Six clips at 0.005 bpp, sigma 4 vs 0: mean JOD 5.886 vs 5.819, VMAF
    28.5 vs 24.9 (results/diffusion_sweep_residual_blur.json, results/codec_rd_tgvc.json)."""
    guidance_impl: str = "auto"
    """CPU guidance when ``guidance_factory`` is None: "native" (compiled float32,
    ``diffusion.guidance_native``), "numpy" (the reference ``diffusion.guidance.make_guidance``) or
    "auto" (native when built, else NumPy)."""

    def validate(self) -> None:
        if self.steps < 0:
            raise OptionError(f"diffusion steps must be >= 0, got {self.steps}")
        if not 0.0 <= self.strength <= 1.0:
            raise OptionError(f"diffusion strength must be in [0, 1], got {self.strength}")
        if self.eta < 0.0:
            raise OptionError(f"eta must be >= 0, got {self.eta}")
        if self.output not in OUTPUTS:
            raise OptionError(f"diffusion output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if not self.residual_blur >= 0.0:
            raise OptionError(f"residual blur must be >= 0 px, got {self.residual_blur}")
        if self.window < 2:
            raise OptionError(f"diffusion window must be >= 2 frames, got {self.window}")


@contextmanager
def _timed(timings: dict | None, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
            timings[key + "_calls"] = timings.get(key + "_calls", 0) + 1


def _pad8(frames: np.ndarray) -> np.ndarray:
    H, W = frames.shape[1:3]
    ph, pw = -H % 8, -W % 8
    if ph == 0 and pw == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def diffuse_group(warp_frames: np.ndarray, key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks | None,
                  models, options: DiffusionOptions | None = None, seed: int = 0,
                  timings: dict | None = None) -> np.ndarray:
    """Guided diffusion refinement of one group: uint8 ``[F, H, W, 3]``.

    ``warp_frames`` uint8 ``[F, H, W, 3]`` (the warp decoder's output, keyframes included),
    ``key_a``/``key_b`` the decoded keyframes (returned exactly at frames 0 and F-1), ``tracks``
    the group's tracks (``xy`` pixels ``[K, F, 2]``; None or K = 0 disables guidance), ``models`` a
    ``tgvc_rt.models.ModelSet``. All randomness comes from ``numpy.random.default_rng(seed)``: same
    inputs, seed and backend -> bit-identical output. ``timings`` (a dict), when given, accumulates
    seconds per stage (``vae_encode``, ``unet``, ``guidance``, ``guidance_plan``, ``vae_decode``,
    ``total``) and call
    counts (``<stage>_calls``).
    """
    warp_frames = np.asarray(warp_frames, dtype=np.uint8)
    if warp_frames.ndim != 4 or warp_frames.shape[3] != 3:
        raise ValueError(f"warp frames must be uint8 [F, H, W, 3], got {warp_frames.shape}")
    out = np.empty_like(warp_frames)
    for f, frame in enumerate(iter_diffused(warp_frames, len(warp_frames), key_a, key_b, tracks, models, options,
                                            seed, timings)):
        out[f] = frame
    return out


def iter_diffused(warp_frames: Iterable[np.ndarray], num_frames: int, key_a: np.ndarray, key_b: np.ndarray,
                  tracks: Tracks | None, models, options: DiffusionOptions | None = None, seed: int = 0,
                  timings: dict | None = None) -> Iterator[np.ndarray]:
    """``diffuse_group`` window by window: the refined frames of a group in order, uint8 ``[H, W, 3]`` each,
    from its ``num_frames`` warp frames (any iterable of uint8 ``[H, W, 3]`` in order, read as needed).

    Holds the warp frames and latents of one diffusion window (plus the rest of the VAE batch it ends in)
    at a time. The VAE encodes the frames in the same batches as the whole group at once would, and
    decodes a window's frames a VAE batch at a time (its models work per frame: the batches do not change
    the result); the UNet sees each window as always.
    """
    options = options or DiffusionOptions()
    options.validate()
    F = int(num_frames)
    key_a, key_b = np.asarray(key_a), np.asarray(key_b)
    H, W = key_a.shape[:2]
    if key_a.shape != (H, W, 3) or key_b.shape != (H, W, 3):
        raise ValueError("keyframes and warp frames differ in size")
    if tracks is not None and tracks.num_tracks and tracks.num_frames != F:
        raise ValueError(f"tracks span {tracks.num_frames} frames, the group has {F}")
    key_a, key_b = key_a.astype(np.uint8, copy=False), key_b.astype(np.uint8, copy=False)
    source = iter(warp_frames)
    pixels: dict[int, np.ndarray] = {}  # local frame -> warp frame (the keys at 0 and F-1), read, not yet done
    zn: dict[int, np.ndarray] = {}      # local frame -> normalised warp latent, encoded, not yet done
    done = {"read": 0, "encoded": 0, "waited": 0.0}  # frames read and encoded; seconds spent reading

    def read(upto: int) -> None:
        """Read the warp frames up to local frame ``upto`` (inclusive)."""
        while done["read"] <= upto:
            f = done["read"]
            t0 = time.perf_counter()
            frame = next(source, None)
            done["waited"] += time.perf_counter() - t0
            if frame is None:
                raise ValueError(f"the group has {F} frames, the warp frames end at {f}")
            frame = np.asarray(frame, dtype=np.uint8)
            if frame.shape != (H, W, 3):
                raise ValueError("keyframes and warp frames differ in size")
            pixels[f] = key_a if f == 0 else key_b if f == F - 1 else frame
            done["read"] += 1

    def no_more() -> None:
        if next(source, None) is not None:
            raise ValueError(f"the group has {F} frames, there are more warp frames")

    if F <= 2:
        read(F - 1)
        no_more()
        yield key_a.copy()
        if F == 2:
            yield key_b.copy()
        return
    t_total = time.perf_counter()
    ae = models.autoencoder(batch=options.vae_batch)

    def encode(upto: int) -> None:
        """Encode the warp frames up to local frame ``upto`` (inclusive) in the VAE batches of the whole
        group: frames ``k * batch ..``."""
        while done["encoded"] <= upto:
            lo = done["encoded"]
            hi = min(lo + ae.batch, F)
            read(hi - 1)
            with _timed(timings, "vae_encode"):
                z = ae.encode(_pad8(np.stack([pixels[f] for f in range(lo, hi)])))
            zn.update((lo + i, z[i]) for i in range(hi - lo))
            done["encoded"] = hi

    abar = models.alphas_cumprod()
    t_start = start_timestep(options.strength, len(abar))
    timesteps = timesteps_for(options.steps, t_start, options.spacing)
    if timesteps.size == 0:
        t_start = -1  # nothing to denoise: keep the warp latents (no noise added)
    rng = np.random.default_rng(seed)
    denoiser = models.denoiser()
    factory = options.guidance_factory or select_guidance_factory(options.guidance_impl, options.threads)
    use_guidance = options.guidance_scale != 0.0 and tracks is not None and tracks.num_tracks > 0
    if use_guidance:
        pos_all = latent_positions(tracks.xy)
        vis_all = tracks.vis.astype(np.float32)
    yield key_a.copy()
    first = None  # the window's start anchor: the keyframe's latent, then the one generated at the join
    for s, e in plan_windows(F, options.window):
        encode(e)
        zw = np.stack([zn[f] for f in range(s, e + 1)])  # the window's warp latents
        if first is None:
            first = zn[s]
        last = zn[e]                                 # keyframe latent, or warp latent at the join
        clean = zw.copy()
        clean[0], clean[-1] = first, last
        cond = build_cond(first, last, zw)
        x = warm_start(clean, t_start, abar, rng)

        def denoise(x_t, t, cond=cond):
            with _timed(timings, "unet"):
                return denoiser(x_t, t, cond)

        guidance = None
        if use_guidance:
            with _timed(timings, "guidance_plan"):
                inner = factory(np.stack([first, last]), pos_all[:, s:e + 1], vis_all[:, s:e + 1], x.shape)

            def guidance(x0, t, inner=inner):
                with _timed(timings, "guidance"):
                    return inner(x0, t)

        # docs/guidance.md: the loss is a mean over K * Npairs track/reference pairs; the update scales
        # by that count so that s means the same for any number of tracks.
        scale = options.guidance_scale * (tracks.num_tracks * num_pairs(e - s + 1) if use_guidance else 1)
        result = sample_ddim(denoise, x, timesteps, abar, eta=options.eta, rng=rng, guidance=guidance,
                             guidance_scale=scale, guidance_iters=options.guidance_iters,
                             guidance_repredict=options.guidance_repredict)
        latents = np.asarray(result[1:], np.float32)  # frames s+1 .. e
        first = latents[-1]
        stop = min(e, F - 2)  # the window's in-between frames to output: s+1 .. stop
        n = stop - s
        for i in range(0, n, ae.batch):  # decoded a VAE batch at a time (the decoder is per frame)
            j = min(i + ae.batch, n)
            with _timed(timings, "vae_decode"):
                if options.output == "residual":
                    both = ae.decode_float(np.concatenate([latents[i:j], zw[1 + i:1 + j]]))
                    change = both[:j - i, :H, :W] - both[j - i:, :H, :W]
                    if options.residual_blur > 0:  # keep the latent-scale part of the change
                        change = np.stack([cv2.GaussianBlur(c, (0, 0), options.residual_blur) for c in change])
                    warp = np.stack([pixels[f] for f in range(s + 1 + i, s + 1 + j)])
                    decoded = np.clip(np.rint(warp.astype(np.float32) + change), 0, 255).astype(np.uint8)
                else:
                    decoded = ae.decode(latents[i:j])[:, :H, :W]
            t_out = time.perf_counter()
            yield from decoded
            t_total += time.perf_counter() - t_out  # the consumer's time is not ours
        for f in [f for f in pixels if f < e]:
            del pixels[f]
        for f in [f for f in zn if f < e]:
            del zn[f]
    no_more()
    yield key_b.copy()
    if timings is not None:
        timings["total"] = timings.get("total", 0.0) + time.perf_counter() - t_total - done["waited"]
