"""Encoder motion side on real clips: tracking speed, selection, trajectory bytes per group.

For each clip, consecutive keyframe groups of ``--group`` frames (sharing keyframes: 0..15,
15..30, ...) are tracked (tgvc_rt.encoder.tracking), selected (selection) and coded with every
trajectory predictor (trajectories). Writes benchmarks/results/track_coding.json.

    nice python benchmarks/track_coding.py --groups 3
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from tgvc_rt.codec.trajectories import (PREDICTORS, TrajectoryCodingOptions, bits_per_track_point, decode_tracks,
                                        encode_tracks, reconstruct_tracks)
from tgvc_rt.encoder.selection import SelectionOptions, limit_tracks, select_tracks
from tgvc_rt.encoder.tracking import TrackingOptions, track_group
from tgvc_rt.io import read_video

from paths import VIDEOS_DIR  # benchmarks/paths.py (this folder is on sys.path when run as a script)

CLIPS = ["foreman_cif", "bikes_640x272", "flower_416x240", "mobile_cif"]


def measure_group(frames: np.ndarray, max_tracks: int, steps: list[float],
                  tolerances: list[float]) -> dict:
    h, w = frames.shape[1:3]
    c0, t0 = time.process_time(), time.perf_counter()
    dense = track_group(frames, TrackingOptions())
    c1, t1 = time.process_time(), time.perf_counter()
    sel = select_tracks(dense, frames, SelectionOptions(max_tracks=0))  # uncapped, see "all"
    c2, t2 = time.process_time(), time.perf_counter()
    out = {
        "frames": int(frames.shape[0]), "dense_tracks": dense.num_tracks,
        "dense_visible_fraction": float(dense.vis.mean()) if dense.num_tracks else 0.0,
        "tracking_ms_per_frame": 1000 * (t1 - t0) / frames.shape[0],
        "tracking_cpu_ms_per_frame": 1000 * (c1 - c0) / frames.shape[0],
        "selection_ms": 1000 * (t2 - t1),
        "selection_cpu_ms": 1000 * (c2 - c1),
        "selected_tracks": sel.num_tracks,
        "instances": int(sel.instance.max()) + 1 if sel.num_tracks else 0,
        "visible_points": int(sel.vis.sum()),
        "coding": {},
    }
    sets = {"all": sel}
    if max_tracks:
        sets[f"max{max_tracks}"] = limit_tracks(sel, max_tracks)
    default = TrajectoryCodingOptions()
    configs = [(default.step, "auto", default.tolerance)]
    configs += [(0.5, pred, 0.0) for pred in PREDICTORS]
    configs += [(step, "instance", tol) for step in steps for tol in tolerances if (step, tol) != (0.5, 0.0)]
    for name, tracks in sets.items():
        for step, pred, tol in configs:
                opts = TrajectoryCodingOptions(step=step, predictor=pred, tolerance=tol)
                t3 = time.perf_counter()
                data = encode_tracks(tracks, w, h, opts)
                t4 = time.perf_counter()
                dec = decode_tracks(data, frames.shape[0], w, h)
                t5 = time.perf_counter()
                ref = reconstruct_tracks(tracks, w, h, opts)
                assert np.array_equal(dec.xy, ref.xy) and np.array_equal(dec.vis, ref.vis)
                v = tracks.vis
                err = np.abs(dec.xy[v] - tracks.xy[v]).max(initial=0.0)
                out["coding"][f"{name}/step{step}/tol{tol}/{pred}"] = {
                    "tracks": tracks.num_tracks, "bytes": len(data),
                    "bits_per_point": bits_per_track_point(tracks, len(data)),
                    "max_abs_error_px": float(err),
                    "encode_ms": 1000 * (t4 - t3), "decode_ms": 1000 * (t5 - t4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips-dir", default=str(VIDEOS_DIR))
    ap.add_argument("--clips", nargs="*", default=CLIPS)
    ap.add_argument("--group", type=int, default=16, help="frames per keyframe group")
    ap.add_argument("--groups", type=int, default=3, help="groups per clip")
    ap.add_argument("--max-tracks", type=int, default=SelectionOptions().max_tracks,
                    help="also code a limit_tracks subset (select_tracks' default cap)")
    ap.add_argument("--steps", type=float, nargs="*", default=[0.5, 1.0])
    ap.add_argument("--tolerances", type=float, nargs="*", default=[0.0, 0.75, 1.0, 1.5])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "track_coding.json"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    results = {"config": {**vars(args), "tracking": asdict(TrackingOptions()),
                          "selection": asdict(SelectionOptions()),
                          "machine": platform.processor() or platform.machine(),
                          "opencv_threads": 1}, "clips": {}}
    for clip in args.clips:
        n = (args.group - 1) * args.groups + 1
        video = read_video(Path(args.clips_dir) / f"{clip}.y4m", n).frames
        groups = []
        for g in range(args.groups):
            a = g * (args.group - 1)
            if a + args.group > video.shape[0]:
                break
            groups.append(measure_group(video[a:a + args.group], args.max_tracks, args.steps,
                                        args.tolerances))
            r = groups[-1]
            d = TrajectoryCodingOptions()
            best = r["coding"].get(f"max{args.max_tracks}/step{d.step}/tol{d.tolerance}/auto", {})
            print(f"{clip} group {g}: dense {r['dense_tracks']} sel {r['selected_tracks']} "
                  f"inst {r['instances']} track {r['tracking_ms_per_frame']:.1f} ms/f "
                  f"(cpu {r['tracking_cpu_ms_per_frame']:.1f}) "
                  f"select {r['selection_ms']:.0f} ms  default bytes {best.get('bytes')} "
                  f"bpp-pt {best.get('bits_per_point', 0):.2f}", flush=True)
        results["clips"][clip] = {"width": int(video.shape[2]), "height": int(video.shape[1]),
                                  "groups": groups, "summary": summarise(groups)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps({c: v["summary"] for c, v in results["clips"].items()}, indent=1))


def summarise(groups: list[dict]) -> dict:
    if not groups:
        return {}
    keys = groups[0]["coding"].keys()
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    return {
        "tracking_ms_per_frame": mean([g["tracking_ms_per_frame"] for g in groups]),
        "tracking_cpu_ms_per_frame": mean([g["tracking_cpu_ms_per_frame"] for g in groups]),
        "selection_ms": mean([g["selection_ms"] for g in groups]),
        "selection_cpu_ms": mean([g["selection_cpu_ms"] for g in groups]),
        "selected_tracks": mean([g["selected_tracks"] for g in groups]),
        "instances": mean([g["instances"] for g in groups]),
        "bytes": {k: mean([g["coding"][k]["bytes"] for g in groups]) for k in keys},
        "bits_per_point": {k: mean([g["coding"][k]["bits_per_point"] for g in groups]) for k in keys},
    }


if __name__ == "__main__":
    main()
