"""Warp decoder settings on real clips: quality and motion fidelity per setting.

Each clip is encoded once per ``--bpp`` (Python API); the stream is decoded in warp mode once per
setting of ``--configs`` (a JSON object name -> WarpOptions fields, with the dense-motion fields
under "motion"), measured like ``diffusion_sweep.py`` (``tgvc_rt.metrics.evaluate`` with
``--metrics``, PSNR-Y only by default, and the re-tracked EPE against the transmitted tracks).
``--track-shares`` encodes each clip once per trajectory budget share as well (encoder side).

    python benchmarks/warp_sweep.py --bpp 0.005 0.01 \\
        --configs '{"prior0.5": {"motion": {"prior_weight": 0.5}}, "prior0.02": {"motion": {"prior_weight": 0.02}}}' \\
        --out benchmarks/results/warp_sweep.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import VIDEOS_DIR  # noqa: E402
from diffusion_sweep import measure, write_result  # noqa: E402

from tgvc_rt.decoder.dense_motion import DenseMotionOptions  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames  # noqa: E402
from tgvc_rt.decoder.warp import WarpOptions  # noqa: E402
from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video  # noqa: E402
from tgvc_rt.encoder.ratecontrol import RateOptions  # noqa: E402
from tgvc_rt.io import read_video  # noqa: E402
from tgvc_rt.models import default_model_set_hash  # noqa: E402

CLIPS = ["bikes_640x272", "carphone_qcif", "flower_416x240", "foreman_cif", "mobile_cif", "webcamtalk_416x240"]


def options_with_motion(cls, config: dict):
    """``cls(**config)`` with the dense-motion fields under ``config["motion"]`` (WarpOptions, InterpOptions)."""
    config = dict(config)
    motion = DenseMotionOptions(**config.pop("motion", {}))
    return cls(motion=motion, **config)


def sweep_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every decoder sweep takes: clips, their folder, rates, decoder configs (JSON)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--clips-dir", default=str(VIDEOS_DIR))
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.005])
    ap.add_argument("--configs", default='{"default": {}}')
    return ap


def main(argv=None) -> int:
    ap = sweep_parser(__doc__.splitlines()[0])
    ap.add_argument("--track-shares", type=float, nargs="+", default=[RateOptions().track_share])
    ap.add_argument("--metrics", nargs="+", default=["psnr"])
    ap.add_argument("--out", default="benchmarks/results/warp_sweep.json")
    args = ap.parse_args(argv)
    configs = {name: options_with_motion(WarpOptions, cfg) for name, cfg in json.loads(args.configs).items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for clip in args.clips:
            src = Path(args.clips_dir) / f"{clip}.y4m"
            video = read_video(src)
            for bpp in args.bpp:
                for share in args.track_shares:
                    rate = RateOptions(bpp=bpp, track_share=share)
                    data = encode_video(video, EncodeOptions(rate=rate, seed=0,
                                                             model_set_hash=default_model_set_hash())).data
                    tgv = work / f"{clip}_{bpp}_{share}.tgv"
                    tgv.write_bytes(data)
                    for name, opts in configs.items():
                        frames = np.stack(list(iter_decoded_frames(data, DecodeOptions(mode="warp", warp=opts))))
                        rows.append(measure(src, frames, data, tgv, name, tuple(args.metrics), work,
                                            target_bpp=bpp, track_share=share))
    summary = {}
    for bpp in args.bpp:
        for share in args.track_shares:
            for name in configs:
                sel = [r for r in rows if r["target_bpp"] == bpp and r["setting"] == name and r["track_share"] == share]
                key = f"{name}@{bpp}" if len(args.track_shares) == 1 else f"{name}@{bpp}/share{share}"
                summary[key] = {k: float(np.mean([r[k] for r in sel]))
                                for k in ("psnr_y", "msssim_y", "vmaf", "jod", "epe_px")
                                if all(r[k] is not None for r in sel)}
    print(json.dumps(summary, indent=1))
    write_result("warp_sweep", args, rows, mean_over_clips=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
