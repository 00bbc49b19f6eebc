"""End-to-end effect of the keyframe restoration net: decode default-mode (interp) streams with and without
the net applied to every decoded keyframe before the interpolator (``DecodeOptions.keyframe_filter``),
scored against the source with tgvc_rt.metrics.evaluate (PSNR-Y, MS-SSIM; per frame split into keyframes
and interpolated frames).

    python benchmarks/keyframe_restore_e2e.py --onnx export/cache/kfr/kfr.onnx --bpp 0.005 \
        --out benchmarks/results/keyframe_restore_e2e.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keyframe_restore import HELD_OUT, TRAIN, stream_for  # noqa: E402
from paths import VIDEOS_DIR  # noqa: E402
from tgvc_export.keyframe_restore import restore_numpy  # noqa: E402
from tgvc_rt.bitstream import read_bitstream  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, DecodeStats, iter_decoded_frames  # noqa: E402
from tgvc_rt.io.y4m import Y4mWriter  # noqa: E402
from tgvc_rt.metrics.evaluate import evaluate  # noqa: E402
from tgvc_rt.types import VideoMeta  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--clips", default=",".join(HELD_OUT + TRAIN))
    ap.add_argument("--bpp", type=float, default=0.005)
    ap.add_argument("--streams", default="export/cache/kfr/streams")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--metrics", default="psnr,msssim")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    net = lambda x, s: sess.run(None, {"image": x, "scale": s})[0]  # noqa: E731
    keyframe_filter = lambda image, scale: restore_numpy(net, image, scale)  # noqa: E731
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips.split(","):
            src = VIDEOS_DIR / f"{clip}.y4m"
            tgv = stream_for(clip, args.bpp, Path(args.streams))
            data = tgv.read_bytes()
            bs = read_bitstream(data)
            h = bs.header
            keys = bs.keyframe_indices()
            rec = dict(clip=clip, held_out=clip in HELD_OUT, bpp_target=args.bpp, keyframes=keys)
            for name, filt in (("plain", None), ("restored", keyframe_filter)):
                out = os.path.join(tmp, f"{clip}_{name}.y4m")
                stats = DecodeStats()
                t0 = time.perf_counter()
                meta = VideoMeta(h.width, h.height, h.fps_num, h.fps_den)
                with open(out, "wb") as f:
                    w = Y4mWriter(f, meta)
                    for frame in iter_decoded_frames(data, DecodeOptions(threads=args.threads,
                                                                         keyframe_filter=filt), stats):
                        w.write(frame)
                dt = time.perf_counter() - t0
                res = evaluate(str(src), out, tgv_path=str(tgv), metrics=tuple(args.metrics.split(",")))
                py = np.array(res["psnr_y_per_frame"])
                inter = [i for i in range(len(py)) if i not in set(keys)]
                r = dict(decode_s=dt, stage_s=stats.seconds, bpp=res.get("bpp"),
                         psnr_y=res.get("psnr_y"), ms_ssim=res.get("msssim_y"),
                         psnr_y_keyframes=float(np.mean(py[keys])), psnr_y_interpolated=float(np.mean(py[inter])),
                         psnr_y_per_frame=res["psnr_y_per_frame"])
                for k in res:
                    if k.startswith("msssim") and k != "msssim_y" and not isinstance(res[k], list):
                        r[k] = res[k]
                rec[name] = r
            rec["gain_psnr_y_db"] = rec["restored"]["psnr_y"] - rec["plain"]["psnr_y"]
            rec["gain_psnr_y_interpolated_db"] = (rec["restored"]["psnr_y_interpolated"]
                                                  - rec["plain"]["psnr_y_interpolated"])
            if rec["plain"].get("ms_ssim") is not None:
                rec["gain_ms_ssim"] = rec["restored"]["ms_ssim"] - rec["plain"]["ms_ssim"]
            records.append(rec)
            print(f"{clip:20s} PSNR-Y {rec['plain']['psnr_y']:.3f} -> {rec['restored']['psnr_y']:.3f} "
                  f"({rec['gain_psnr_y_db']:+.3f}; interpolated {rec['gain_psnr_y_interpolated_db']:+.3f}) "
                  f"MS-SSIM {rec['plain'].get('ms_ssim')} -> {rec['restored'].get('ms_ssim')}", flush=True)
    if args.out:
        doc = {"command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
               "onnx": args.onnx, "records": records}
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
