"""export/tgvc_export/train_refine.py and synthetic_clips.py: the refiner's training path matches the decoder's
output path, and synthetic clips are deterministic (needs torch, skipped without; no shared data)."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

from tgvc_export.interp_data import InterpClip  # noqa: E402
from tgvc_export.synthetic_clips import SynthConfig, make_clip  # noqa: E402
from tgvc_export.taef2 import Decoder  # noqa: E402
from tgvc_export.train_refine import (Refiner, RefineConfig, blur, gaussian_kernel, sample_window,  # noqa: E402
                                      windows_of)
from tgvc_export.unet import build_unet  # noqa: E402


def test_blur_is_the_decoders_opencv_gaussian():
    rng = np.random.default_rng(0)
    img = rng.random((40, 48), dtype=np.float32)
    ref = cv2.GaussianBlur(img, (0, 0), 4.0)
    got = blur(torch.from_numpy(img)[None, None], gaussian_kernel(4.0))[0, 0].numpy()
    assert np.abs(got - ref).max() < 1e-5


def test_refiner_with_a_zero_output_unet_returns_the_interpolated_pixels():
    torch.manual_seed(0)
    unet = build_unet("default", warp_residual=True).eval()
    torch.nn.init.zeros_(unet.conv_out.weight)
    torch.nn.init.zeros_(unet.conv_out.bias)
    abar = unet.sqrt_abar.float() ** 2  # the schedule inside the graph (training uses the same table)
    refiner = Refiner(Decoder().eval(), np.zeros(32, np.float32), np.ones(32, np.float32), abar, 4.0)
    z = torch.randn(2, 5, 32, 4, 4)
    interp = torch.rand(2, 2, 3, 32, 32)
    with torch.no_grad():
        out = refiner(unet, z, torch.tensor([120, 199]), torch.randn_like(z), interp, torch.tensor([1, 3]))
    assert torch.allclose(out, interp, atol=1e-4)


def _clip(n=9, h=48, w=64, groups=((0, 4), (4, 8))):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    return InterpClip("c", 0.005, frames[::-1].copy(), frames, rng.standard_normal((n, 32, h // 8, w // 8),
                                                                                      dtype=np.float32),
                      np.array(groups))


def test_windows_and_crops_line_up_latents_and_pixels():
    clip = _clip()
    assert windows_of([clip], 16) == [(0, 0, 4), (0, 4, 8)]
    assert windows_of([clip], 3) == [(0, 0, 2), (0, 4, 6)]  # a group's first decoder window
    cfg = RefineConfig(crop=4, frames=2)
    z, ip, tp, pick = sample_window(np.random.default_rng(0), [clip], (0, 0, 4), 3, cfg,
                                    np.zeros(32, np.float32), np.ones(32, np.float32))
    assert z.shape == (3, 5, 32, 4, 4) and ip.shape == tp.shape == (3, 2, 3, 32, 32)
    assert ((pick >= 1) & (pick <= 3)).all()


def test_synthetic_clips_are_seeded_and_move():
    rng = np.random.default_rng(0)
    stills = [("a", rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)),
              ("b", rng.integers(0, 255, (200, 260, 3), dtype=np.uint8))]
    stills = [(n, cv2.GaussianBlur(s, (0, 0), 2)) for n, s in stills]
    cfg = SynthConfig(frames=6)
    a = make_clip(np.random.default_rng([0, 1]), stills, cfg)
    b = make_clip(np.random.default_rng([0, 1]), stills, cfg)
    assert a.dtype == np.uint8 and a.shape[0] == 6 and a.shape[3] == 3
    assert np.array_equal(a, b)
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() > 1.0


def test_training_schedule_is_the_graphs():
    from tgvc_export.schedule import alphas_cumprod

    unet = build_unet("default", warp_residual=True)
    assert np.allclose(alphas_cumprod(), unet.sqrt_abar.double().numpy() ** 2, atol=1e-6)
