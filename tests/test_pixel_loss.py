"""export/tgvc_export/pixel_loss.py: the pixel loss of the UNet fine-tune (needs torch, skipped without)."""
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

from tgvc_export.pixel_loss import PixelLoss  # noqa: E402
from tgvc_export.taef2 import Decoder  # noqa: E402


def _loss(crop=3, frames=2):
    torch.manual_seed(0)
    return PixelLoss(Decoder(), torch.zeros(32), torch.ones(32), crop=crop, frames=frames)


def test_zero_for_equal_latents_and_gradient_reaches_only_the_prediction():
    loss = _loss()
    truth = torch.randn(2, 5, 32, 4, 5)
    pred = (truth + 0.5 * torch.randn_like(truth)).requires_grad_(True)
    g = torch.Generator().manual_seed(1)
    assert loss(truth, truth, torch.Generator().manual_seed(1)).item() == 0.0
    value = loss(pred, truth, g)
    value.backward()
    assert value.item() > 0 and pred.grad.abs().sum() > 0
    assert not pred.grad[:, [0, -1]].any()  # keyframes are never decoded
    assert all(p.grad is None for p in loss.decoder.parameters())  # decoder frozen


def test_picks_in_between_frames_and_a_crop_inside_the_latent():
    loss = _loss(crop=3, frames=2)
    x = torch.zeros(3, 4, 32, 5, 6)
    for seed in range(10):
        bi, fi, ys, xs = loss.pick(x, torch.Generator().manual_seed(seed))
        assert fi.shape == (3, 2) and ((fi >= 1) & (fi <= 2)).all()
        assert all(len(set(row.tolist())) == 2 for row in fi)
        assert 0 <= ys.start and ys.stop <= 5 and ys.stop - ys.start == 3
        assert 0 <= xs.start and xs.stop <= 6 and xs.stop - xs.start == 3
