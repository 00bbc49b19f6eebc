"""Keyframe codec shoot-out: PSNR-Y and bytes of AV1 / HEVC / AVIF keyframes at 300-1500 bytes.

Every configuration codes the same real CIF frames with ``encode_keyframe_to_size`` (scale ladder +
qp binary search) at each byte budget; we report mean payload bytes, mean PSNR-Y of the decoded
picture, mean encode time (whole search) and decode time, and pick the default codec by the mean
PSNR-Y over all budgets. HEVC is also reported without its VPS/SPS/PPS bytes (what it would cost
if those were rebuilt at the decoder, as AV1's sequence header is).

    nice python benchmarks/keyframe_codec.py \
        --videos ../shared/data/videos/foreman_cif.y4m ../shared/data/videos/mobile_cif.y4m

(run from the repository root; with ``TGVC_DATA`` set, the clips are ``$TGVC_DATA/videos/<clip>.y4m``).
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import cv2
import numpy as np

from tgvc_rt.codec.keyframe_image import KeyframeCodecOptions, decode_keyframe, unpack_quality
from tgvc_rt.encoder.keyframe_rate import encode_keyframe_to_size, psnr_y

DEFAULT_CONFIG = "av1-p6"
DEFAULT_REASON = ("av1 preset 6: within ~0.1 dB of the best config that encodes in < 0.5 s per keyframe "
                  "(hevc-slow, which could still shed its ~82 B of VPS/SPS/PPS), +0.3 dB over hevc-fast, "
                  "av1-p4 is ~0.4 dB better but ~0.9 s per keyframe; AV1 has the robust dav1d decoder")

CONFIGS = {
    "av1-p4": ("av1", KeyframeCodecOptions(av1_preset=4)),
    "av1-p6": ("av1", KeyframeCodecOptions(av1_preset=6)),
    "av1-p8": ("av1", KeyframeCodecOptions(av1_preset=8)),
    "av1-p10": ("av1", KeyframeCodecOptions(av1_preset=10)),
    "hevc-fast": ("hevc", KeyframeCodecOptions(hevc_preset="fast")),
    "hevc-slow": ("hevc", KeyframeCodecOptions(hevc_preset="slow")),
    "avif-s6": ("avif", KeyframeCodecOptions(avif_speed=6)),
}


def read_y4m_frames(path: str, indices: list[int]) -> list[np.ndarray]:
    """Minimal 4:2:0 8-bit y4m reader (benchmarks only) -> RGB frames at ``indices``."""
    with open(path, "rb") as f:
        header = f.readline().decode().split()
        w = int(next(t for t in header if t[0] == "W")[1:])
        h = int(next(t for t in header if t[0] == "H")[1:])
        size, out, i = w * h * 3 // 2, [], 0
        while len(out) < len(indices):
            if not f.readline():
                break
            buf = f.read(size)
            if len(buf) < size:
                break
            if i in indices:
                yuv = np.frombuffer(buf, np.uint8).reshape(h * 3 // 2, w)
                out.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))
            i += 1
    return out


def hevc_parameter_set_bytes(payload: bytes) -> int:
    """Bytes of VPS/SPS/PPS NAL units (types 32-34) in an Annex-B payload, start codes included."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", payload)] + [len(payload)]
    total = 0
    for a, b in zip(starts[:-1], starts[1:]):
        if 32 <= (payload[a + 3] >> 1) & 63 <= 34:
            total += b - a + 1  # + the leading zero of the 4-byte start code
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", nargs="+", required=True)
    ap.add_argument("--frames", type=int, nargs="+", default=[0, 100, 200])
    ap.add_argument("--budgets", type=int, nargs="+", default=[300, 500, 800, 1100, 1500])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "keyframe_codec.json"))
    args = ap.parse_args()
    frames = [(Path(v).stem, i, fr) for v in args.videos
              for i, fr in zip(args.frames, read_y4m_frames(v, args.frames))]
    results = {}
    for name in args.configs:
        codec, opts = CONFIGS[name]
        rows = []
        for budget in args.budgets:
            recs = []
            for clip, idx, fr in frames:
                h, w = fr.shape[:2]
                t0 = time.perf_counter()
                payload, quality = encode_keyframe_to_size(fr, budget, codec, opts)
                t1 = time.perf_counter()
                rec = decode_keyframe(payload, w, h, codec)
                t2 = time.perf_counter()
                ps = hevc_parameter_set_bytes(payload) if codec == "hevc" else 0
                recs.append(dict(clip=clip, frame=idx, bytes=len(payload), param_set_bytes=ps,
                                 qp_scale_level=unpack_quality(quality), psnr_y=psnr_y(fr, rec),
                                 encode_s=t1 - t0, decode_s=t2 - t1))
            row = dict(budget=budget,
                       mean_bytes=float(np.mean([r["bytes"] for r in recs])),
                       mean_psnr_y=float(np.mean([r["psnr_y"] for r in recs])),
                       mean_encode_s=float(np.mean([r["encode_s"] for r in recs])),
                       mean_decode_s=float(np.mean([r["decode_s"] for r in recs])),
                       mean_param_set_bytes=float(np.mean([r["param_set_bytes"] for r in recs])),
                       frames=recs)
            rows.append(row)
            print(f"{name:10s} budget {budget:5d}: {row['mean_bytes']:7.1f} B  "
                  f"PSNR-Y {row['mean_psnr_y']:6.2f} dB  enc {row['mean_encode_s'] * 1e3:6.1f} ms  "
                  f"dec {row['mean_decode_s'] * 1e3:5.2f} ms"
                  + (f"  (param sets {row['mean_param_set_bytes']:.0f} B)" if codec == "hevc" else ""),
                  flush=True)
        results[name] = dict(codec=codec, options=opts.__dict__, budgets=rows,
                             mean_psnr_y=float(np.mean([r["mean_psnr_y"] for r in rows])),
                             mean_encode_s=float(np.mean([r["mean_encode_s"] for r in rows])))
    best = max(results, key=lambda k: results[k]["mean_psnr_y"])
    summary = {k: dict(mean_psnr_y=v["mean_psnr_y"], mean_encode_s=v["mean_encode_s"])
               for k, v in results.items()}
    out = dict(benchmark="keyframe_codec", machine=platform.processor() or platform.machine(),
               videos=args.videos, frame_indices=args.frames, budgets=args.budgets,
               best_by_mean_psnr_y=best, default_config=DEFAULT_CONFIG, default_reason=DEFAULT_REASON,
               command="nice python benchmarks/keyframe_codec.py --videos "
                       + " ".join(args.videos) + " --frames " + " ".join(map(str, args.frames)),
               summary=summary, configs=results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("best by mean PSNR-Y:", best, json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
