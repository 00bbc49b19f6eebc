"""ORT CPU timings of a model set at one resolution (default 352x288): warm-up, repetitions, mean/stdev."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from tgvc_rt.benchrecord import time_calls

from .export_onnx import ort_session


def _inputs(name: str, width: int, height: int, frames: int, tracks: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    h, w = height // 8, width // 8
    if name == "vae_encoder":
        return {"image": rng.random((1, 3, height, width), np.float32)}
    if name == "vae_decoder":
        return {"latent": rng.standard_normal((1, 32, h, w), np.float32)}
    if name == "unet":
        return {"sample": rng.standard_normal((1, frames, 32, h, w), np.float32),
                "timestep": np.array([400.0], np.float32),
                "cond": rng.standard_normal((1, frames, 65, h, w), np.float32)}
    if name == "interpolator":  # one frame pair at the size the runtime pads to, with the tracks of a group
        from tgvc_rt.models.interpolator import padded_size

        from .interpolator_export import example_inputs

        hp, wp = padded_size(height, width)
        return {k: v.numpy() for k, v in example_inputs(1, hp, wp, tracks).items()}
    base = rng.random((height, width), np.float32)
    clip = np.stack([np.roll(base, (t, 2 * t), (0, 1)) for t in range(frames)])[None, :, None]
    q = rng.random((1, tracks, 2), np.float32) * np.array([width - 16, height - 16], np.float32) + 8
    return {"frames": clip, "queries": q}


def time_model_set(folder: Path, width: int = 352, height: int = 288, frames: int = 16, tracks: int = 1584,
                   reps: int = 3, threads: int = 2) -> dict:
    """Seconds per call of every model (and fp16 variant) of the set in folder."""
    manifest = json.loads((folder / "manifest.json").read_text())
    result = {"config": {"width": width, "height": height, "frames": frames, "tracks": tracks, "reps": reps,
                         "threads": threads, "cpu": platform.processor() or platform.machine(),
                         "cpus": os.cpu_count()}, "seconds": {}}
    for name, entry in manifest["models"].items():
        files = {name: entry["file"]}
        files.update({f"{name}_{k}": v["file"] for k, v in entry.get("variants", {}).items()})
        feed = _inputs(name, width, height, frames, tracks)
        for key, file in files.items():
            sess = ort_session(folder / file, threads)
            times = time_calls(lambda: sess.run(None, feed), reps)
            result["seconds"][key] = {"mean": round(float(np.mean(times)), 4), "std": round(float(np.std(times)), 4),
                                      "min": round(float(np.min(times)), 4)}
    return result
