"""Where the benchmarks find the shared data: clips (``videos/``) and model weights (``models/``).

The data folder is ``$TGVC_DATA`` when that is set, else ``<repository root>/../shared/data``.
Every ``--clips-dir`` / clip default of the scripts in this folder comes from here.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``$TGVC_DATA`` if set (and non-empty), else ``<repository root>/../shared/data``."""
    env = os.environ.get("TGVC_DATA", "")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


VIDEOS_DIR = data_dir() / "videos"  # <clip>.y4m
MODELS_DIR = data_dir() / "models"  # taef2_{encoder,decoder}.pth and LICENSE-taesd.txt
