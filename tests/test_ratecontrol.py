"""Rate control lands within 10% of the target on a synthetic clip (textured object moving over a
textured, slowly panning background), for every keyframe codec family and two rates."""
import cv2
import numpy as np
import pytest

from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video
from tgvc_rt.encoder.ratecontrol import RateOptions, fit_tracks, target_bits
from tgvc_rt.errors import OptionError
from tgvc_rt.types import Video, VideoMeta


def synthetic_clip(n=24, h=144, w=176, seed=3) -> Video:
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (h + 40, w + 40, 3)).astype(np.float32), (0, 0), 2.0)
    obj = cv2.GaussianBlur(rng.integers(0, 255, (40, 40, 3)).astype(np.float32), (0, 0), 1.0)
    frames = []
    for i in range(n):
        frame = bg[i // 2: i // 2 + h, 10: 10 + w].copy()
        y, x = 40 + i, 30 + 3 * i
        frame[y:y + 40, x:x + 40] = obj
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return Video(np.stack(frames), VideoMeta(w, h, 30, 1))


@pytest.mark.parametrize("codec", ["av1-seq", "av1"])
@pytest.mark.parametrize("bpp", [0.01, 0.03])
def test_rate_within_ten_percent(codec, bpp):
    video = synthetic_clip()
    result = encode_video(video, EncodeOptions(rate=RateOptions(bpp=bpp), keyframe_codec=codec, seed=1))
    achieved = result.bpp()
    assert abs(achieved / bpp - 1) <= 0.10, (codec, bpp, achieved)


def test_kbps_target_and_bad_targets():
    video = synthetic_clip()
    bits = target_bits(RateOptions(kbps=20), 176, 144, 24, 30.0)
    assert bits == pytest.approx(20_000 * 24 / 30)
    result = encode_video(video, EncodeOptions(rate=RateOptions(kbps=20), seed=1))
    assert abs(len(result.data) * 8 / bits - 1) <= 0.10
    for bad in (RateOptions(bpp=-1), RateOptions(bpp=50), RateOptions(kbps=0), RateOptions(track_share=1.5)):
        with pytest.raises(OptionError):
            target_bits(bad, 176, 144, 24, 30.0)


def test_fit_tracks_is_largest_that_fits():
    size = lambda n: 10 + 7 * n  # noqa: E731
    assert fit_tracks(size, 100, 10 ** 6) == 100
    assert fit_tracks(size, 100, 10 + 7 * 42) == 42
    assert fit_tracks(size, 100, 5) == 0
