"""TAEF2: the tiny autoencoder for the FLUX.2 latent space (32 channels, 1/8 resolution).

Our own definition following the layout of ``taesd.py`` (madebyollin/taesd @ 5cccb12, MIT licence,
see LICENSE-taesd.txt): the TAESD encoder/decoder with 32 latent channels plus the
``use_midblock_gn`` branch (``x + pool(x)`` before the convs) in the three blocks at the lowest
resolution. State dicts load by name with ``strict=True``.

Conventions: the encoder takes RGB in [0, 1]; the decoder returns RGB, clamped to [0, 1] by
``DecoderWrapper`` (the exported graph), raw in ``Decoder``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .paths import WEIGHTS_DIR  # default location of taef2_{encoder,decoder}.pth

LATENT_CHANNELS = 32


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, n_in: int, n_out: int, use_midblock_gn: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(),
                                  conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if use_midblock_gn:
            n_gn = n_in * 4
            self.pool = nn.Sequential(nn.Conv2d(n_in, n_gn, 1, bias=False), nn.GroupNorm(4, n_gn),
                                      nn.ReLU(), nn.Conv2d(n_gn, n_in, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def Encoder(latent_channels: int = LATENT_CHANNELS, use_midblock_gn: bool = True) -> nn.Sequential:
    mb = dict(use_midblock_gn=use_midblock_gn)
    return nn.Sequential(
        conv(3, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64, **mb), Block(64, 64, **mb), Block(64, 64, **mb),
        conv(64, latent_channels),
    )


def Decoder(latent_channels: int = LATENT_CHANNELS, use_midblock_gn: bool = True) -> nn.Sequential:
    mb = dict(use_midblock_gn=use_midblock_gn)
    return nn.Sequential(
        Clamp(), conv(latent_channels, 64), nn.ReLU(),
        Block(64, 64, **mb), Block(64, 64, **mb), Block(64, 64, **mb),
        nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), conv(64, 64, bias=False),
        Block(64, 64), conv(64, 3),
    )


class DecoderWrapper(nn.Module):
    """The exported decoder: raw latent -> RGB clamped to [0, 1]."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent).clamp(0.0, 1.0)


def _load(module: nn.Module, path: Path) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()


def load_taef2(weights_dir: str | Path = WEIGHTS_DIR) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) with the TAEF2 weights loaded by name, float32, eval mode."""
    d = Path(weights_dir)
    return _load(Encoder(), d / "taef2_encoder.pth"), _load(Decoder(), d / "taef2_decoder.pth")
