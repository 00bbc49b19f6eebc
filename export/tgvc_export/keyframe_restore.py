"""Keyframe restoration experiment: a small residual CNN applied to the
decoded (downscaled-coded, bicubic-upsampled) keyframe, given the payload's scale factor.

Shared by ``keyframe_restore_data.py`` (training pairs), ``train_keyframe_restore.py`` (training,
ONNX export) and ``benchmarks/keyframe_restore.py`` (evaluation on real streams' keyframes).

Network: pixel-unshuffle by ``unshuffle`` (2: RGB -> 12 channels at half size) + a constant channel holding the
scale factor, a 3x3 conv head, ``blocks`` residual blocks (conv-ReLU-conv + skip) of ``channels``
channels, a 3x3 conv tail to 12 channels, pixel-shuffle back, added to the input (zero-initialised
tail: the untrained net is the identity). Input/output RGB in [0, 1]; needs even sizes (the wrapper
pads).
"""
from __future__ import annotations

import numpy as np

# BT.601 limited-range luma of RGB in [0, 1] (OpenCV's RGB2YUV_I420 convention), without the offset
Y_WEIGHTS = (0.256788, 0.504129, 0.0979059)


def keyframes_of_stream(data: bytes):
    """Decoded keyframes of a .tgv stream: list of (frame index, RGB uint8 image, scale factor)."""
    from tgvc_rt.bitstream import read_bitstream
    from tgvc_rt.codec.keyframe_formats import KeyframeReader
    from tgvc_rt.codec.keyframe_image import SCALES

    bs = read_bitstream(data)
    h = bs.header
    reader = KeyframeReader(h.keyframe_codec, h.width, h.height)
    out = []
    for k in bs.keyframe_indices():
        image = reader.decode(bs.keyframes[k])
        seq = reader._sequence
        if seq is not None:
            level = seq._level
        else:
            level = bs.keyframes[k][0] & 0x0F
        out.append((k, image, SCALES[level]))
    return out


def luma(rgb: np.ndarray) -> np.ndarray:
    """Luma plane exactly as the decoder's y4m writer makes it (tgvc_rt.io.y4m.rgb_to_i420)."""
    from tgvc_rt.io.y4m import rgb_to_i420

    return rgb_to_i420(rgb)[0]


def build_model(channels: int = 32, blocks: int = 4, unshuffle: int = 2):
    import torch
    from torch import nn

    class ResBlock(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.a = nn.Conv2d(c, c, 3, padding=1)
            self.b = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return x + self.b(torch.relu(self.a(x)))

    class KeyframeRestoreNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.channels, self.blocks, self.unshuffle = channels, blocks, unshuffle
            self.down, self.up = nn.PixelUnshuffle(unshuffle), nn.PixelShuffle(unshuffle)
            self.head = nn.Conv2d(3 * unshuffle ** 2 + 1, channels, 3, padding=1)
            self.body = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
            self.tail = nn.Conv2d(channels, 3 * unshuffle ** 2, 3, padding=1)
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

        def forward(self, x, scale):
            """x: [N, 3, H, W] RGB in [0, 1] (H, W multiples of ``unshuffle``); scale: [N] or [N, 1, 1, 1] coded scale factor."""
            d = self.down(x)
            s = scale.reshape(-1, 1, 1, 1) * torch.ones_like(d[:, :1])
            f = torch.relu(self.head(torch.cat([d, s], 1)))
            return x + self.up(self.tail(self.body(f)))

    return KeyframeRestoreNet()


def restore_numpy(run, image: np.ndarray, scale: float, multiple: int = 4) -> np.ndarray:
    """Apply a restoration function ``run(x float32 [1,3,H,W], scale float32 [1]) -> [1,3,H,W]`` to an
    RGB uint8 image (padded by edge replication to a multiple of ``multiple``, then cropped)."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    x = np.pad(x, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="edge")
    y = run(np.ascontiguousarray(x.transpose(2, 0, 1)[None]), np.array([scale], np.float32))
    y = np.asarray(y)[0].transpose(1, 2, 0)[:h, :w]
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)
