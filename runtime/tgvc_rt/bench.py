"""`tgvc-rt bench`: llama-bench-style timing of encode and decode on one clip.

One warm-up run, then ``repeat`` timed runs; every number is printed with the configuration that
produced it, and optionally written as JSON.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from . import __version__


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "runs": values}


def run_bench(path: Path, bpp: float, mode: str, frames: int | None, repeat: int,
              json_out: Path | None = None) -> str:
    from .decoder.pipeline import DecodeOptions, DecodeStats, iter_decoded_frames
    from .encoder.pipeline import EncodeOptions, encode_video
    from .encoder.ratecontrol import RateOptions
    from .io import read_video, write_bytes_atomic

    video = read_video(path, max_frames=frames)
    n = len(video)
    options = EncodeOptions(rate=RateOptions(bpp=bpp), seed=0)
    enc_times, dec_times, stage_runs = [], [], []
    data = b""
    for run in range(repeat + 1):
        t0 = time.perf_counter()
        data = encode_video(video, options).data
        enc = time.perf_counter() - t0
        stats = DecodeStats()
        t0 = time.perf_counter()
        for _ in iter_decoded_frames(data, DecodeOptions(mode=mode), stats):
            pass
        dec = time.perf_counter() - t0
        if run:  # run 0 is the warm-up
            enc_times.append(enc)
            dec_times.append(dec)
            stage_runs.append(stats.seconds)
    stages = {k: _stats([r.get(k, 0.0) for r in stage_runs]) for k in stage_runs[0]}
    result = {
        "config": {"clip": str(path), "frames": n, "size": f"{video.meta.width}x{video.meta.height}",
                   "bpp_target": bpp, "mode": mode, "repeat": repeat, "tgvc_rt": __version__,
                   "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "bytes": len(data), "bpp": len(data) * 8 / (video.meta.width * video.meta.height * n),
        "encode_s": _stats(enc_times), "decode_s": _stats(dec_times),
        "encode_fps": n / statistics.fmean(enc_times), "decode_fps": n / statistics.fmean(dec_times),
        "decode_stage_s": stages,
    }
    if json_out is not None:
        write_bytes_atomic(json_out, json.dumps(result, indent=2).encode())
    e, d = result["encode_s"], result["decode_s"]
    lines = [f"{path.name} {result['config']['size']} x{n} frames, target {bpp} bpp, mode {mode}, "
             f"{repeat} runs after 1 warm-up, {os.cpu_count()} CPUs",
             f"  bitstream  {len(data)} B, {result['bpp']:.5f} bpp",
             f"  encode     {e['mean']:.3f} ± {e['stdev']:.3f} s   {result['encode_fps']:.1f} frames/s",
             f"  decode     {d['mean']:.3f} ± {d['stdev']:.3f} s   {result['decode_fps']:.1f} frames/s"]
    lines += [f"    {k:<14s} {v['mean']:.0f} calls" if k.endswith("_calls")
              else f"    {k:<14s} {v['mean']:.3f} ± {v['stdev']:.3f} s" for k, v in stages.items()]
    return "\n".join(lines)
