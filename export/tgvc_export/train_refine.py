"""Train the UNet as a refiner of the interpolation decoder, end to end through the decoder's output.

``--mode diffusion`` starts from the frames of the default decode (the RIFE interpolator steered by
the tracks, ``interp_data.py``) and outputs ``interp + blur(D(x0) - D(z_interp))`` (the residual
output, ``DiffusionOptions.output``/``residual_blur``). The UNet was trained on the *warp* decoder's
frames, against the decoded true latents. Here it learns the job it has in decoding:

* **input** as the decoder builds it: the window's interp latents ``z`` (normalised), noised to
  ``t`` (``sqrt(abar) z + sqrt(1 - abar) n``, the warm start), ``cond`` from the decoded keyframe
  latents and ``z``;
* **output** as the decoder makes it: x0 from the predicted eps (one DDIM step to 0), TAEF2-decoded on
  a latent crop of a few in-between frames, minus the decode of ``z``, blurred with the decoder's
  Gaussian, added to the interpolated pixels;
* **loss**: L1 against the TRUE pixels on the crop's interior (the decoder's receptive field and the
  blur see the crop's border), 0-1 RGB.

Timesteps are drawn uniformly from ``[t_lo, t_hi)`` around the decoder's warm start (strength 0.2:
t = 199). Validation: fixed windows, crops and noise of the held-out clips at t = 199; the PSNR gain
of the output over the interpolated frames on the same interiors (RGB, 0-255).

    python -m tgvc_export train-refine --steps 2000 --max-minutes 30 --out-dir cache/refine
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F_

from .data import TRAIN_CLIPS, VAL_CLIPS
from .interp_data import RATES, InterpClip, load_interp_data, load_synth_data
from .paths import recorded_path
from .schedule import alphas_cumprod
from .taef2 import load_taef2
from .train_unet import CHECKPOINT_DIR, load_trained, optimise_step
from .unet import count_params
from .windows import make_cond


@dataclass
class RefineConfig:
    init: str = str(CHECKPOINT_DIR / "unet_default.pt")
    steps: int = 2000
    batch: int = 4            # crops of one window per step
    crop: int = 12            # latent crop side (8 * crop pixels)
    margin: int = 16          # pixels of the crop's border left out of the loss
    frames: int = 3           # in-between frames decoded per crop
    window: int = 16          # frames per window (the decoder's)
    lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.01
    ema: float = 0.995
    t_lo: int = 50
    t_hi: int = 250
    blur: float = 4.0         # the decoder's residual blur (px); 0 = none
    seed: int = 0
    threads: int = 2
    val_every: int = 200
    val_windows: int = 24
    max_minutes: float = 0.0
    zero_out: bool = True     # zero the UNet's output conv: start exactly at the interpolated frames
    synthetic: int = 0        # synthetic-motion clips (interp_data.make_synth_interp_data) added to the training set
    rates: tuple[float, ...] = RATES


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """OpenCV's 1-D Gaussian for ``GaussianBlur(ksize=(0, 0), sigma)`` on float images."""
    k = int(round(sigma * 4 * 2 + 1)) | 1
    x = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def blur(img: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    """Separable Gaussian of [N, C, H, W] with reflect-101 borders (OpenCV's default)."""
    if kernel is None:
        return img
    c, r = img.shape[1], kernel.numel() // 2
    x = F_.pad(img, (r, r, r, r), mode="reflect")
    x = F_.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F_.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def windows_of(clips: list[InterpClip], window: int) -> list[tuple[int, int, int]]:
    """(clip index, start, end) of every decoder window with at least one in-between frame: each group's
    first window (the decoder chains longer groups; later windows start from refined frames)."""
    out = []
    for i, c in enumerate(clips):
        for s, e in c.groups:
            e = min(int(e), int(s) + window - 1)
            if e - s >= 2:
                out.append((i, int(s), e))
    return out


def sample_window(rng: np.random.Generator, clips: list[InterpClip], win: tuple[int, int, int], batch: int,
                  cfg: RefineConfig, mean: np.ndarray, std: np.ndarray):
    """``batch`` random crops of one window: (z [B, F, 32, c, c] normalised, interp px, truth px [B, F', 3, 8c, 8c]
    of the ``frames`` picked in-between frames, their indices)."""
    ci, s, e = win
    clip = clips[ci]
    h, w = clip.latents.shape[2:]
    c = min(cfg.crop, h, w)
    nf = e - s + 1
    pick = 1 + rng.permutation(nf - 2)[:cfg.frames]
    zs, ips, tps = [], [], []
    for _ in range(batch):
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        z = (clip.latents[s:e + 1, :, y:y + c, x:x + c] - mean[None, :, None, None]) / std[None, :, None, None]
        ip = clip.frames[s:e + 1][pick, 8 * y:8 * (y + c), 8 * x:8 * (x + c)]
        tp = clip.truth[s:e + 1][pick, 8 * y:8 * (y + c), 8 * x:8 * (x + c)]
        if rng.random() < 0.5:  # horizontal flip
            z, ip, tp = z[..., ::-1], ip[:, :, ::-1], tp[:, :, ::-1]
        zs.append(np.ascontiguousarray(z))
        ips.append(np.ascontiguousarray(ip.transpose(0, 3, 1, 2)))
        tps.append(np.ascontiguousarray(tp.transpose(0, 3, 1, 2)))
    z = torch.from_numpy(np.stack(zs)).float()
    to = lambda a: torch.from_numpy(np.stack(a)).float() / 255.0  # noqa: E731
    pick_t = torch.from_numpy(pick)
    if rng.random() < 0.5:  # time reversal (the keyframes swap ends)
        z = z.flip(1)
        pick_t = nf - 1 - pick_t
    return z, to(ips), to(tps), pick_t


class Refiner:
    """The decoder's output path in torch: one DDIM step to x0, residual decode, blur."""

    def __init__(self, decoder: torch.nn.Module, mean: np.ndarray, std: np.ndarray, abar: torch.Tensor,
                 blur_sigma: float):
        self.decoder = decoder.eval()
        for p in self.decoder.parameters():
            p.requires_grad_(False)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.abar = abar
        self.kernel = gaussian_kernel(blur_sigma) if blur_sigma > 0 else None

    def decode(self, zn: torch.Tensor) -> torch.Tensor:
        return self.decoder(zn * self.std + self.mean)

    def __call__(self, model: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 interp_px: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        """Output pixels [B, F', 3, H, W] (0-1) of the picked frames for windows z [B, F, 32, h, w]."""
        b = z.shape[0]
        a = self.abar[t].view(b, 1, 1, 1, 1)
        # the warm start: anchors are the keyframe latents, the in-between frames start from the interp latents
        sample = a.sqrt() * z + (1 - a).sqrt() * noise
        pred = model(sample, t.float(), make_cond(z, z))
        x0 = (sample - (1 - a).sqrt() * pred) / a.sqrt()
        sel_x0 = x0[:, pick].flatten(0, 1)
        sel_z = z[:, pick].flatten(0, 1)
        with torch.no_grad():
            base = self.decode(sel_z)
        change = blur(self.decode(sel_x0) - base, self.kernel)
        return (interp_px.flatten(0, 1) + change).view(interp_px.shape)


def interior(x: torch.Tensor, m: int) -> torch.Tensor:
    return x[..., m:x.shape[-2] - m, m:x.shape[-1] - m] if m else x


def validation_set(clips: list[InterpClip], cfg: RefineConfig, mean, std):
    rng = np.random.default_rng(1234)
    g = torch.Generator().manual_seed(1234)
    wins = windows_of(clips, cfg.window)
    out = []
    for k in range(cfg.val_windows):
        win = wins[int(rng.integers(len(wins)))]
        z, ip, tp, pick = sample_window(rng, clips, win, 2, cfg, mean, std)
        out.append((z, ip, tp, pick, torch.randn(z.shape, generator=g)))
    return out


@torch.no_grad()
def validate(model, refiner: Refiner, val, margin: int, t: int = 199) -> dict:
    """PSNR (RGB 0-255) of output and of the interpolated frames on the crops' interiors; mean over crops."""
    model.eval()
    gains, base = [], []
    for z, ip, tp, pick, noise in val:
        out = refiner(model, z, torch.full((z.shape[0],), t), noise, ip, pick).clamp(0, 1)
        q = lambda x: torch.round(x * 255)  # noqa: E731  (the decoder rounds to uint8)
        mse_o = torch.mean((q(interior(out, margin)) - q(interior(tp, margin))) ** 2, dim=(2, 3, 4))
        mse_i = torch.mean((q(interior(ip, margin)) - q(interior(tp, margin))) ** 2, dim=(2, 3, 4))
        po = 10 * torch.log10(255 ** 2 / mse_o.clamp(min=1e-3))
        pi = 10 * torch.log10(255 ** 2 / mse_i.clamp(min=1e-3))
        gains.append((po - pi).flatten())
        base.append(pi.flatten())
    model.train()
    g = torch.cat(gains)
    return {"val_psnr_gain": round(float(g.mean()), 4), "val_psnr_interp": round(float(torch.cat(base).mean()), 3),
            "val_frac_better": round(float((g > 0).float().mean()), 3)}


def train_refine(cfg: RefineConfig, out_dir: Path, name: str = "default") -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model, base_record = load_trained(Path(cfg.init))
    ema = load_trained(Path(cfg.init))[0].eval()
    if cfg.zero_out:  # the warp-trained correction hurts the interpolated frames (-0.36 dB at step 0)
        for m in (model, ema):
            torch.nn.init.zeros_(m.conv_out.weight)
            torch.nn.init.zeros_(m.conv_out.bias)
    model.train()
    mean = np.asarray(base_record["latent_mean"], np.float32)
    std = np.asarray(base_record["latent_std"], np.float32)
    train_clips = load_interp_data(TRAIN_CLIPS, cfg.rates) + (load_synth_data(limit=cfg.synthetic) if cfg.synthetic else [])
    val_clips = load_interp_data(VAL_CLIPS, RATES)
    if not train_clips or not val_clips:
        raise SystemExit("no interp data: run make-interp-data first")
    wins = windows_of(train_clips, cfg.window)
    weights = np.array([e - s - 1 for _, s, e in wins], np.float64)
    weights /= weights.sum()
    abar = torch.from_numpy(alphas_cumprod()).float()
    refiner = Refiner(load_taef2()[1], mean, std, abar, cfg.blur)
    val = validation_set(val_clips, cfg, mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    history = [{"step": 0, **validate(ema, refiner, val, cfg.margin)}]
    print(json.dumps(history[-1]), flush=True)
    start, run = time.time(), None
    for step in range(1, cfg.steps + 1):
        win = wins[int(rng.choice(len(wins), p=weights))]
        z, ip, tp, pick = sample_window(rng, train_clips, win, cfg.batch, cfg, mean, std)
        t = torch.randint(cfg.t_lo, cfg.t_hi, (z.shape[0],), generator=g)
        out = refiner(model, z, t, torch.randn(z.shape, generator=g), ip, pick)
        loss = torch.mean(torch.abs(interior(out, cfg.margin) - interior(tp, cfg.margin)))
        optimise_step(model, ema, opt, sched, loss, step, cfg.ema)
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        out_of_time = cfg.max_minutes > 0 and (time.time() - start) / 60 > cfg.max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            history.append({"step": step, "train_l1": round(run, 5), "minutes": round((time.time() - start) / 60, 1),
                            **validate(ema, refiner, val, cfg.margin)})
            print(json.dumps(history[-1]), flush=True)
        if out_of_time:
            break
    record = {**base_record, "steps": history[-1]["step"], "train_minutes": round((time.time() - start) / 60, 1),
              "history": history, "refine_config": {**asdict(cfg), "init": recorded_path(cfg.init)},
              "data": "real interp decoder output (export/tgvc_export/interp_data.py), rates "
                      + ", ".join(f"{r:g}" for r in cfg.rates) + f" bpp, plus {cfg.synthetic} synthetic-motion clips; loss: L1 of the residual output vs the true "
                      "pixels (train_refine.py)",
              "params": count_params(model), "torch": str(torch.__version__)}
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"ema_fp16": {k: v.half() for k, v in ema.state_dict().items()}, "record": record},
               out_dir / f"unet_{name}.pt")
    (out_dir / f"unet_{name}.json").write_text(json.dumps(record, indent=1))
    return record
