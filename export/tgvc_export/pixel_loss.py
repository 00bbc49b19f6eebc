"""Pixel-space loss through the frozen TAEF2 decoder, for training the UNet's x0 prediction.

An MSE-optimal *latent* prediction shrinks towards the mean (measured on foreman: latent std 0.77
against 1.02 for the truth), and TAEF2 decodes shrunk latents into worse pictures than the warp
latents it started from, although their latent MSE is lower. Comparing the decoded pictures instead
ties the objective to what the viewer sees.

Per window a few in-between frames and one random latent sub-crop (``crop`` x ``crop`` latents =
8 ``crop`` pixels square) are decoded from the predicted and from the true x0; the loss is the mean
absolute difference on the 0-1 RGB scale (L1: sharper than MSE, and cheap). The decoder's weights
are frozen; gradients flow to x0 only. Both decodes see the same crop, so border effects cancel.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class PixelLoss(nn.Module):
    def __init__(self, decoder: nn.Module, latent_mean, latent_std, crop: int = 6, frames: int = 2):
        super().__init__()
        self.decoder = decoder.eval()
        for p in self.decoder.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.as_tensor(latent_mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(latent_std, dtype=torch.float32).view(1, -1, 1, 1))
        self.crop = int(crop)
        self.frames = int(frames)

    def pick(self, x0: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, slice, slice]:
        """Frame indices ``[B, frames]`` among the in-between frames, and one crop's (rows, cols)."""
        b, f, _, h, w = x0.shape
        idx = 1 + torch.stack([torch.randperm(f - 2, generator=g)[:self.frames] for _ in range(b)])
        ch, cw = min(self.crop, h), min(self.crop, w)
        y0 = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        x0_ = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        return torch.arange(b)[:, None].expand_as(idx), idx, slice(y0, y0 + ch), slice(x0_, x0_ + cw)

    def decode(self, zn: torch.Tensor) -> torch.Tensor:
        return self.decoder(zn * self.std + self.mean)

    def forward(self, pred: torch.Tensor, truth: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Mean |D(pred) - D(truth)| over the picked frames and crop; ``[B, F, C, h, w]`` normalised."""
        bi, fi, ys, xs = self.pick(pred, g)
        p = pred[bi, fi][..., ys, xs].flatten(0, 1)
        t = truth[bi, fi][..., ys, xs].flatten(0, 1)
        with torch.no_grad():
            target = self.decode(t)
        return torch.mean(torch.abs(self.decode(p) - target))
