"""Does trajectory guidance make the decoded motion follow the transmitted tracks?

A synthetic clip with known motion (a textured square moving over a textured background) gives
exact tracks (points on the object and on the background, the latter invisible while covered).
Frames 0 and F-1 are the keyframes; the starting guess is their cross-fade (no motion at all), so
any correct motion in the output comes from the guidance. The output is re-tracked with OpenCV's
pyramidal Lucas-Kanade, chained frame to frame from the nearer keyframe (the guidance's own reference rule) and compared
with the transmitted tracks: mean end-point error (EPE, pixels) over visible points of the
in-between frames, guidance on vs off.

Two modes:

* default (``latent``): the tiny random test set's linear VAE (tests/onnx_fixtures.py) and a
  noise-oracle denoiser (it returns the exact noise of the warm start, so without guidance DDIM
  returns the cross-fade and with guidance only the guidance moves the latent). This checks the
  guidance, its coordinates and the sampler update in latent space, independent of a trained UNet.
* ``--model-set PATH``: the real pipeline, ``diffuse_group`` with that set's UNet and VAE.

    nice python benchmarks/guidance_fidelity.py --out benchmarks/results/guidance_fidelity.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def textured(rng, h, w, sigma):
    t = cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), sigma)
    t = (t - t.mean()) / (t.std() + 1e-6)
    return t


def synthetic_clip(F=16, H=256, W=384, size=112, start=(60, 60), velocity=(8.0, 3.0), seed=0):
    """uint8 clip [F, H, W, 3], tracks xy [K, F, 2] and vis [K, F] (exact, integer-pixel motion)."""
    rng = np.random.default_rng(seed)
    bg = np.clip(128 + 40 * textured(rng, H, W, 6.0), 0, 255)
    obj = np.clip(150 + 60 * textured(rng, size, size, 4.0) + np.array([40, -30, 10]), 0, 255)
    vx, vy = velocity
    frames, corners = [], []
    for f in range(F):
        x0, y0 = int(round(start[0] + vx * f)), int(round(start[1] + vy * f))
        img = bg.copy()
        img[y0:y0 + size, x0:x0 + size] = obj
        frames.append(img.astype(np.uint8))
        corners.append((x0, y0))
    corners = np.array(corners, float)
    # object points: a grid inside the square (margin 12 px), moving with it
    g = np.arange(12, size - 11, 11.0)
    oxy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    obj_xy = oxy[:, None, :] + corners[None, :, :]
    # background points: a coarse grid, static, invisible while the object covers them
    bx, by = np.meshgrid(np.arange(16, W - 15, 32.0), np.arange(16, H - 15, 32.0))
    bxy = np.stack([bx, by], -1).reshape(-1, 2)
    bg_xy = np.repeat(bxy[:, None, :], F, axis=1)
    inside = ((bg_xy[..., 0] >= corners[None, :, 0] - 2) & (bg_xy[..., 0] < corners[None, :, 0] + size + 2)
              & (bg_xy[..., 1] >= corners[None, :, 1] - 2) & (bg_xy[..., 1] < corners[None, :, 1] + size + 2))
    xy = np.concatenate([obj_xy, bg_xy]).astype(np.float32)
    vis = np.concatenate([np.ones(obj_xy.shape[:2], bool), ~inside])
    is_obj = np.r_[np.ones(len(obj_xy), bool), np.zeros(len(bg_xy), bool)]
    return np.stack(frames), xy, vis, is_obj


def retrack_epe(video, xy, vis, is_obj):
    """Chain LK frame to frame from the nearer keyframe (0 for f <= n/2, else n) and compare."""
    F = video.shape[0]
    n = F - 1
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    est = np.zeros_like(xy)
    for r, frames in ((0, range(1, n // 2 + 1)), (n, range(n - 1, n // 2, -1))):
        p = xy[:, r].reshape(-1, 1, 2).astype(np.float32)
        prev = r
        for f in frames:
            p, _, _ = cv2.calcOpticalFlowPyrLK(grey[prev], grey[f], p, p.copy(), **lk)
            est[:, f] = p.reshape(-1, 2)
            prev = f
    errs, errs_obj = [], []
    for f in range(1, n):
        r = 0 if f <= n // 2 else n
        ok = vis[:, f] & vis[:, r]
        e = np.linalg.norm(est[ok, f] - xy[ok, f], axis=1)
        errs.append(e)
        errs_obj.append(e[is_obj[ok]])
    all_e, obj_e = np.concatenate(errs), np.concatenate(errs_obj)
    return {"epe_px": float(all_e.mean()), "epe_object_px": float(obj_e.mean()),
            "median_px": float(np.median(all_e)), "points": int(all_e.size)}


def crossfade(a, b, F):
    w = np.linspace(0, 1, F)[:, None, None, None]
    return np.rint((1 - w) * a[None].astype(np.float32) + w * b[None].astype(np.float32)).astype(np.uint8)


def latent_mode(clip, xy, vis, scale, steps, strength, models, seed=0):
    """Guided DDIM with a noise-oracle denoiser on the cross-fade latent; returns decoded frames."""
    from tgvc_rt.diffusion.guidance import latent_positions, make_guidance
    from tgvc_rt.diffusion.samplers import sample_ddim
    from tgvc_rt.diffusion.schedules import start_timestep, timesteps_for
    from tgvc_rt.diffusion.warm_start import warm_start

    F = clip.shape[0]
    ae = models.autoencoder()
    zk = ae.encode(clip[[0, F - 1]])
    w = np.linspace(0, 1, F, dtype=np.float32)[:, None, None, None]
    clean = (1 - w) * zk[0] + w * zk[1]                      # latent cross-fade: no motion
    abar = models.alphas_cumprod()
    t0 = start_timestep(strength, len(abar))
    ts = timesteps_for(steps, t0)
    x = warm_start(clean, t0, abar, np.random.default_rng(seed))
    noise = ((x - np.sqrt(abar[t0]) * clean) / np.sqrt(1 - abar[t0])).astype(np.float32)
    guide = make_guidance(zk, latent_positions(xy), vis.astype(np.float32), clean.shape)
    z = sample_ddim(lambda x_, t: noise, x, ts, abar, guidance=guide, guidance_scale=scale)
    out = ae.decode(z)
    out[0], out[-1] = clip[0], clip[-1]
    return out


def model_mode(clip, xy, vis, scale, steps, strength, models, seed=0):
    from tgvc_rt.decoder.diffusion import DiffusionOptions, diffuse_group
    from tgvc_rt.types import Tracks

    F = clip.shape[0]
    warm = crossfade(clip[0], clip[-1], F)
    opts = DiffusionOptions(steps=steps, strength=strength, guidance_scale=scale)
    return diffuse_group(warm, clip[0], clip[-1], Tracks(xy, vis), models, opts, seed=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-set", default=None, help="real model set (default: latent-space check, tiny set)")
    ap.add_argument("--scales", default="0,30,1e4,1e5,3e5,1e6", help="guidance scales to compare (0 = off)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default 20 latent / 6 model)")
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "guidance_fidelity.json"))
    args = ap.parse_args(argv)
    from tgvc_rt.models import load_model_set

    tmp = None
    if args.model_set is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from onnx_fixtures import build_tiny_model_set

        tmp = tempfile.TemporaryDirectory()
        models = load_model_set(build_tiny_model_set(Path(tmp.name) / "tiny"))
        mode, run, steps = "latent", latent_mode, args.steps or 20
    else:
        models = load_model_set(args.model_set)
        mode, run, steps = "model", model_mode, args.steps or 6
    clip, xy, vis, is_obj = synthetic_clip()
    scales = [float(s) for s in args.scales.split(",")]
    rows = []
    for s in scales:
        t0 = time.perf_counter()
        video = run(clip, xy, vis, s, steps, args.strength, models)
        row = {"guidance_scale": s, **retrack_epe(video, xy, vis, is_obj), "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"scale {s:>9g}: EPE {row['epe_px']:.2f} px (object {row['epe_object_px']:.2f})")
    off = next(r for r in rows if r["guidance_scale"] == 0.0)
    best = min((r for r in rows if r["guidance_scale"] != 0.0), key=lambda r: r["epe_px"])
    reference = retrack_epe(clip, xy, vis, is_obj)
    result = {"command": " ".join(["python"] + sys.argv), "mode": mode, "model_set": models.name,
              "clip": {"frames": int(clip.shape[0]), "width": int(clip.shape[2]), "height": int(clip.shape[1]),
                       "tracks": int(xy.shape[0]), "object_tracks": int(is_obj.sum()),
                       "motion_px_per_frame": [8.0, 3.0]},
              "steps": steps, "strength": args.strength,
              "retrack_on_source_clip": reference,
              "runs": rows, "off_epe_px": off["epe_px"], "best": best,
              "ratio_best_to_off": best["epe_px"] / off["epe_px"],
              "pass_half_error": bool(best["epe_px"] <= 0.5 * off["epe_px"])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"source clip EPE {reference['epe_px']:.2f} px; best/off = {result['ratio_best_to_off']:.2f} "
          f"-> {'PASS' if result['pass_half_error'] else 'FAIL'}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
