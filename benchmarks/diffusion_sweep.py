"""Diffusion decoder settings on real clips: quality and motion fidelity per setting, warp beside it.

Each clip is encoded once at ``--bpp`` (Python API, default model set); the stream is decoded in warp
mode and in diffusion mode once per setting of ``--configs`` (a JSON object name -> DiffusionOptions
fields, plus an optional "models" key for another model set, decoded without the hash check).
Every output is written to y4m and measured with ``tgvc_rt.metrics.evaluate`` (PSNR-Y, MS-SSIM,
VMAF, ColorVideoVDP JOD when available) and re-tracked for the motion-fidelity EPE against the
transmitted tracks (``guidance_fidelity_clips.group_epe``).

    python benchmarks/diffusion_sweep.py --clips webcamtalk_416x240 mobile_cif \
        --configs '{"steps1": {"steps": 1}, "steps2": {"steps": 2}, "steps6": {"steps": 6}}' \
        --out benchmarks/results/diffusion_steps.json
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
from paths import VIDEOS_DIR  # noqa: E402
from guidance_fidelity_clips import group_epe  # noqa: E402
from harness import record, save, script_result  # noqa: E402

from tgvc_rt.bitstream import read_bitstream  # noqa: E402
from tgvc_rt.codec.stream import stream_meta  # noqa: E402
from tgvc_rt.decoder.diffusion import DiffusionOptions  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames  # noqa: E402
from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video  # noqa: E402
from tgvc_rt.encoder.ratecontrol import RateOptions  # noqa: E402
from tgvc_rt.io import open_video_writer, read_video  # noqa: E402
from tgvc_rt.metrics.evaluate import evaluate  # noqa: E402
from tgvc_rt.models import default_model_set_hash  # noqa: E402


def decode_options(config: dict) -> DecodeOptions:
    config = dict(config)
    models = config.pop("models", None)
    opts = DecodeOptions(mode="diffusion", diffusion=DiffusionOptions(**config))
    if models:
        opts.model_set, opts.check_model_set = models, False
    return opts


ORACLES = {"lowfreq4": ("pixels", 4.0), "latent4": ("latent", 4.0), "latent0": ("latent", 0.0)}  # change, blur


def oracle_frames(kinds: tuple[str, ...], frames: np.ndarray, truth: np.ndarray, keys: set[int]) -> dict:
    """What a refiner of ``frames`` that knew the truth could reach, in-between frames only (keyframes kept),
    per kind of ``ORACLES``:

    * ``lowfreq4``: ``frames + blur_4px(truth - frames)``: the best correction of the residual output's
      band (its Gaussian, sigma 4 px), in pixels;
    * ``latent4`` / ``latent0``: ``frames + blur(D(E(truth)) - D(E(frames)))``: the residual output of a
      perfect latent refiner (x0 = the true frame's TAEF2 latent), with the decoder's blur (sigma 4) / none.

    The VAE round trips are made once for all latent kinds.
    """
    import cv2

    from tgvc_rt.decoder.diffusion import _pad8
    from tgvc_rt.models import load_model_set

    idx = [f for f in range(len(frames)) if f not in keys]
    out = {kind: frames.copy() for kind in kinds}
    h, w = frames.shape[1:3]
    ae = load_model_set("default").autoencoder(batch=4) if any(ORACLES[k][0] == "latent" for k in kinds) else None
    for i in range(0, len(idx), 8):
        sel = idx[i:i + 8]
        f = frames[sel].astype(np.float32)
        changes = {"pixels": truth[sel].astype(np.float32) - f}
        if ae is not None:
            changes["latent"] = (ae.decode_float(ae.encode(_pad8(truth[sel])))
                                 - ae.decode_float(ae.encode(_pad8(frames[sel]))))[:, :h, :w]
        for kind in kinds:
            source, sigma = ORACLES[kind]
            change = changes[source]
            if sigma > 0:
                change = np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in change])
            out[kind][sel] = np.clip(np.rint(f + change), 0, 255).astype(np.uint8)
    return out


def run_clip(src: Path, bpp: float, configs: dict, metrics: tuple[str, ...], work: Path,
             baselines: tuple[str, ...] = ("warp",), epe: bool = True, oracles: tuple[str, ...] = ()) -> list[dict]:
    video = read_video(src)
    data = encode_video(video, EncodeOptions(rate=RateOptions(bpp=bpp), seed=0,
                                             model_set_hash=default_model_set_hash())).data
    tgv = work / f"{src.stem}.tgv"
    tgv.write_bytes(data)
    rows = []
    settings = {**{b: DecodeOptions(mode=b) for b in baselines}, **{k: decode_options(v) for k, v in configs.items()}}
    for name, opts in settings.items():
        t0 = time.perf_counter()
        frames = np.stack(list(iter_decoded_frames(data, opts)))
        seconds = time.perf_counter() - t0
        rows.append(measure(src, frames, data, tgv, name, metrics, work, epe=epe,
                            config=configs.get(name, {}), decode_s=seconds))
        if name == "interp" and oracles:
            keys = {f for g in read_bitstream(data).groups for f in (g.start, g.end)}
            for kind, oracle in oracle_frames(oracles, frames, video.frames, keys).items():
                rows.append(measure(src, oracle, data, tgv, f"oracle_{kind}", metrics, work, epe=False))
    return rows


def measure(src: Path, frames: np.ndarray, data: bytes, tgv: Path, name: str, metrics: tuple[str, ...],
            work: Path, epe: bool = True, **extra) -> dict:
    """Quality (``tgvc_rt.metrics.evaluate``) and (unless ``epe`` is False) the motion-fidelity EPE of
    decoded ``frames``; printed."""
    out = work / f"{src.stem}_{name}.y4m"
    with open_video_writer(out, stream_meta(read_bitstream(data))) as writer:
        for frame in frames:
            writer.write(frame)
    q = evaluate(str(src), str(out), str(tgv), metrics)
    row = {"clip": src.stem, "setting": name, **extra, "bpp": q.get("bpp"), "psnr_y": q.get("psnr_y"),
           "msssim_y": q.get("msssim_y"), "vmaf": q.get("vmaf"), "jod": q.get("cvvdp_jod"),
           "epe_px": group_epe(frames, data)["epe_px"] if epe else None}
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["webcamtalk_416x240", "mobile_cif"])
    ap.add_argument("--clips-dir", default=str(VIDEOS_DIR))
    ap.add_argument("--bpp", type=float, default=0.005)
    ap.add_argument("--configs", default='{"steps1": {"steps": 1}, "steps6": {"steps": 6}}')
    ap.add_argument("--metrics", nargs="+", default=["psnr", "msssim", "vmaf", "cvvdp"])
    ap.add_argument("--baselines", nargs="+", default=["warp"], choices=["warp", "interp"],
                    help="decode modes measured beside the diffusion settings (the default decode is interp)")
    ap.add_argument("--no-epe", action="store_true", help="skip the motion-fidelity EPE (re-tracking)")
    ap.add_argument("--oracles", nargs="*", default=[], choices=list(ORACLES),
                    help="rows of refiners of the interp frames that know the truth (oracle_frames; needs interp)")
    ap.add_argument("--out", default="benchmarks/results/diffusion_sweep.json")
    args = ap.parse_args(argv)
    configs = json.loads(args.configs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            rows += run_clip(Path(args.clips_dir) / f"{clip}.y4m", args.bpp, configs, tuple(args.metrics), Path(tmp),
                             tuple(args.baselines), not args.no_epe, tuple(args.oracles))
    write_result("diffusion_sweep", args, rows, means=means(rows))
    return 0


def means(rows: list[dict]) -> dict:
    """Per setting, the mean of each metric over the clips."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["setting"] for r in rows):
        sel = [r for r in rows if r["setting"] == name]
        out[name] = {k: float(np.mean([r[k] for r in sel])) for k in ("psnr_y", "msssim_y", "vmaf", "jod", "decode_s")
                     if all(r.get(k) is not None for r in sel)}
        out[name]["clips"] = len(sel)
    return out


SETTING_KEYS = ("clip", "setting", "config", "target_bpp", "encode", "track_share")  # what a row varies


def write_result(benchmark: str, args: argparse.Namespace, rows: list, **extra) -> None:
    """The JSON every sweep writes to ``args.out`` (the harness schema): the options as its settings, a record
    per row (clip, setting and rate as its settings, ``decode_s`` as its decode stage, the metrics), then
    ``extra`` (e.g. the means over the clips)."""
    cvvdp = "own venv ($TGVC_CVVDP_PYTHON)" if os.environ.get("TGVC_CVVDP_PYTHON") else "this interpreter"
    result = script_result(benchmark, {**vars(args), "cvvdp_python": cvvdp})
    for row in rows:
        settings = {k: row[k] for k in SETTING_KEYS if k in row}
        stages = {"decode": [row["decode_s"]]} if row.get("decode_s") is not None else {}
        result["records"].append(record(settings, stages, **{k: v for k, v in row.items()
                                                              if k not in settings and k != "decode_s"}))
    save(args.out, {**result, **extra})


if __name__ == "__main__":
    raise SystemExit(main())
