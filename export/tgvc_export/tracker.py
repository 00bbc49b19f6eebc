"""Point tracker: pyramidal iterative Lucas-Kanade in torch, frame to frame, exportable to ONNX.

``PointTracker()(frames [1, T, 1, H, W] grey in [0, 1], queries [1, K, 2] pixel (x, y) at frame 0)
-> (tracks [1, T, K, 2], visibility [1, T, K])``. Pixel centres are at integer coordinates.

Per frame pair (t-1 -> t), coarse to fine over ``levels`` pyramid levels (2x average pooling),
``iterations`` fixed Gauss-Newton steps per level on a ``window`` x ``window`` patch sampled with
``grid_sample`` (bilinear, border padding), gradients of the previous frame by Scharr filters, as
OpenCV's ``calcOpticalFlowPyrLK``. ``TrackStep`` (one frame pair) is exported by torch and wrapped
in an ONNX ``Loop`` over frames by ``tracker_onnx.py``, so T, K, H and W are all dynamic.

Visibility is cumulative: a point stays visible while it is inside the frame, its patch is textured
(minimum eigenvalue of the structure tensor) and the mean absolute patch error stays small;
once lost it stays lost (its position is still propagated).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class TrackerConfig:
    levels: int = 4  # pyramid levels (level 0 = full resolution)
    window: int = 11  # patch side in pixels (odd)
    iterations: int = 8  # Gauss-Newton iterations per level
    max_error: float = 0.08  # mean |patch error| (grey in [0, 1]) above which a point is lost
    min_eig: float = 1e-5  # min eigenvalue of the window-averaged structure tensor (texture test)
    border: float = 0.0  # points closer than this to the frame edge (pixels) are lost


_SCHARR = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32.0


def _pyramid(img: torch.Tensor, levels: int) -> list[torch.Tensor]:
    pyr = [img]
    for _ in range(levels - 1):
        pyr.append(F.avg_pool2d(pyr[-1], 2, 2))
    return pyr


def _sample(img: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of img [1, C, H, W] at pixel positions xy [K, N, 2] -> [C, K, N]."""
    h, w = img.shape[-2], img.shape[-1]
    grid = torch.stack([xy[..., 0] * (2.0 / (w - 1)), xy[..., 1] * (2.0 / (h - 1))], dim=-1) - 1.0
    return F.grid_sample(img, grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0]


def lk_step(prev: torch.Tensor, nxt: torch.Tensor, pts: torch.Tensor,
            cfg: TrackerConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Track pts [K, 2] from prev to nxt ([1, 1, H, W]). Returns (new pts, error [K], min_eig [K])."""
    r = cfg.window // 2
    off = torch.arange(-r, r + 1, dtype=torch.float32)
    oy, ox = torch.meshgrid(off, off, indexing="ij")
    offsets = torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=1)[None]  # [1, N, 2]
    kx = _SCHARR.view(1, 1, 3, 3)
    ky = _SCHARR.t().contiguous().view(1, 1, 3, 3)
    pyr_i, pyr_j = _pyramid(prev, cfg.levels), _pyramid(nxt, cfg.levels)
    guess = torch.zeros_like(pts)
    err = torch.zeros_like(pts[:, 0])
    eig = torch.zeros_like(pts[:, 0])
    for lvl in reversed(range(cfg.levels)):
        s = 2.0 ** lvl
        img_i, img_j = pyr_i[lvl], pyr_j[lvl]
        padded = F.pad(img_i, (1, 1, 1, 1), mode="replicate")
        grads = torch.cat([F.conv2d(padded, kx), F.conv2d(padded, ky)], dim=1)  # [1, 2, h, w]
        p = (pts + 0.5) / s - 0.5  # this level's coordinates
        at = p[:, None, :] + offsets  # [K, N, 2]
        tmpl = _sample(img_i, at)[0]  # [K, N]
        g = _sample(grads, at)  # [2, K, N]
        gxx, gxy, gyy = (g[0] * g[0]).sum(1), (g[0] * g[1]).sum(1), (g[1] * g[1]).sum(1)
        det = gxx * gyy - gxy * gxy
        inv = torch.where(det.abs() > 1e-9, 1.0 / det, torch.zeros_like(det))
        d = torch.zeros_like(p)
        for _ in range(cfg.iterations):
            diff = _sample(img_j, at + (guess + d)[:, None, :])[0] - tmpl  # [K, N]
            bx, by = (diff * g[0]).sum(1), (diff * g[1]).sum(1)
            step = torch.stack([gxy * by - gyy * bx, gxy * bx - gxx * by], dim=1) * inv[:, None]
            d = d + step
        if lvl == 0:
            diff = _sample(img_j, at + (guess + d)[:, None, :])[0] - tmpl
            err = diff.abs().mean(1)
            n = float(cfg.window * cfg.window)
            tr, dt = (gxx + gyy) / n, det / (n * n)
            eig = tr / 2 - torch.sqrt((tr * tr / 4 - dt).clamp(min=0))
            guess = guess + d
        else:
            guess = 2.0 * (guess + d)
    return pts + guess, err, eig


def visibility_step(new: torch.Tensor, err: torch.Tensor, eig: torch.Tensor, vis: torch.Tensor,
                    height, width, cfg: TrackerConfig) -> torch.Tensor:
    """Cumulative visibility [K] after one step (see module doc)."""
    inside = (new[:, 0] >= cfg.border) & (new[:, 0] <= width - 1 - cfg.border) & \
             (new[:, 1] >= cfg.border) & (new[:, 1] <= height - 1 - cfg.border)
    ok = inside & (err <= cfg.max_error) & (eig >= cfg.min_eig)
    return vis * ok.float()


class TrackStep(nn.Module):
    """One frame pair: (prev [1,1,H,W], nxt [1,1,H,W], pts [K,2], vis [K]) -> (pts, vis).

    This is the body of the ONNX ``Loop`` that ``export_tracker`` wraps around it.
    """

    def __init__(self, cfg: TrackerConfig = TrackerConfig()):
        super().__init__()
        self.cfg = cfg

    def forward(self, prev, nxt, pts, vis):
        new, err, eig = lk_step(prev, nxt, pts, self.cfg)
        return new, visibility_step(new, err, eig, vis, prev.shape[-2], prev.shape[-1], self.cfg)


class PointTracker(nn.Module):
    """The torch reference of the exported tracker (a Python loop over frames)."""

    def __init__(self, cfg: TrackerConfig = TrackerConfig()):
        super().__init__()
        self.cfg = cfg
        self.step = TrackStep(cfg)

    def forward(self, frames: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pts = queries[0]
        vis = torch.ones_like(pts[:, 0])
        tracks, visibility = [pts], [vis]
        for t in range(1, frames.shape[1]):
            pts, vis = self.step(frames[:, t - 1], frames[:, t], pts, vis)
            tracks.append(pts)
            visibility.append(vis)
        return torch.stack(tracks)[None], torch.stack(visibility)[None]


def build_tracker(cfg: TrackerConfig = TrackerConfig()) -> PointTracker:
    return PointTracker(cfg).eval()
