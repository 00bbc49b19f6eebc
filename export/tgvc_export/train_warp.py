"""Fine-tune the UNet on the real warp decoder's output (warp_data.py, group_windows.py).

Starts from a trained checkpoint (``export/checkpoints/unet_default.pt``) and keeps its latent
statistics (they are the manifest's), its epsilon prediction and warp-residual parameterisation.

Each step: ``batch`` real groups (same F), cond from the decoded keyframe and warp latents, target
x0 = the true latents. The noisy sample is built as the decoder builds it: the *warp* latents
noised to t (``warp_start_prob`` of the windows, default all; the first DDIM step of a warm start
sees exactly this), otherwise a blend ``lam * truth + (1 - lam) * warp`` (lam ~ U(0, 1)), noised
with eps. The blend (at 0.5) was measured worse: the model learns that any sample-minus-warp
difference is a scaled-down truth residual and amplifies its own earlier predictions. The eps target is the one
that maps the sample to the true x0: ``(sample - sqrt(abar) x0) / sqrt(1 - abar)``. Loss:
min-SNR-gamma weighted eps MSE over the in-between frames (keyframes are passed through by the
decoder). Timesteps: ``low_t_prob`` uniform in [0, low_t_max) (warm starts at strength 0.2-0.6),
else uniform in [0, 1000).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import TRAIN_CLIPS, VAL_CLIPS
from .eval_warp import evaluate_groups, evaluate_groups_pixels
from .paths import recorded_path
from .pixel_loss import PixelLoss
from .taef2 import load_taef2
from .group_windows import GroupWindowConfig, build_pool, sample_group_windows
from .latents import CACHE_DIR
from .schedule import alphas_cumprod
from .train_unet import CHECKPOINT_DIR, load_trained, optimise_step, snr_weight
from .unet import count_params
from .warp_data import RATES, load_warp_data
from .windows import make_cond


@dataclass
class FinetuneConfig:
    init: str = str(CHECKPOINT_DIR / "unet_default.pt")  # checkpoint to start from
    steps: int = 3000  # optimiser steps
    batch: int = 4  # groups per step
    lr: float = 1e-4  # peak AdamW learning rate (linear warm-up, cosine decay)
    warmup: int = 50
    weight_decay: float = 0.01
    ema: float = 0.995  # EMA decay of the exported weights
    low_t_prob: float = 0.9  # fraction of timesteps drawn from [0, low_t_max)
    low_t_max: int = 600  # decoder warm starts at strength 0.2-0.6 -> t < 600
    warp_start_prob: float = 1.0  # windows whose clean base is the warp itself (else a blend; 0.5 measured
    #                               worse: a blend teaches the model to amplify sample-warp differences)
    min_snr: float = 5.0  # min-SNR-gamma weighting (0 = plain eps MSE)
    seed: int = 0
    val_every: int = 0  # steps between validation passes (decoder loop at val_strength; 0 = only at the end)
    val_strength: float = 0.4
    threads: int = 2
    max_minutes: float = 0.0  # wall-clock guard (0 = none): stop early, keep the EMA
    eps_weight: float = 1.0  # weight of the (min-SNR weighted) eps MSE
    pixel_weight: float = 0.0  # weight of the pixel L1 through the frozen TAEF2 decoder (pixel_loss.py)
    pixel_crop: int = 6  # latent sub-crop side decoded for the pixel loss (48 px)
    pixel_frames: int = 2  # in-between frames per window decoded for the pixel loss
    rates: tuple[float, ...] = RATES
    windows: GroupWindowConfig = field(default_factory=GroupWindowConfig)


def finetune_batch(truth: torch.Tensor, dec: torch.Tensor, g: torch.Generator, cfg: FinetuneConfig,
                   abar: torch.Tensor):
    """(sample, timestep, cond, eps target) for windows [B, F, C, h, w] (see module doc)."""
    b = truth.shape[0]
    low = torch.rand(b, generator=g) < cfg.low_t_prob
    t = torch.where(low, torch.randint(0, cfg.low_t_max, (b,), generator=g),
                    torch.randint(0, 1000, (b,), generator=g))
    lam = torch.rand(b, generator=g)
    lam = torch.where(torch.rand(b, generator=g) < cfg.warp_start_prob, torch.zeros(b), lam)
    lam = lam.view(b, 1, 1, 1, 1)
    x0 = truth.clone()
    x0[:, 0], x0[:, -1] = dec[:, 0], dec[:, -1]  # the decoder keeps its decoded keyframes
    base = lam * x0 + (1 - lam) * dec
    a = abar[t].view(b, 1, 1, 1, 1)
    sample = a.sqrt() * base + (1 - a).sqrt() * torch.randn(truth.shape, generator=g)
    eps = (sample - a.sqrt() * x0) / (1 - a).sqrt()
    return sample, t.float(), make_cond(dec, dec), eps


def finetune_loss(model: torch.nn.Module, batch, truth: torch.Tensor, abar: torch.Tensor, cfg: FinetuneConfig,
                  pixel: PixelLoss, g: torch.Generator) -> torch.Tensor:
    """``eps_weight`` x min-SNR eps MSE + ``pixel_weight`` x pixel L1 of the predicted x0 (in-between frames)."""
    sample, t, cond, eps = batch
    pred = model(sample, t, cond)
    loss = torch.zeros(())
    if cfg.eps_weight:
        err = (pred - eps)[:, 1:-1]
        loss = loss + cfg.eps_weight * torch.mean(torch.mean(err ** 2, dim=(1, 2, 3, 4))
                                                  * snr_weight(abar[t.long()], cfg.min_snr))
    if cfg.pixel_weight:
        a = abar[t.long()].view(-1, 1, 1, 1, 1)
        x0 = (sample - (1 - a).sqrt() * pred) / a.sqrt()
        loss = loss + cfg.pixel_weight * pixel(x0, truth, g)
    return loss


def finetune(cfg: FinetuneConfig, out_dir: Path = CHECKPOINT_DIR, name: str = "default") -> dict:
    """Fine-tune; writes out_dir/unet_<name>.pt (+ .json) and returns the record."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model, base_record = load_trained(Path(cfg.init))
    model.train()
    ema = load_trained(Path(cfg.init))[0].eval()
    mean = np.asarray(base_record["latent_mean"], np.float32)
    std = np.asarray(base_record["latent_std"], np.float32)
    train_pool = build_pool(load_warp_data(TRAIN_CLIPS, cfg.rates), mean, std, cfg.windows)
    val_pool = build_pool(load_warp_data(VAL_CLIPS, RATES), mean, std, cfg.windows)  # fixed: comparable runs
    abar = torch.from_numpy(alphas_cumprod()).float()
    pixel = PixelLoss(load_taef2()[1], mean, std, cfg.pixel_crop, cfg.pixel_frames)  # loss and validation
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    start = time.time()
    history: list[dict] = []
    run = None
    for step in tqdm(range(1, cfg.steps + 1), desc="finetune", mininterval=10):
        truth, dec = (torch.from_numpy(a) for a in sample_group_windows(rng, train_pool, cfg.batch, cfg.windows))
        loss = finetune_loss(model, finetune_batch(truth, dec, g, cfg, abar), truth, abar, cfg, pixel, g)
        optimise_step(model, ema, opt, sched, loss, step, cfg.ema)
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        out_of_time = cfg.max_minutes > 0 and (time.time() - start) / 60 > cfg.max_minutes
        if step % 100 == 0 or step == cfg.steps or out_of_time:
            val = {}
            if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
                val = evaluate_groups(ema, val_pool, (cfg.val_strength,))
                val["pixel_psnr"] = evaluate_groups_pixels(ema, val_pool, pixel.decode, 0.2, 6, max_groups=4)
            history.append({"step": step, "train_loss": round(run, 4), "minutes": round((time.time() - start) / 60, 1),
                            **val})
            tqdm.write(json.dumps(history[-1]))
            (CACHE_DIR / "checkpoints").mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "step": step},
                       CACHE_DIR / "checkpoints" / f"unet_{name}_finetune_last.pt")
        if out_of_time:
            break
    train_minutes = round((time.time() - start) / 60, 1)
    final_val = evaluate_groups(ema, val_pool)
    final_val1 = evaluate_groups(ema, val_pool, (0.1, 0.2, 0.3), steps=1)
    final_pixels = evaluate_groups_pixels(ema, val_pool, pixel.decode, 0.2, 6, max_groups=8)
    record = {**base_record, "steps": history[-1]["step"], "train_minutes": train_minutes,
              "val_loss": final_val[min((k for k in final_val if k != "warp"), key=final_val.get)],
              "val_refine_mse": final_val, "val_refine_mse_1step": final_val1,
              "val_pixel_psnr": final_pixels, "history": history, "finetune_config": {**asdict(cfg), "init": recorded_path(cfg.init)},
              "base": {k: base_record.get(k) for k in ("steps", "train_minutes", "val_loss", "train_config")},
              "data": "real warp decoder output (export/tgvc_export/warp_data.py), rates " +
                      ", ".join(f"{r:g}" for r in cfg.rates) + " bpp",
              "params": count_params(model), "torch": str(torch.__version__)}
    final = {k: v.half() for k, v in ema.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"ema_fp16": final, "record": record}, out_dir / f"unet_{name}.pt")
    (out_dir / f"unet_{name}.json").write_text(json.dumps(record, indent=1))
    return record
