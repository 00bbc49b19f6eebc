"""VMAF through the ffmpeg binary shipped with imageio-ffmpeg (built with libvmaf, models built in)."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class VmafOptions:
    model: str = "version=vmaf_v0.6.1"  # libvmaf model spec (built-in model of the binary)
    threads: int = 2                     # libvmaf worker threads
    subsample: int = 1                   # score every n-th frame (1 = all)
    timeout_s: float = 600.0             # give up on the ffmpeg run after this long


def ffmpeg_exe() -> str | None:
    """Path of imageio-ffmpeg's ffmpeg binary, or None if the package/binary is missing."""
    try:
        import imageio_ffmpeg  # noqa: PLC0415
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # package absent or binary not downloadable
        return None


def vmaf(ref_path: str, test_path: str, opts: VmafOptions = VmafOptions()) -> dict:
    """Pooled VMAF of test against ref (both y4m, same size and frame count).

    Returns {"vmaf": mean, "vmaf_min": min, "vmaf_harmonic": harmonic mean, "vmaf_s": seconds,
    "vmaf_model": model}; raises InputError if ffmpeg is missing or fails.
    """
    exe = ffmpeg_exe()
    if exe is None:
        raise InputError("VMAF needs imageio-ffmpeg's ffmpeg binary (pip install imageio-ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="tgvc_vmaf_") as tmp:
        log = os.path.join(tmp, "vmaf.json")
        model = opts.model.replace(":", "\\:")  # filter-graph escaping of the model spec
        filt = (f"[0:v][1:v]libvmaf=model={model}:log_fmt=json:log_path={log}"
                f":n_threads={opts.threads}:n_subsample={opts.subsample}")
        # "-r" on both inputs re-times them identically, so frames pair by index even when the
        # two headers disagree on the frame rate (libvmaf pairs frames by timestamp).
        cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "error", "-r", "25", "-i", str(test_path),
               "-r", "25", "-i", str(ref_path), "-lavfi", filt, "-f", "null", "-"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout_s)
        except subprocess.TimeoutExpired:
            raise InputError(f"VMAF: ffmpeg ran past {opts.timeout_s:.0f} s") from None
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not os.path.exists(log):
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"VMAF: ffmpeg failed ({last})")
        with open(log) as f:
            pooled = json.load(f)["pooled_metrics"]["vmaf"]
    return {"vmaf": float(pooled["mean"]), "vmaf_min": float(pooled["min"]),
            "vmaf_harmonic": float(pooled["harmonic_mean"]), "vmaf_s": seconds,
            "vmaf_model": opts.model}
