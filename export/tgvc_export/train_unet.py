"""Train the latent interpolation UNet (epsilon prediction, scaled_linear 1000-step schedule).

Seeded and deterministic on one machine (fixed torch/numpy seeds, a fixed number of steps).
The final checkpoint ``export/checkpoints/unet_<config>.pt`` (committed, ~5.5 MB) holds the EMA weights
in float16 and the training record; periodic full checkpoints go to ``export/cache/checkpoints/``.
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
from .latents import CACHE_DIR, cache_latents, latent_stats, load_latents
from .schedule import SCHEDULE, alphas_cumprod
from .unet import build_unet, count_params
from .windows import WindowConfig, make_cond, sample_windows, warp_proxy

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


@dataclass
class TrainConfig:
    config: str = "default"  # UNet config name
    steps: int = 1000  # optimiser steps
    batch: int = 2  # windows per step
    lr: float = 4e-4  # peak AdamW learning rate (linear warm-up, cosine decay)
    warmup: int = 50  # warm-up steps
    weight_decay: float = 0.01
    ema: float = 0.998  # EMA decay of the exported weights
    low_t_prob: float = 0.8  # fraction of timesteps drawn from [0, low_t_max) (warm-start range)
    low_t_max: int = 650  # decoder warm starts at strength ~0.3-0.6 -> t < ~600
    seed: int = 0
    val_every: int = 200  # steps between validation passes
    val_windows: int = 16  # fixed validation windows from the held-out clips
    threads: int = 2  # torch intra-op threads
    warp_residual: bool = False  # UNet predicts x0 - warp (see unet.UNetConfig.warp_residual)
    min_snr: float = 0.0  # > 0: min-SNR-gamma loss weight min(SNR, gamma) / SNR on the eps MSE
    max_minutes: float = 0.0  # wall-clock guard on a shared machine (0 = none): stop early, keep the EMA
    windows: WindowConfig = field(default_factory=WindowConfig)


def sample_timesteps(g: torch.Generator, n: int, cfg: TrainConfig) -> torch.Tensor:
    low = torch.rand(n, generator=g) < cfg.low_t_prob
    t_low = torch.randint(0, cfg.low_t_max, (n,), generator=g)
    t_all = torch.randint(0, 1000, (n,), generator=g)
    return torch.where(low, t_low, t_all)


def snr_weight(a: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR, gamma) / SNR per item (1 when gamma <= 0), SNR = abar / (1 - abar)."""
    if gamma <= 0:
        return torch.ones_like(a)
    snr = a / (1 - a)
    return snr.clamp(max=gamma) / snr


def diffusion_batch(x0: torch.Tensor, g: torch.Generator, cfg: TrainConfig, abar: torch.Tensor):
    """(sample, timestep, cond, eps) for clean normalised windows x0 [B, F, C, h, w]."""
    t = sample_timesteps(g, x0.shape[0], cfg)
    eps = torch.randn(x0.shape, generator=g)
    a = abar[t].view(-1, 1, 1, 1, 1)
    sample = a.sqrt() * x0 + (1 - a).sqrt() * eps
    cond = make_cond(x0, warp_proxy(x0, g, cfg.windows))
    return sample, t.float(), cond, eps


