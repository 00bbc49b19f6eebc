"""Motion fidelity on real clips: do the decoded frames follow the transmitted trajectories?

Each clip is encoded at ``--bpp``; every group's transmitted (decoded, quantised) tracks are the
reference. The stream is decoded three ways: warp, diffusion with guidance off (scale 0) and
diffusion with guidance on (``--scale``). Each output is re-tracked from the transmitted positions
at the nearer keyframe (pyramidal LK, the same re-tracking as benchmarks/guidance_fidelity.py) and
the mean end-point error (EPE, px) against the transmitted tracks over visible points is reported.
The source clip itself is re-tracked the same way (``source``): its EPE is the floor of this metric
(track quantisation, the encoder's tracker against the re-tracker), which no decoder can be expected
to beat.

    nice python benchmarks/guidance_fidelity_clips.py --clips foreman_cif carphone_qcif \
        --out benchmarks/results/guidance_fidelity_clips.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import VIDEOS_DIR  # noqa: E402
from guidance_fidelity import retrack_epe  # noqa: E402

from tgvc_rt.bitstream import read_bitstream  # noqa: E402
from tgvc_rt.decoder.diffusion import DiffusionOptions  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames  # noqa: E402
from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video  # noqa: E402
from tgvc_rt.encoder.ratecontrol import RateOptions  # noqa: E402
from tgvc_rt.codec.trajectories import decode_tracks  # noqa: E402
from tgvc_rt.io import read_video  # noqa: E402
from tgvc_rt.models import default_model_set_hash  # noqa: E402


def group_epe(frames: np.ndarray, data: bytes) -> dict:
    """EPE over all groups with tracks, weighted by their points."""
    bs = read_bitstream(data)
    h = bs.header
    total, points = 0.0, 0
    for g in bs.groups:
        n = g.end - g.start + 1
        tracks = decode_tracks(g.tracks, n, h.width, h.height)
        if tracks.num_tracks == 0 or n < 3:
            continue
        r = retrack_epe(frames[g.start:g.end + 1], tracks.xy, tracks.vis, np.ones(tracks.num_tracks, bool))
        total += r["epe_px"] * r["points"]
        points += r["points"]
    return {"epe_px": total / max(points, 1), "points": points}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["foreman_cif", "carphone_qcif"])
    ap.add_argument("--clips-dir", default=str(VIDEOS_DIR))
    ap.add_argument("--bpp", type=float, default=0.005)
    ap.add_argument("--scale", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=None, help="default: the decoder's default")
    ap.add_argument("--strength", type=float, default=None, help="default: the decoder's default")
    ap.add_argument("--out", default="benchmarks/results/guidance_fidelity_clips.json")
    args = ap.parse_args(argv)
    records = []
    for clip in args.clips:
        video = read_video(Path(args.clips_dir) / f"{clip}.y4m")
        data = encode_video(video, EncodeOptions(rate=RateOptions(bpp=args.bpp), seed=0,
                                                 model_set_hash=default_model_set_hash())).data
        rec = {"clip": clip, "bpp": len(data) * 8 / (video.meta.width * video.meta.height * len(video))}
        rec["source"] = group_epe(video.frames, data)
        print(clip, "source", rec["source"], flush=True)
        modes = {"warp": DecodeOptions(mode="warp")}
        for name, scale in (("diffusion_guidance_off", 0.0), ("diffusion_guidance_on", args.scale)):
            dopts = DiffusionOptions(guidance_scale=scale)
            if args.steps is not None:
                dopts.steps = args.steps
            if args.strength is not None:
                dopts.strength = args.strength
            modes[name] = DecodeOptions(mode="diffusion", diffusion=dopts)
        for name, opts in modes.items():
            t0 = time.perf_counter()
            frames = np.stack(list(iter_decoded_frames(data, opts)))
            rec[name] = {**group_epe(frames, data), "decode_s": time.perf_counter() - t0}
            print(clip, name, rec[name], flush=True)
        records.append(rec)
    result = {"benchmark": "guidance_fidelity_clips", "command": " ".join(sys.argv), "options": vars(args),
              "machine": platform.machine(), "records": records}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
