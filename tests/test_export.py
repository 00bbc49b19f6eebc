"""export/ (torch) against the shipped ONNX model set; skipped cleanly without torch.

Fast by default: only a random-weight VAE decoder is exported here; the shipped UNet and tracker are
compared with their torch definitions; the large UNet export is marked slow.
"""
from __future__ import annotations

import json
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


def test_vae_decoder_export_fp32_fp16(tmp_path):
    from tgvc_export.export_onnx import ExportSpec, export, max_abs_error
    from tgvc_export.taef2 import Decoder, DecoderWrapper
    from torch.export import Dim

    torch.manual_seed(0)
    dec = DecoderWrapper(Decoder()).eval()
    h, w = Dim("h", min=1, max=512), Dim("w", min=1, max=512)
    spec = ExportSpec("vae_decoder", dec, {"latent": torch.randn(1, 32, 4, 6)}, ["image"],
                      {"latent": {0: Dim("B", min=1, max=64), 2: h, 3: w}})
    other = {"latent": torch.randn(2, 32, 3, 5)}
    p32 = export(spec, tmp_path / "dec.onnx")
    assert max_abs_error(spec, p32) <= TOL and max_abs_error(spec, p32, other) <= TOL
    p16 = export(spec, tmp_path / "dec16.onnx", fp16=True)
    err16 = max_abs_error(spec, p16, other)
    print(f"vae_decoder fp16 max abs error {err16:.2e}")
    assert err16 < 2e-2


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
    assert np.abs(got[0] - tracks.numpy()).max() <= TOL
    assert np.abs(got[1] - vis.numpy()).max() <= TOL


@pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="default model set missing")
def test_manifest_pins_every_file():
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["latent_channels"] == 32
    assert len(manifest["latent_mean"]) == 32 and len(manifest["latent_std"]) == 32
    assert set(manifest["models"]) == {"vae_encoder", "vae_decoder", "unet", "tracker"}
    total = 0
    for entry in manifest["models"].values():
        files = [entry] + list(entry.get("variants", {}).values())
        for f in files:
            assert sha256_file(DEFAULT / f["file"]) == f["sha256"]
            total += (DEFAULT / f["file"]).stat().st_size
        assert entry.get("max_abs_error_vs_torch", 0.0) <= TOL
    assert total <= 40 * 2 ** 20
    assert (DEFAULT / "LICENSE-taesd.txt").is_file()


@pytest.mark.slow
def test_large_unet_exports_with_external_data(tmp_path):
    import onnx
    from tgvc_export.export_onnx import export
    from tgvc_export.specs import unet_spec

    torch.manual_seed(0)
    net = build_unet("large").eval()
    path = export(unet_spec(net, frames=2, h=8, w=8), tmp_path / "unet.onnx", external_data=True)
    assert (tmp_path / "unet.onnx.data").stat().st_size > 1e9
    onnx.checker.check_model(str(path))