def validation_set(latents: dict[str, np.ndarray], cfg: TrainConfig, abar: torch.Tensor):
    """Fixed (seeded) validation batches from the held-out clips, full 16-frame windows."""
    rng = np.random.default_rng(1234)
    g = torch.Generator().manual_seed(1234)
    wcfg = WindowConfig(**{**asdict(cfg.windows), "short_prob": 0.0})
    vcfg = TrainConfig(**{**asdict(cfg), "windows": wcfg})
    clips = [latents[c] for c in VAL_CLIPS]
    batches = []
    for _ in range(cfg.val_windows // 4):
        x0 = torch.from_numpy(sample_windows(rng, clips, 4, wcfg))
        batches.append(diffusion_batch(x0, g, vcfg, abar))
    return batches


@torch.no_grad()
def validate(model: torch.nn.Module, batches, abar: torch.Tensor, min_snr: float = 0.0) -> float:
    """Mean (min-SNR weighted, as in training) eps MSE over the fixed validation batches."""
    model.eval()
    losses = [torch.mean(torch.mean((model(s, t, c) - e) ** 2, dim=(1, 2, 3, 4)) *
                         snr_weight(abar[t.long()], min_snr)).item() for s, t, c, e in batches]
    model.train()
    return float(np.mean(losses))


def optimise_step(model: torch.nn.Module, ema: torch.nn.Module, opt, sched, loss: torch.Tensor, step: int,
                  ema_decay: float) -> None:
    """Backward, clip to norm 1, optimiser and schedule step, then the EMA update (warm-up decay)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    with torch.no_grad():
        decay = min(ema_decay, (1 + step) / (10 + step))
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)


def train(cfg: TrainConfig, out_dir: Path = CHECKPOINT_DIR) -> dict:
    """Train; returns the training record (also written to out_dir/unet_<config>.json)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_latents()
    lat = load_latents(TRAIN_CLIPS + VAL_CLIPS)
    mean, std = latent_stats({c: lat[c] for c in TRAIN_CLIPS})
    norm = {c: (z - mean[None, :, None, None]) / std[None, :, None, None] for c, z in lat.items()}
    abar = torch.from_numpy(alphas_cumprod()).float()
    val = validation_set(norm, cfg, abar)
    train_clips = [norm[c] for c in TRAIN_CLIPS]

    model = build_unet(cfg.config, warp_residual=cfg.warp_residual).train()
    ema = build_unet(cfg.config, warp_residual=cfg.warp_residual).eval()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps)))
    rng = np.random.default_rng(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    history, start = [], time.time()
    bar = tqdm(range(1, cfg.steps + 1), desc=f"unet[{cfg.config}]", mininterval=5)
    run = None
    for step in bar:
        x0 = torch.from_numpy(sample_windows(rng, train_clips, cfg.batch, cfg.windows))
        sample, t, cond, eps = diffusion_batch(x0, g, cfg, abar)
        per_item = torch.mean((model(sample, t, cond) - eps) ** 2, dim=(1, 2, 3, 4))
        loss = torch.mean(per_item * snr_weight(abar[t.long()], cfg.min_snr))
        optimise_step(model, ema, opt, sched, loss, step, cfg.ema)
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        bar.set_postfix(loss=f"{run:.4f}")
        out_of_time = cfg.max_minutes > 0 and (time.time() - start) / 60 > cfg.max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            v = validate(ema, val, abar, cfg.min_snr)
            history.append({"step": step, "train_loss": run, "val_loss": v,
                            "minutes": (time.time() - start) / 60})
            tqdm.write(json.dumps(history[-1]))
            (CACHE_DIR / "checkpoints").mkdir(parents=True, exist_ok=True)  # large, git-ignored
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "step": step},
                       CACHE_DIR / "checkpoints" / f"unet_{cfg.config}_last.pt")
        if out_of_time:
            break
    record = {"config": cfg.config, "params": count_params(model), "steps": history[-1]["step"],
              "train_minutes": round((time.time() - start) / 60, 1), "val_loss": history[-1]["val_loss"],
              "val_clips": list(VAL_CLIPS), "train_clips": list(TRAIN_CLIPS), "history": history,
              "train_config": asdict(cfg), "latent_mean": mean.tolist(), "latent_std": std.tolist(),
              "schedule": SCHEDULE, "torch": str(torch.__version__), "warp_residual": cfg.warp_residual}
    final = {k: v.half() for k, v in ema.state_dict().items()}
    torch.save({"ema_fp16": final, "record": record}, out_dir / f"unet_{cfg.config}.pt")
    (out_dir / f"unet_{cfg.config}.json").write_text(json.dumps(record, indent=1))
    return record


def load_trained(path: Path) -> tuple[torch.nn.Module, dict]:
    """(UNet with the final EMA weights in float32, training record) from a final checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_unet(ckpt["record"]["config"], warp_residual=ckpt["record"].get("warp_residual", False))
    model.load_state_dict({k: v.float() for k, v in ckpt["ema_fp16"].items()}, strict=True)
    return model.eval(), ckpt["record"]
