"""Keyframe restoration: quality of real streams' decoded keyframes, as
decoded and after a learned restoration post-filter (export/tgvc_export/keyframe_restore.py, ONNX).

For every clip and bpp: the stream of the default CLI (``tgvc-rt encode CLIP.y4m -o x.tgv --bpp B``,
made here unless ``--streams`` already holds ``<clip>_<bpp>.tgv``), its keyframes decoded with the real
KeyframeReader, compared with the source y4m's own luma planes at the same frame indices: PSNR-Y and
MS-SSIM (tgvc_rt.metrics), before and after the net (luma of the restored RGB taken with the y4m
writer's conversion, as a decode would write it).

    python benchmarks/keyframe_restore.py --onnx export/cache/kfr/kfr.onnx --out benchmarks/results/keyframe_restore.json
    python benchmarks/keyframe_restore.py --onnx none ...          # baseline only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import VIDEOS_DIR as VIDEO_DIR  # noqa: E402
from tgvc_export.keyframe_restore import keyframes_of_stream, luma, restore_numpy  # noqa: E402
from tgvc_rt.benchrecord import time_calls  # noqa: E402
from tgvc_rt.io.y4m import read_y4m_planes  # noqa: E402
from tgvc_rt.metrics.msssim import ms_ssim  # noqa: E402
from tgvc_rt.metrics.psnr import psnr_per_frame  # noqa: E402

HELD_OUT = ("mobile_cif", "webcamtalk_416x240")
TRAIN = ("bikes_640x272", "carphone_qcif", "flower_416x240", "foreman_cif")


def stream_for(clip: str, bpp: float, folder: Path) -> Path:
    path = folder / f"{clip}_{bpp}.tgv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tgvc_rt", "encode", str(VIDEO_DIR / f"{clip}.y4m"), "-o", str(path),
                        "--bpp", repr(bpp), "-q"], check=True)
    return path


def time_onnx(path: str, width: int = 352, height: int = 288, runs: int = 20) -> dict:
    """Median wall time of one restoration at width x height with onnxruntime on CPU, 1 and 2 threads."""
    import onnxruntime as ort

    out = {"size": f"{width}x{height}", "runs": runs}
    x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    for threads in (1, 2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {"image": x, "scale": np.array([0.75], np.float32)}
        times = time_calls(lambda: sess.run(None, feed), runs)
        out[f"ms_threads{threads}_median"] = 1000 * float(np.median(times))
        out[f"ms_threads{threads}_min"] = 1000 * float(np.min(times))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", default="none")
    ap.add_argument("--clips", default=",".join(HELD_OUT + TRAIN))
    ap.add_argument("--bpps", default="0.005,0.01")
    ap.add_argument("--streams", default="export/cache/kfr/streams")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time", action="store_true", help="also time the net at 352x288 (1 and 2 threads)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    run = None
    timing = time_onnx(args.onnx) if args.time and args.onnx != "none" else None
    if timing:
        print(timing, flush=True)
    if args.onnx != "none":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        run = lambda x, s: sess.run(None, {"image": x, "scale": s})[0]  # noqa: E731
    records = []
    for clip in args.clips.split(","):
        planes = read_y4m_planes(VIDEO_DIR / f"{clip}.y4m")
        for bpp in map(float, args.bpps.split(",")):
            path = stream_for(clip, bpp, Path(args.streams))
            keys = keyframes_of_stream(path.read_bytes())
            idx = [k for k, _, _ in keys]
            ref = planes.y[idx]
            dec = np.stack([luma(im) for _, im, _ in keys])
            rec = dict(clip=clip, bpp_target=bpp, held_out=clip in HELD_OUT, stream_bytes=path.stat().st_size,
                       keyframes=idx, scales=[s for _, _, s in keys],
                       psnr_y=psnr_per_frame(ref, dec).tolist(), ms_ssim=ms_ssim(ref, dec).per_frame.tolist())
            if run is not None:
                t0 = time.perf_counter()
                res = np.stack([luma(restore_numpy(run, im, s)) for _, im, s in keys])
                rec["restore_ms_per_keyframe"] = 1000 * (time.perf_counter() - t0) / len(keys)
                rec["psnr_y_restored"] = psnr_per_frame(ref, res).tolist()
                rec["ms_ssim_restored"] = ms_ssim(ref, res).per_frame.tolist()
            for key in ("psnr_y", "ms_ssim", "psnr_y_restored", "ms_ssim_restored"):
                if key in rec:
                    rec[f"mean_{key}"] = float(np.mean(rec[key]))
            if run is not None:
                rec["gain_psnr_y_db"] = rec["mean_psnr_y_restored"] - rec["mean_psnr_y"]
                rec["gain_ms_ssim"] = rec["mean_ms_ssim_restored"] - rec["mean_ms_ssim"]
            records.append(rec)
            print(f"{clip:20s} {bpp:<6} K={len(idx):2d} scale={sorted(set(rec['scales']))} "
                  f"PSNR-Y {rec['mean_psnr_y']:.3f}" + (
                      f" -> {rec['mean_psnr_y_restored']:.3f} ({rec['gain_psnr_y_db']:+.3f} dB); MS-SSIM "
                      f"{rec['mean_ms_ssim']:.4f} -> {rec['mean_ms_ssim_restored']:.4f}" if run else
                      f" MS-SSIM {rec['mean_ms_ssim']:.4f}"), flush=True)
    if args.out:
        doc = {"command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
               "onnx": args.onnx, "threads": args.threads, "timing": timing, "records": records}
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
