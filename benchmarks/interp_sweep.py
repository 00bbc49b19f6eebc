"""Interpolation decoder settings on real clips: RIFE alone, initial flow, flow guidance, warp beside them.

Each clip is encoded once per ``--bpp`` (Python API, default model set); the stream is decoded in
warp mode and in interp mode once per setting of ``--configs`` (a JSON object name ->
InterpOptions fields, dense-motion fields under "motion"), measured like ``diffusion_sweep.py``
(``tgvc_rt.metrics.evaluate`` with ``--metrics`` and the re-tracked EPE against the tracks).

    python benchmarks/interp_sweep.py --bpp 0.005 --metrics psnr vmaf \\
        --configs '{"rife": {"init_flow": false, "guidance": 0}, "init": {"guidance": 0},
                    "guide": {"init_flow": false}, "init+guide": {}}' \\
        --out benchmarks/results/interp_sweep.json
"""
from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffusion_sweep import measure, write_result  # noqa: E402
from warp_sweep import options_with_motion, sweep_parser  # noqa: E402

from tgvc_rt.codec.keyframe_sequence import KeyframeStreamOptions  # noqa: E402
from tgvc_rt.decoder.interpolate import InterpOptions  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames  # noqa: E402
from tgvc_rt.encoder.interp_probe import ProbeOptions  # noqa: E402
from tgvc_rt.encoder.keyframes import KeyframeOptions  # noqa: E402
from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video  # noqa: E402
from tgvc_rt.encoder.ratecontrol import RateOptions  # noqa: E402
from tgvc_rt.io import read_video  # noqa: E402
from tgvc_rt.models import default_model_set_hash  # noqa: E402

SUMMARY_KEYS = ("psnr_y", "msssim_y", "vmaf", "jod", "epe_px", "decode_s")


def main(argv=None) -> int:
    ap = sweep_parser(__doc__.splitlines()[0])
    ap.add_argument("--no-warp", action="store_true", help="skip the warp decoder row")
    ap.add_argument("--encodes", default='{"default": {}}',
                    help="JSON: name -> encoder settings {\"rate\": RateOptions fields, \"keyframes\": KeyframeOptions "
                         "fields, \"effort\": 0 or 1, \"probe\": ProbeOptions fields, \"keyframe_stream\": "
                         "KeyframeStreamOptions fields}")
    ap.add_argument("--metrics", nargs="+", default=["psnr", "vmaf"])
    ap.add_argument("--no-epe", action="store_true", help="skip re-tracking the output (motion-fidelity EPE)")
    ap.add_argument("--out", default="benchmarks/results/interp_sweep.json")
    args = ap.parse_args(argv)
    settings = {} if args.no_warp else {"warp": DecodeOptions(mode="warp")}
    settings.update({name: DecodeOptions(mode="interp", interp=options_with_motion(InterpOptions, cfg))
                     for name, cfg in json.loads(args.configs).items()})
    encodes = json.loads(args.encodes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for clip in args.clips:
            src = Path(args.clips_dir) / f"{clip}.y4m"
            video = read_video(src)
            for bpp, (enc, cfg) in itertools.product(args.bpp, encodes.items()):
                options = EncodeOptions(rate=RateOptions(bpp=bpp, **cfg.get("rate", {})),
                                        keyframes=KeyframeOptions(**cfg.get("keyframes", {})), seed=0,
                                        effort=cfg.get("effort", EncodeOptions.effort),
                                        probe=ProbeOptions(**cfg.get("probe", {})),
                                        keyframe_stream=(KeyframeStreamOptions(**cfg["keyframe_stream"])
                                                         if "keyframe_stream" in cfg else None),
                                        model_set_hash=default_model_set_hash())
                data = encode_video(video, options).data
                tgv = work / f"{clip}_{bpp}_{enc}.tgv"
                tgv.write_bytes(data)
                for name, opts in settings.items():
                    t0 = time.perf_counter()
                    frames = np.stack(list(iter_decoded_frames(data, opts)))
                    seconds = time.perf_counter() - t0
                    rows.append(measure(src, frames, data, tgv, name, tuple(args.metrics), work, epe=not args.no_epe,
                                        target_bpp=bpp, encode=enc, decode_s=seconds))
    summary = {}
    for bpp, enc, name in itertools.product(args.bpp, encodes, settings):
        sel = [r for r in rows if r["target_bpp"] == bpp and r["setting"] == name and r["encode"] == enc]
        summary[f"{name}@{bpp}/{enc}"] = {k: float(np.mean([r[k] for r in sel])) for k in SUMMARY_KEYS
                                          if all(r.get(k) is not None for r in sel)}
    print(json.dumps(summary, indent=1))
    write_result("interp_sweep", args, rows, mean_over_clips=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
