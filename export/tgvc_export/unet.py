"""Latent video interpolation UNet: ``eps = unet(sample, timestep, cond)``.

Shapes (docs/models.md): ``sample`` [B, F, 32, h, w] noisy normalised latent, ``timestep`` [B]
float in 0..T-1, ``cond`` [B, F, 65, h, w] (keyframe latents at frames 0 and F-1, keyframe mask,
warp latents) -> ``eps`` [B, F, 32, h, w].

Layout (read top to bottom like taesd.py): per frame, ``conv_in`` on ``[sample, cond]``; a spatial
UNet whose levels hold ResBlocks (timestep + frame-position embedding), each followed by a temporal
conv1d over F; spatial and temporal self-attention at the levels named in ``attn_levels``; stride-2
conv downsampling and nearest upsampling. Any F >= 1 and any h, w work: the input is padded
(replicate) to a multiple of the downsampling factor and the output is cropped back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .schedule import alphas_cumprod


@dataclass(frozen=True)
class UNetConfig:
    latent_channels: int = 32  # channels of the (normalised) latent
    cond_channels: int = 65  # 2x32 keyframe/warp latents + 1 mask channel (docs/models.md)
    channels: tuple[int, ...] = (48, 96, 128)  # width per resolution level
    blocks_per_level: int = 1  # ResBlocks per level on the down path (up path has the same)
    attn_levels: tuple[int, ...] = (2,)  # levels with spatial + temporal self-attention
    head_dim: int = 32  # attention head width
    temb_dim: int = 128  # timestep / frame-position embedding width
    groups: int = 8  # GroupNorm groups
    mid_attn: bool = True  # attention in the middle block
    # True: the network predicts a residual r in x0 space, x0 = warp latents (cond 33..64) + r, and
    # eps = (sample - sqrt(abar_t) x0) / sqrt(1 - abar_t); at initialisation x0 = warp exactly.
    warp_residual: bool = False


CONFIGS: dict[str, UNetConfig] = {
    # ~2.7 M params (0.12-0.30 s per [1,16,32,36,44] call, ORT, 2 threads): fast enough for a 2-core CPU decode (see export/README.md for timings).
    "default": UNetConfig(warp_residual=True),
    # ~380 M params, for GPUs only; exported with ONNX external data, never trained here.
    "large": UNetConfig(channels=(320, 640, 1280), blocks_per_level=2, attn_levels=(1, 2),
                        head_dim=64, temb_dim=1280, groups=32),
}


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[N] float -> [N, dim] sin/cos embedding (as in DDPM/Stable Diffusion)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None, :].to(x.device)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def zero_(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, temb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(temb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = zero_(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class TemporalConv(nn.Module):
    """Residual conv1d (kernel 3) over frames, per latent pixel: [B*F, C, h, w] -> same."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.conv = zero_(nn.Conv1d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        y = F.silu(self.norm(x)).reshape(n // frames, frames, c, h * w)
        y = y.permute(0, 3, 2, 1).reshape(-1, c, frames)
        y = self.conv(y).reshape(n // frames, h * w, c, frames).permute(0, 3, 2, 1)
        return x + y.reshape(n, c, h, w)


class Attention(nn.Module):
    """Pre-LayerNorm multi-head self-attention over tokens [N, L, C], residual."""

    def __init__(self, c: int, head_dim: int):
        super().__init__()
        self.heads = max(1, c // head_dim)
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = zero_(nn.Linear(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, length, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(y.transpose(1, 2).reshape(n, length, c))


class SpaceTimeAttention(nn.Module):
    """Spatial attention within each frame, then temporal attention over F at each pixel."""

    def __init__(self, c: int, head_dim: int):
        super().__init__()
        self.spatial = Attention(c, head_dim)
        self.temporal = Attention(c, head_dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        t = self.spatial(x.reshape(n, c, h * w).transpose(1, 2))  # [B*F, hw, C]
        t = t.reshape(n // frames, frames, h * w, c).transpose(1, 2).reshape(-1, frames, c)
        t = self.temporal(t).reshape(n // frames, h * w, frames, c).permute(0, 2, 3, 1)
        return t.reshape(n, c, h, w)


class Stage(nn.Module):
    """ResBlock + TemporalConv (+ SpaceTimeAttention)."""

    def __init__(self, c_in: int, c_out: int, cfg: UNetConfig, attn: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, cfg.temb_dim, cfg.groups)
        self.tconv = TemporalConv(c_out, cfg.groups)
        self.attn = SpaceTimeAttention(c_out, cfg.head_dim) if attn else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        x = self.tconv(self.res(x, emb), frames)
        return self.attn(x, frames) if self.attn is not None else x


class VideoUNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.factor = 2 ** (len(ch) - 1)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.temb_dim, cfg.temb_dim), nn.SiLU(),
                                      nn.Linear(cfg.temb_dim, cfg.temb_dim))
        self.frame_mlp = nn.Sequential(nn.Linear(cfg.temb_dim, cfg.temb_dim), nn.SiLU(),
                                       nn.Linear(cfg.temb_dim, cfg.temb_dim))
        self.conv_in = nn.Conv2d(cfg.latent_channels + cfg.cond_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = []
        c = ch[0]
        for lvl, c_out in enumerate(ch):
            for _ in range(cfg.blocks_per_level):
                self.down.append(Stage(c, c_out, cfg, lvl in cfg.attn_levels))
                c = c_out
                skips.append(c)
            if lvl < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, ch[lvl + 1], 3, stride=2, padding=1))
                c = ch[lvl + 1]
        self.mid = Stage(c, c, cfg, cfg.mid_attn)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            for _ in range(cfg.blocks_per_level):
                self.up.append(Stage(c + skips.pop(), ch[lvl], cfg, lvl in cfg.attn_levels))
                c = ch[lvl]
            if lvl > 0:
                self.upsample.append(nn.Conv2d(c, ch[lvl - 1], 3, padding=1))
                c = ch[lvl - 1]
        self.norm_out = nn.GroupNorm(cfg.groups, c)
        self.conv_out = zero_(nn.Conv2d(c, cfg.latent_channels, 3, padding=1))
        if cfg.warp_residual:
            abar = torch.from_numpy(alphas_cumprod()).float()
            self.register_buffer("sqrt_abar", abar.sqrt(), persistent=False)
            self.register_buffer("sqrt_1m_abar", (1 - abar).sqrt(), persistent=False)

    def embedding(self, timestep: torch.Tensor, frames: int) -> torch.Tensor:
        """[B] timesteps -> [B*F, temb]: timestep embedding + frame position f/(F-1) embedding."""
        d = self.cfg.temb_dim
        dtype = self.time_mlp[0].weight.dtype  # float16 inside FP16 exports
        t = self.time_mlp(sinusoidal(timestep, d).to(dtype))  # [B, d]
        pos = torch.arange(frames, dtype=torch.float32, device=timestep.device)
        pos = pos * (1000.0 / max(frames - 1, 1))
        p = self.frame_mlp(sinusoidal(pos, d).to(dtype))  # [F, d]
        return (t[:, None, :] + p[None, :, :]).reshape(-1, d)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, frames, c, h, w = sample.shape
        x = torch.cat([sample, cond], dim=2).reshape(b * frames, -1, h, w)
        ph, pw = (-h) % self.factor, (-w) % self.factor
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        emb = F.silu(self.embedding(timestep, frames))
        x = self.conv_in(x)
        skips = []
        stages = iter(self.down)
        for lvl in range(len(self.cfg.channels)):
            for _ in range(self.cfg.blocks_per_level):
                x = next(stages)(x, emb, frames)
                skips.append(x)
            if lvl < len(self.downsample):
                x = self.downsample[lvl](x)
        x = self.mid(x, emb, frames)
        stages = iter(self.up)
        for i in range(len(self.cfg.channels)):
            for _ in range(self.cfg.blocks_per_level):
                x = next(stages)(torch.cat([x, skips.pop()], dim=1), emb, frames)
            if i < len(self.upsample):
                x = self.upsample[i](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        x = self.conv_out(F.silu(self.norm_out(x)))
        out = x[:, :, :h, :w].reshape(b, frames, c, h, w)
        if not self.cfg.warp_residual:
            return out
        idx = timestep.round().long().clamp(0, self.sqrt_abar.shape[0] - 1)
        sa = self.sqrt_abar[idx].view(b, 1, 1, 1, 1).to(out.dtype)
        s1 = self.sqrt_1m_abar[idx].view(b, 1, 1, 1, 1).to(out.dtype)
        x0 = cond[:, :, c + 1:] + out
        return (sample - sa * x0) / s1


def build_unet(config: str = "default", **overrides) -> VideoUNet:
    """The latent video interpolation UNet of the named config ('default' or 'large')."""
    if config not in CONFIGS:
        raise ValueError(f"unknown UNet config {config!r}; choose from {sorted(CONFIGS)}")
    return VideoUNet(replace(CONFIGS[config], **overrides))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
