"""ExportSpecs of the four models of a set: names, example inputs and dynamic axes (docs/models.md)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.export import Dim

from .export_onnx import TAESD_NOTICE, ExportSpec
from .taef2 import WEIGHTS_DIR, DecoderWrapper, load_taef2


def vae_specs(weights_dir: str | Path = WEIGHTS_DIR, height: int = 64, width: int = 96) -> tuple[ExportSpec, ExportSpec]:
    """(vae_encoder, vae_decoder) specs; example image of height x width (multiples of 8)."""
    enc, dec = load_taef2(weights_dir)
    g = torch.Generator().manual_seed(0)
    b, h8, w8 = Dim("B", min=1, max=1024), Dim("h", min=1, max=1024), Dim("w", min=1, max=1024)
    image = torch.rand(2, 3, height, width, generator=g)
    latent = torch.randn(2, 32, height // 8, width // 8, generator=g)
    enc_spec = ExportSpec("vae_encoder", enc, {"image": image}, ["latent"],
                          {"image": {0: b, 2: 8 * h8, 3: 8 * w8}}, licence=TAESD_NOTICE)
    dec_spec = ExportSpec("vae_decoder", DecoderWrapper(dec).eval(), {"latent": latent}, ["image"],
                          {"latent": {0: b, 2: h8, 3: w8}}, licence=TAESD_NOTICE)
    return enc_spec, dec_spec


def unet_spec(model: torch.nn.Module, frames: int = 6, h: int = 8, w: int = 16) -> ExportSpec:
    """Spec of a UNet (any config); example [2, frames, 32, h, w], h and w multiples of the UNet's
    downsampling factor (else torch.export specialises the internal padding)."""
    g = torch.Generator().manual_seed(0)
    b, f, hh, ww = Dim("B"), Dim("F"), Dim("h"), Dim("w")
    inputs = {"sample": torch.randn(2, frames, 32, h, w, generator=g),
              "timestep": torch.tensor([100.0, 700.0]),
              "cond": torch.randn(2, frames, 65, h, w, generator=g)}
    dyn = {"sample": {0: b, 1: f, 3: hh, 4: ww}, "timestep": {0: b}, "cond": {0: b, 1: f, 3: hh, 4: ww}}
    return ExportSpec("unet", model.eval(), inputs, ["eps"], dyn)
