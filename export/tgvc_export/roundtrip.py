"""TAEF2 round trip (encode -> decode, no quantisation): PSNR-Y per clip, torch and ONNX."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import VIDEO_DIR, crop_to_multiple, psnr_y
from .taef2 import load_taef2

CLIPS = ("foreman_cif", "flower_416x240", "mobile_cif", "bikes_640x272")


@torch.no_grad()
def roundtrip_psnr(frames: int = 4, clips: tuple[str, ...] = CLIPS, video_dir: Path = VIDEO_DIR) -> dict[str, float]:
    """clip -> PSNR-Y (dB) of the first ``frames`` frames through the torch TAEF2."""
    from tgvc_rt.io import read_video

    enc, dec = load_taef2()
    out = {}
    for clip in clips:
        ref = crop_to_multiple(read_video(video_dir / f"{clip}.y4m", frames).frames)
        x = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 255.0
        y = dec(enc(x)).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        out[clip] = round(psnr_y(ref, np.round(y * 255.0).astype(np.uint8)), 2)
    return out
