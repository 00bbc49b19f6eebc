"""Speed of the NumPy trajectory guidance and per-stage timings of a diffusion-decoded group.

1. Guidance (``tgvc_rt.diffusion.guidance``) at the paper's working point: K tracks x F frames on a
   C x h x w latent (default 500 x 16 on 32 x 40 x 64, i.e. 512x320 video). Reports the one-off
   plan and reference patches (once per window), the per-sampler-step gradient (what the decoder
   loop pays), the step with its loss (what ``make_guidance(record=...)`` pays), the step with the
   reference patches re-gathered from ``ref`` and the one-shot ``guidance_loss_and_grad``.
2. ``diffuse_group`` on a 16-frame CIF (352x288) group with a model set (default: the tiny random
   test set from tests/onnx_fixtures.py; pass ``--model-set`` for a real one): seconds per stage.

Warm-up, repetitions, mean/stdev/min/median, and the configuration go into the JSON (the harness
schema: a record for the guidance, one for the decoder group).

    nice python benchmarks/guidance_speed.py --out benchmarks/results/guidance_speed.json
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, save, script_result, stage_stats  # noqa: E402
from tgvc_rt.benchrecord import time_calls  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def stats(samples: list[float]) -> dict:
    """Statistics of timings in seconds (the harness schema's stage statistics)."""
    return stage_stats(samples)


def bench(fn, reps: int, warmup: int = 2) -> dict:
    return stats(time_calls(fn, reps, warmup))


def guidance_speed(K: int, F: int, C: int, h: int, w: int, reps: int, seed: int = 0) -> dict:
    from tgvc_rt.diffusion.guidance import guidance_loss_and_grad, guidance_step, plan_guidance, reference_taps

    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((F, C, h, w)).astype(np.float32)
    ref = rng.standard_normal((2, C, h, w)).astype(np.float32)
    start = np.stack([rng.uniform(0, w - 1, K), rng.uniform(0, h - 1, K)], -1)
    pos = (start[:, None] + np.cumsum(rng.normal(0, 0.3, (K, F, 2)), axis=1)).astype(np.float32)
    vis = (rng.uniform(size=(K, F)) > 0.05).astype(np.float32)
    plan = plan_guidance(pos, vis, x0.shape)
    taps = reference_taps(plan, ref)
    out = np.empty_like(x0)
    result = {"config": {"tracks": K, "frames": F, "channels": C, "latent_h": h, "latent_w": w,
                         "dtype": "float32", "visible_fraction": float(vis.mean())}, "stages": {}}
    for name, fn in [
            ("plan", lambda: plan_guidance(pos, vis, x0.shape)),
            ("reference_taps", lambda: reference_taps(plan, ref)),
            ("step_gradient", lambda: guidance_step(plan, x0, None, with_loss=False, ref_taps=taps, out=out)),
            ("step_loss_and_gradient", lambda: guidance_step(plan, x0, None, with_loss=True, ref_taps=taps, out=out)),
            ("step_loss_and_gradient_ref_each_step", lambda: guidance_step(plan, x0, ref)),
            ("one_shot_loss_and_grad", lambda: guidance_loss_and_grad(x0, ref, pos, vis))]:
        load = os.getloadavg()[0]
        result["stages"][name] = bench(fn, reps)
        result["stages"][name]["loadavg_1min"] = [load, os.getloadavg()[0]]  # before, after
    return result


def decoder_stages(model_set: str | None, F: int, H: int, W: int, K: int, steps: int, reps: int,
                   threads: int | None) -> dict:
    from tgvc_rt.decoder.diffusion import DiffusionOptions, diffuse_group
    from tgvc_rt.models import load_model_set
    from tgvc_rt.types import Tracks

    tmp = None
    if model_set is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from onnx_fixtures import build_tiny_model_set

        tmp = tempfile.TemporaryDirectory()
        model_set = str(build_tiny_model_set(Path(tmp.name) / "tiny"))
    models = load_model_set(model_set, threads=threads)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    start = np.stack([rng.uniform(0, W, K), rng.uniform(0, H, K)], -1)
    xy = start[:, None] + np.cumsum(rng.normal(0, 2.0, (K, F, 2)), axis=1)
    tracks = Tracks(xy, np.ones((K, F), bool))
    opts = DiffusionOptions(steps=steps, threads=threads)
    diffuse_group(frames, frames[0], frames[-1], tracks, models, opts, seed=0)  # warm-up
    runs = []
    for _ in range(reps):
        t = {}
        diffuse_group(frames, frames[0], frames[-1], tracks, models, opts, seed=0, timings=t)
        runs.append(t)
    keys = [k for k in runs[0] if not k.endswith("_calls")]
    out = {"config": {"model_set": models.name, "frames": F, "width": W, "height": H, "tracks": K,
                      "steps": steps, "strength": opts.strength, "guidance_scale": opts.guidance_scale,
                      "device": models.device, "threads": threads},
           "calls": {k: v for k, v in runs[0].items() if k.endswith("_calls")},
           "stages": {k: stats([r[k] for r in runs]) for k in keys}}
    if tmp is not None:
        tmp.cleanup()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=500)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--latent", default="32x40x64", help="C x h x w")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--model-set", default=None, help="model set name/path (default: tiny random test set)")
    ap.add_argument("--decoder-reps", type=int, default=3)
    ap.add_argument("--decoder-tracks", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-decoder", action="store_true", help="guidance timings only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "guidance_speed.json"))
    args = ap.parse_args(argv)
    C, h, w = (int(v) for v in args.latent.split("x"))
    result = script_result("guidance_speed", vars(args))
    guidance = guidance_speed(args.tracks, args.frames, C, h, w, args.reps)
    result["records"].append(record({"part": "guidance", **guidance["config"]}, guidance["stages"]))
    if not args.no_decoder:
        group = decoder_stages(args.model_set, 16, 288, 352, args.decoder_tracks, 6, args.decoder_reps, args.threads)
        result["records"].append(record({"part": "decoder_cif_group", **group["config"]}, group["stages"],
                                        counts=group["calls"]))
    result["loadavg_after"] = list(os.getloadavg())
    save(args.out, result)
    g = guidance["stages"]

    def ms(stage: dict, key: str = "median_s") -> str:
        return f"{stage[key] * 1e3:.1f}"

    print(f"guidance {args.tracks}x{args.frames} on {args.latent}: step {ms(g['step_gradient'])} ms "
          f"(min {ms(g['step_gradient'], 'min_s')}), with loss {ms(g['step_loss_and_gradient'])} ms "
          f"(min {ms(g['step_loss_and_gradient'], 'min_s')}), plan {ms(g['plan'])} ms, one-shot "
          f"{ms(g['one_shot_loss_and_grad'])} ms; loadavg {result['machine']['loadavg'][0]:.1f}")
    for k, v in (group["stages"] if not args.no_decoder else {}).items():
        print(f"  {k:14s} {ms(v):>8s} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
