"""Speed of the CPU guidance step: compiled float32 (``guidance_native``) vs the NumPy reference.

The decoder's working point by default: K tracks x F frames on a [F, C, h, w] float32 latent
(500 x 16 on [16, 32, 40, 64]). Per implementation: the per-window setup (``make_*guidance``: plan and
reference patches), the per-sampler-step gradient (what the decoder pays, ``guidance(x0, t)``) and
the step with its loss (``record=[]``). Median and min of ``--reps`` runs after 3 warm-up calls; the
1-minute load average from /proc/loadavg is stored before and after each measurement (the machine
is shared: run it under ``nice -n -5``).

    nice -n -5 python benchmarks/guidance_native_speed.py --impl native numpy \\
        --out benchmarks/results/guidance_native_speed.json
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, save, script_result, stage_stats  # noqa: E402


def loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:  # not Linux
        return list(os.getloadavg())


def bench(fn, reps: int, warmup: int = 3) -> dict:
    """Stage statistics (seconds, the harness schema) of ``reps`` timed calls after ``warmup`` untimed ones,
    with the load average before and after."""
    for _ in range(warmup):
        fn()
    before = loadavg()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {**stage_stats(times), "loadavg_before": before, "loadavg_after": loadavg()}


def window(K: int, F: int, C: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((F, C, h, w)).astype(np.float32)
    ref = rng.standard_normal((2, C, h, w)).astype(np.float32)
    start = np.stack([rng.uniform(0, w - 1, K), rng.uniform(0, h - 1, K)], -1)
    pos = (start[:, None] + np.cumsum(rng.normal(0, 0.3, (K, F, 2)), axis=1)).astype(np.float32)
    vis = (rng.uniform(size=(K, F)) > 0.05).astype(np.float32)
    return x0, ref, pos, vis


def measure(impl: str, K: int, F: int, C: int, h: int, w: int, reps: int) -> dict:
    from tgvc_rt.diffusion.guidance import make_guidance
    from tgvc_rt.diffusion.guidance_native import make_native_guidance

    if impl.startswith("native"):  # "native" (default threads) or "native:N"
        threads = int(impl.split(":")[1]) if ":" in impl else None
        factory = functools.partial(make_native_guidance, threads=threads)
    else:
        factory = make_guidance
    x0, ref, pos, vis = window(K, F, C, h, w)
    guide = factory(ref, pos, vis, x0.shape)
    record: list = []
    guide_loss = factory(ref, pos, vis, x0.shape, record=record)
    return {"setup": bench(lambda: factory(ref, pos, vis, x0.shape), max(5, reps // 5)),
            "step_gradient": bench(lambda: guide(x0, 1), reps),
            "step_loss_and_gradient": bench(lambda: guide_loss(x0, 1), reps)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impl", nargs="+", default=["native:1", "native", "numpy"],
                    help="native (default threads), native:N (N threads) or numpy")
    ap.add_argument("--tracks", type=int, default=500)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--latent-h", type=int, default=40)
    ap.add_argument("--latent-w", type=int, default=64)
    ap.add_argument("--reps", type=int, default=50, help="timed runs per measurement (>= 25)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    args = ap.parse_args(argv)
    from tgvc_rt.diffusion.guidance_native import default_threads, native_available, native_unavailable_reason

    result = script_result("guidance_native_speed", {
        "tracks": args.tracks, "frames": args.frames, "channels": args.channels, "latent_h": args.latent_h,
        "latent_w": args.latent_w, "dtype": "float32", "reps": max(25, args.reps), "nice": os.nice(0),
        "native_default_threads": default_threads(), "native_available": native_available()})
    for impl in args.impl:
        if impl.startswith("native") and not native_available():
            result["records"].append(record({"impl": impl}, skipped=native_unavailable_reason()))
            continue
        stages = measure(impl, args.tracks, args.frames, args.channels, args.latent_h, args.latent_w,
                         max(25, args.reps))
        result["records"].append(record({"impl": impl}, stages))
        for name, r in stages.items():
            print(f"{impl:7s} {name:24s} median {r['median_s'] * 1e3:8.3f} ms  min {r['min_s'] * 1e3:8.3f} ms  "
                  f"load {r['loadavg_before'][0]:.2f} -> {r['loadavg_after'][0]:.2f}")
    if args.out:
        save(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
