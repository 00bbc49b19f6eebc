"""Synthetic-motion clips from freely licensed stills, for training data beyond the six shared clips.

A clip is a moving camera over one still plus one or two independently moving foreground layers cut
from other stills, with the motions real footage has:

* **camera**: a smooth homography path (pan, zoom, rotation, a little perspective), each parameter a
  random low-order polynomial in time;
* **layers**: an elliptic or polygonal cut-out with soft edges that moves on its own path (entering,
  crossing, leaving: occlusion and disocclusion), scaled and rotated over time;
* **elastic**: a small smooth displacement field that drifts (non-rigid motion);
* **photometric**: a slow global gain/offset drift and mild sensor noise.

Every frame is rendered straight from the stills (no frame-to-frame resampling, so no accumulated
blur). The clips go through the real codec (``interp_data.make_interp_data``) like the shared ones.

Stills: Debian's ``plasma-workspace-wallpapers`` and ``mate-backgrounds`` (GPL-2+; see
``keyframe_restore_data.STILLS``), unpacked under ``export/cache/stills_raw``::

    apt-get download plasma-workspace-wallpapers mate-backgrounds
    for d in *.deb; do dpkg -x "$d" export/cache/stills_raw; done

The set is generated, never committed; the list of stills and their licences is written beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .keyframe_restore_data import load_stills

SIZES = ((352, 288), (416, 240), (320, 240), (480, 272))


@dataclass
class SynthConfig:
    frames: int = 48
    fps: int = 25
    max_pan: float = 4.0      # camera pan speed, px per frame (at output scale)
    max_zoom: float = 0.006   # relative zoom per frame
    max_rot: float = 0.003    # rad per frame
    layers: tuple[int, int] = (0, 2)   # min, max foreground layers
    noise: float = 1.5        # sensor noise sigma (0-255)


def _path(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """A smooth 1-D path over n frames: random speed plus a random quadratic term, value 0 at the middle."""
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    v = rng.uniform(-rate, rate)
    acc = rng.uniform(-rate, rate) / max(n, 1)
    return v * t + acc * t ** 2 / 2


def _camera(rng, n: int, size: tuple[int, int], src_shape, cfg: SynthConfig) -> list[np.ndarray]:
    """Per-frame 3x3 homographies mapping output pixels to still pixels."""
    w, h = size
    sh, sw = src_shape[:2]
    base = rng.uniform(max(w / sw, h / sh) * 1.3, max(max(w / sw, h / sh) * 1.3, 0.9))  # output px -> still px scale
    base = 1.0 / base
    cx, cy = sw / 2 + rng.uniform(-0.15, 0.15) * sw, sh / 2 + rng.uniform(-0.15, 0.15) * sh
    px, py = _path(rng, n, cfg.max_pan), _path(rng, n, cfg.max_pan)
    zoom = np.exp(_path(rng, n, cfg.max_zoom))
    rot = _path(rng, n, cfg.max_rot)
    persp = rng.uniform(-2e-5, 2e-5, 2)
    mats = []
    for f in range(n):
        s = base / zoom[f]
        c, si = np.cos(rot[f]) * s, np.sin(rot[f]) * s
        centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
        m = np.array([[c, -si, cx + px[f] * base], [si, c, cy + py[f] * base], [0, 0, 1]])
        p = np.eye(3)
        p[2, :2] = persp * f / max(n - 1, 1)
        mats.append(m @ p @ centre)
    return mats


def _mask(rng, size: int) -> np.ndarray:
    """A soft-edged ellipse or polygon, float32 [size, size] in 0..1."""
    m = np.zeros((size, size), np.float32)
    c = size / 2
    if rng.random() < 0.5:
        axes = (int(c * rng.uniform(0.5, 0.95)), int(c * rng.uniform(0.5, 0.95)))
        cv2.ellipse(m, (int(c), int(c)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    else:
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = c * rng.uniform(0.5, 0.95, k)
        pts = np.stack([c + r * np.cos(ang), c + r * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1.0)
    return cv2.GaussianBlur(m, (0, 0), 1.2)


def _layer(rng, stills, n: int, size: tuple[int, int]):
    """(texture, alpha, per-frame 2x3 affine placing the layer in output pixels)."""
    w, h = size
    _, img = stills[int(rng.integers(len(stills)))]
    side = int(min(w, h) * rng.uniform(0.25, 0.6))
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.3, 1.0)
    crop = max(8, int(side / scale))
    crop = min(crop, ih, iw)
    y, x = int(rng.integers(0, ih - crop + 1)), int(rng.integers(0, iw - crop + 1))
    tex = cv2.resize(img[y:y + crop, x:x + crop], (side, side), interpolation=cv2.INTER_AREA)
    alpha = _mask(rng, side)
    start = np.array([rng.uniform(-0.2, 1.2) * w, rng.uniform(0, 1) * h])
    speed = rng.uniform(1.0, 6.0)
    ang = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(ang), np.sin(ang)])
    rot = _path(rng, n, 0.02)
    zoom = np.exp(_path(rng, n, 0.01))
    mats = []
    for f in range(n):
        pos = start + vel * (f - (n - 1) / 2)
        m = cv2.getRotationMatrix2D((side / 2, side / 2), np.degrees(rot[f]), zoom[f])
        m[:, 2] += pos - side / 2
        mats.append(m)
    return tex.astype(np.float32), alpha, mats


def _elastic(rng, size: tuple[int, int], n: int, amp: float):
    """Per-frame smooth displacement maps (dx, dy) float32 [h, w] drifting linearly between two fields."""
    w, h = size
    fields = []
    for _ in range(2):
        d = rng.standard_normal((2, max(2, h // 48), max(2, w // 48))).astype(np.float32) * amp
        fields.append([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in d])
    return lambda f: [(1 - f / max(n - 1, 1)) * a + f / max(n - 1, 1) * b for a, b in zip(*fields)]


def make_clip(rng: np.random.Generator, stills, cfg: SynthConfig = SynthConfig()) -> np.ndarray:
    """One synthetic clip, RGB uint8 [frames, H, W, 3]."""
    n = cfg.frames
    size = SIZES[int(rng.integers(len(SIZES)))]
    w, h = size
    _, bg = stills[int(rng.integers(len(stills)))]
    cam = _camera(rng, n, size, bg.shape, cfg)
    layers = [_layer(rng, stills, n, size) for _ in range(int(rng.integers(cfg.layers[0], cfg.layers[1] + 1)))]
    elastic = _elastic(rng, size, n, rng.uniform(0, 1.5)) if rng.random() < 0.5 else None
    gain = np.exp(_path(rng, n, 0.004))
    offset = _path(rng, n, 0.15)
    noise_rng = np.random.default_rng(int(rng.integers(2 ** 31)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for f in range(n):
        mx, my = xs, ys
        if elastic is not None:
            dx, dy = elastic(f)
            mx, my = xs + dx, ys + dy
        hmat = cam[f]
        den = hmat[2, 0] * mx + hmat[2, 1] * my + hmat[2, 2]
        sx = (hmat[0, 0] * mx + hmat[0, 1] * my + hmat[0, 2]) / den
        sy = (hmat[1, 0] * mx + hmat[1, 1] * my + hmat[1, 2]) / den
        frame = cv2.remap(bg, sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        for tex, alpha, mats in layers:
            t = cv2.warpAffine(tex, mats[f], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
            a = cv2.warpAffine(alpha, mats[f], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            frame = frame * (1 - a[..., None]) + t * a[..., None]
        frame = frame * gain[f] + offset[f] * 255 / 10
        if cfg.noise > 0:
            frame += noise_rng.normal(0, cfg.noise, frame.shape).astype(np.float32)
        out[f] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def synthetic_clips(stills_dir: Path, count: int, seed: int = 0, cfg: SynthConfig = SynthConfig()):
    """Yield (name, render) of ``count`` seeded clips: ``render()`` makes the frames (each clip has its own
    generator, so skipping one changes no other)."""
    stills = load_stills(stills_dir)
    if not stills:
        raise SystemExit(f"no stills under {stills_dir}: see the module doc")
    for i in range(count):
        yield f"synth{seed}_{i:03d}", lambda i=i: make_clip(np.random.default_rng([seed, i]), stills, cfg)
