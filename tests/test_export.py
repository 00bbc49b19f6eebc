"""export/ (torch) against the shipped ONNX model set; skipped cleanly without torch.

Fast by default: only a random-weight VAE decoder is exported here; the shipped UNet and tracker are
compared with their torch definitions; the large UNet export runs with TGVC_SLOW=1.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))

from tgvc_export.export_onnx import ort_session  # noqa: E402
from tgvc_export.manifest import sha256_file  # noqa: E402
from tgvc_export.unet import build_unet  # noqa: E402

DEFAULT = ROOT / "runtime" / "tgvc_rt" / "models" / "default"
CHECKPOINT = ROOT / "export" / "checkpoints" / "unet_default.pt"
TOL = 1e-3  # max abs error ORT vs torch, FP32


@pytest.mark.parametrize("frames,h,w", [(16, 9, 11), (5, 7, 13), (2, 4, 4), (1, 3, 5)])
def test_unet_any_shape(frames, h, w):
    torch.manual_seed(0)
    net = build_unet("default").eval()
    with torch.no_grad():
        eps = net(torch.randn(2, frames, 32, h, w), torch.tensor([10.0, 900.0]), torch.randn(2, frames, 65, h, w))
    assert eps.shape == (2, frames, 32, h, w)


def test_untrained_default_unet_returns_the_warp_latents():
    from tgvc_export.schedule import alphas_cumprod

    net = build_unet("default").eval()  # warp_residual: x0 = warp + residual (zero at init)
    sample, cond = torch.randn(1, 4, 32, 5, 6), torch.randn(1, 4, 65, 5, 6)
    a = float(alphas_cumprod()[300])
    with torch.no_grad():
        eps = net(sample, torch.tensor([300.0]), cond)
    x0 = (sample - (1 - a) ** 0.5 * eps) / a ** 0.5
    assert torch.allclose(x0, cond[:, :, 33:], atol=1e-4)


def test_vae_decoder_export_fp32(tmp_path):
    from tgvc_export.export_onnx import ExportSpec, export, max_abs_error
    from tgvc_export.taef2 import Decoder, DecoderWrapper
    from torch.export import Dim

    torch.manual_seed(0)
    dec = DecoderWrapper(Decoder()).eval()  # random weights: tests need no shared data
    h, w = Dim("h", min=1, max=512), Dim("w", min=1, max=512)
    spec = ExportSpec("vae_decoder", dec, {"latent": torch.randn(1, 32, 4, 6)}, ["image"],
                      {"latent": {0: Dim("B", min=1, max=64), 2: h, 3: w}})
    p32 = export(spec, tmp_path / "dec.onnx")
    assert b"pkg.torch.onnx.stack_trace" not in p32.read_bytes()  # no exporting machine's paths in the file
    assert max_abs_error(spec, p32) <= TOL
    assert max_abs_error(spec, p32, {"latent": torch.randn(2, 32, 3, 5)}) <= TOL


@pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="default model set missing")
@pytest.mark.parametrize("name", ["vae_encoder", "vae_decoder"])
def test_shipped_vae_fp16_close_to_fp32(name):
    rng = np.random.default_rng(0)
    feed = ({"image": rng.random((1, 3, 48, 64), np.float32)} if name == "vae_encoder"
            else {"latent": rng.standard_normal((1, 32, 6, 8), np.float32)})
    a = ort_session(DEFAULT / f"{name}.onnx").run(None, feed)[0]
    b = ort_session(DEFAULT / f"{name}_fp16.onnx").run(None, feed)[0]
    print(f"{name} fp16 vs fp32 max abs error {np.abs(a - b).max():.2e}")
    assert np.abs(a - b).max() < 2e-2


@pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file() or not CHECKPOINT.is_file(),
                    reason="default model set or UNet checkpoint missing")
def test_shipped_unet_matches_checkpoint():
    from tgvc_export.train_unet import load_trained

    net, record = load_trained(CHECKPOINT)
    g = torch.Generator().manual_seed(1)
    feed = {"sample": torch.randn(1, 6, 32, 9, 11, generator=g), "timestep": torch.tensor([250.0]),
            "cond": torch.randn(1, 6, 65, 9, 11, generator=g)}
    with torch.no_grad():
        ref = net(*feed.values()).numpy()
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    entry = manifest["models"]["unet"]
    got = ort_session(DEFAULT / entry["file"]).run(None, {k: v.numpy() for k, v in feed.items()})[0]
    assert np.abs(got - ref).max() <= TOL
    if "fp16" in entry.get("variants", {}):
        got16 = ort_session(DEFAULT / entry["variants"]["fp16"]["file"]).run(
            None, {k: v.numpy() for k, v in feed.items()})[0]
        print(f"unet fp16 max abs error {np.abs(got16 - ref).max():.2e}")
        assert np.abs(got16 - ref).max() < 0.05
    assert manifest["latent_mean"] == pytest.approx(record["latent_mean"], abs=1e-5)


@pytest.mark.skipif(not (DEFAULT / "tracker.onnx").is_file(), reason="default tracker missing")
def test_shipped_tracker_matches_torch():
    from tgvc_export.tracker import build_tracker

    g = torch.Generator().manual_seed(3)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 64, 80, generator=g), 3, 1, 1)
    frames = torch.stack([torch.roll(base, (t, 2 * t), (2, 3)) for t in range(4)], dim=1)
    queries = torch.rand(1, 7, 2, generator=g) * 40 + 12
    with torch.no_grad():
        tracks, vis = build_tracker()(frames, queries)
    got = ort_session(DEFAULT / "tracker.onnx").run(None, {"frames": frames.numpy(), "queries": queries.numpy()})
    visible = vis.numpy()[0] > 0.5  # lost points may drift anywhere: compare tracked ones only
    assert visible[-1].sum() >= 3
    assert np.abs(got[0][0] - tracks.numpy()[0])[visible].max() <= TOL
    assert np.array_equal(got[1][0] > 0.5, visible)


@pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="default model set missing")
def test_manifest_pins_every_file():
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["latent_channels"] == 32
    assert len(manifest["latent_mean"]) == 32 and len(manifest["latent_std"]) == 32
    assert set(manifest["models"]) == {"vae_encoder", "vae_decoder", "unet", "tracker", "interpolator"}
    sizes = {}
    for key, entry in manifest["models"].items():
        files = [entry] + list(entry.get("variants", {}).values())
        for f in files:
            assert sha256_file(DEFAULT / f["file"]) == f["sha256"]
            sizes[key] = sizes.get(key, 0) + (DEFAULT / f["file"]).stat().st_size
        assert entry.get("max_abs_error_vs_torch", 0.0) <= TOL
    assert sum(v for k, v in sizes.items() if k != "interpolator") <= 40 * 2 ** 20  # the diffusion path's four
    assert sizes["interpolator"] <= 36 * 2 ** 20  # RIFE v4 fp32 + fp16 (about 23 + 12 MB)
    assert (DEFAULT / "LICENSE-taesd.txt").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TGVC_SLOW"), reason="slow (~50 s, 1.5 GB): set TGVC_SLOW=1")
def test_large_unet_exports_with_external_data(tmp_path):
    import onnx
    from tgvc_export.export_onnx import export
    from tgvc_export.specs import unet_spec

    torch.manual_seed(0)
    net = build_unet("large").eval()
    path = export(unet_spec(net, frames=2, h=8, w=8), tmp_path / "unet.onnx", external_data=True)
    assert (tmp_path / "unet.onnx.data").stat().st_size > 1e9
    onnx.checker.check_model(str(path))


def test_guided_ifnet_steering_off_is_plain_ifnet_and_guidance_pins_the_flow():
    """Random weights: zero steering inputs give IFNet's own output; the flow guidance puts the final
    flow onto the tracks' displacements at their positions (what the runtime's graph is built from)."""
    from tgvc_export.ifnet import GuidedIFNet, IFNet, sample_at
    from tgvc_export.interpolator_export import example_inputs

    torch.manual_seed(0)
    net = IFNet().eval()
    guided = GuidedIFNet(net).eval()
    x = example_inputs(2, 64, 128, 3)
    off = dict(x, init_weight=torch.zeros_like(x["init_weight"]), guide=torch.tensor([6.0, 0.02, 0.0]))
    with torch.no_grad():
        frame, flow, _ = guided(*off.values())
        plain_frame, plain_flow = net(x["img0"], x["img1"], x["timestep"])
        assert torch.allclose(frame, plain_frame.clamp(0, 1), atol=1e-6)
        assert torch.allclose(flow, plain_flow, atol=1e-5)
        on = dict(off, track_weight=torch.ones_like(x["track_weight"]), guide=torch.tensor([6.0, 0.001, 1.0]))
        _, flow, _ = guided(*on.values())
        miss = (sample_at(flow, x["track_xy"]) - x["track_flow"]).abs().max()
    assert miss < 0.5  # pixels; the tracks are a few pixels apart at most by chance, so not exactly 0
