"""Training pairs for the keyframe restoration net: (source picture, its decoded keyframe, scale factor).

Pairs are made the way the encoder codes keyframes: short keyframe sequences (K = 2..7 pictures,
``gap`` = 3..15 frames apart) are coded with the encoder's own rate search
(``tgvc_rt.encoder.keyframe_rate.encode_keyframe_sequence``, default codec av1-seq, default options)
at the byte budget a whole stream of ``(K - 1) * gap + 1`` frames gets for its keyframes at a target
bpp drawn log-uniformly from 0.003..0.012 (``KEYFRAME_SHARE`` of the stream: what ``tgvc-rt info``
showed for real streams), then decoded with the real decoder (``decode_keyframe_sequence``: AV1
decode + bicubic upsampling).

Sources: frames of the four TRAINING clips (bikes_640x272, carphone_qcif, flower_416x240, foreman_cif;
the held-out mobile_cif and webcamtalk_416x240 are never read), and freely licensed Debian wallpapers
(plasma-workspace-wallpapers, mate-backgrounds nature/, GPL-2+ per their copyright files; see
``STILLS``), cut into panning crops at CIF-like sizes.

    python -m tgvc_export.keyframe_restore_data --out export/cache/kfr/pairs --count 400 --seed 0

Each sample is ``<out>/<seed>_<i>.npz`` (src, dec uint8 [K, H, W, 3], scale, bpp, gap, qp, name).
Wallpapers are read from ``<cache>/stills_raw`` (``apt-get download plasma-workspace-wallpapers
mate-backgrounds`` then ``dpkg -x`` each .deb there; see ``--stills``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from .paths import VIDEO_DIR

TRAIN_CLIPS = ("bikes_640x272", "carphone_qcif", "flower_416x240", "foreman_cif")
HELD_OUT = ("mobile_cif", "webcamtalk_416x240")
KEYFRAME_SHARE = 0.89  # keyframes' share of a stream's bytes (tgvc-rt info: 88.7% mobile_cif at 0.005)
SIZES = ((352, 288), (416, 240), (320, 240), (176, 144), (640, 272))
SIZE_WEIGHTS = (0.4, 0.25, 0.15, 0.1, 0.1)
# licence of each wallpaper source (from the packages' debian/copyright); anything else is skipped
STILLS = {
    "usr/share/wallpapers/*/contents/images/*": "GPL-2+ (plasma-workspace-wallpapers: Files: *, KDE VDG)",
    "usr/share/backgrounds/mate/nature/*": "GPL-2+ (mate-backgrounds: nature/*, per-file entries)",
}


def still_paths(root: Path) -> list[tuple[str, str]]:
    """One file per wallpaper (the largest), with its licence."""
    out = []
    for pattern, licence in STILLS.items():
        groups: dict[str, list[str]] = {}
        for p in glob.glob(str(root / pattern)):
            if p.lower().endswith((".jpg", ".jpeg", ".png")):
                key = p.split("/contents/")[0] if "/contents/" in p else p
                groups.setdefault(key, []).append(p)
        for key, files in sorted(groups.items()):
            out.append((max(files, key=os.path.getsize), licence))
    return out


def load_stills(root: Path, max_side: int = 1280) -> list[tuple[str, np.ndarray]]:
    stills = []
    for path, _licence in still_paths(root):
        im = cv2.imread(path, cv2.IMREAD_COLOR)
        if im is None:
            continue
        im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
        f = max_side / max(im.shape[:2])
        if f < 1:
            im = cv2.resize(im, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        stills.append((Path(path).relative_to(root).as_posix(), im))
    return stills


def load_clips() -> dict[str, np.ndarray]:
    from tgvc_rt.io.y4m import iter_y4m

    clips = {}
    for name in TRAIN_CLIPS:
        assert name not in HELD_OUT
        clips[name] = np.stack([f for _meta, f in iter_y4m(VIDEO_DIR / f"{name}.y4m")])
    return clips


def pan_crops(image: np.ndarray, size: tuple[int, int], k: int, gap: int, rng) -> list[np.ndarray]:
    """K crops of ``size`` of a randomly rescaled still, panning at a constant speed."""
    w, h = size
    ih, iw = image.shape[:2]
    zoom = rng.uniform(max(w / iw, h / ih) * 1.05, max(w / iw, h / ih) * 2.5)
    zoom = min(zoom, 1.0) if max(w / iw, h / ih) * 1.05 <= 1.0 else zoom
    im = cv2.resize(image, (max(w + 2, int(iw * zoom)), max(h + 2, int(ih * zoom))),
                    interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_CUBIC)
    ih, iw = im.shape[:2]
    speed = rng.uniform(0, 3.0) * gap  # pixels per keyframe
    ang = rng.uniform(0, 2 * np.pi)
    dx, dy = speed * np.cos(ang), speed * np.sin(ang)
    x0 = rng.uniform(0, iw - w)
    y0 = rng.uniform(0, ih - h)
    crops = []
    for i in range(k):
        x = int(np.clip(round(x0 + i * dx), 0, iw - w))
        y = int(np.clip(round(y0 + i * dy), 0, ih - h))
        crops.append(np.ascontiguousarray(im[y:y + h, x:x + w]))
    return crops


def make_sample(rng, stills, clips) -> tuple[list[np.ndarray], dict]:
    k = int(rng.integers(2, 8))
    gap = int(rng.integers(3, 16))
    if rng.random() < 0.5:
        name = list(clips)[int(rng.integers(len(clips)))]
        frames = clips[name]
        gap = min(gap, (len(frames) - 1) // (k - 1))
        start = int(rng.integers(0, len(frames) - (k - 1) * gap))
        images = [frames[start + i * gap] for i in range(k)]
        meta = dict(name=name, start=start)
    else:
        name, still = stills[int(rng.integers(len(stills)))]
        size = SIZES[int(rng.choice(len(SIZES), p=SIZE_WEIGHTS))]
        images = pan_crops(still, size, k, gap, rng)
        meta = dict(name=name, size=size)
    bpp = float(np.exp(rng.uniform(np.log(0.003), np.log(0.012))))
    h, w = images[0].shape[:2]
    frames = (k - 1) * gap + 1
    budget = int(KEYFRAME_SHARE * bpp * w * h * frames / 8)
    meta.update(k=k, gap=gap, bpp=bpp, budget=budget)
    return images, meta


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="export/cache/kfr/pairs")
    ap.add_argument("--stills", default="export/cache/kfr/stills_raw")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=1e9)
    args = ap.parse_args(argv)

    from tgvc_rt.codec.keyframe_sequence import decode_keyframe_sequence
    from tgvc_rt.encoder.keyframe_rate import encode_keyframe_sequence

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stills = load_stills(Path(args.stills))
    clips = load_clips()
    with open(out / f"manifest_{args.seed}.json", "w") as f:
        json.dump({"stills": [[p, lic] for p, lic in still_paths(Path(args.stills))],
                   "clips": list(TRAIN_CLIPS), "seed": args.seed}, f, indent=1)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    for i in range(args.count):
        if time.time() - t0 > args.max_seconds:
            break
        images, meta = make_sample(rng, stills, clips)
        path = out / f"{args.seed}_{i:05d}.npz"
        if path.exists():
            continue
        payloads, info = encode_keyframe_sequence(images, meta["budget"])
        h, w = images[0].shape[:2]
        decoded = decode_keyframe_sequence(payloads, w, h, info["codec"])
        np.savez(path, src=np.stack(images), dec=np.stack(decoded), scale=info["scale"],
                 qp=info["qp"], bytes=info["bytes"], meta=json.dumps(meta))
        print(f"{i} {meta['name']} {w}x{h} k={meta['k']} gap={meta['gap']} bpp={meta['bpp']:.4f} "
              f"scale={info['scale']} qp={info['qp']} psnr={info['mean_psnr_y']:.2f} "
              f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
