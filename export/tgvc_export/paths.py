"""Where the export code finds the shared data, and how it records paths.

The data folder is ``$TGVC_DATA`` when that is set, else ``<repository root>/../shared/data``
(the same rule as ``benchmarks/paths.py``): clips in ``videos/<clip>.y4m``, the TAEF2 weights
``taef2_{encoder,decoder}.pth`` and ``LICENSE-taesd.txt`` in ``models/``.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """``$TGVC_DATA`` if set (and non-empty), else ``<repository root>/../shared/data``."""
    env = os.environ.get("TGVC_DATA", "")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


VIDEO_DIR = data_dir() / "videos"
WEIGHTS_DIR = data_dir() / "models"


def recorded_path(path: str | Path) -> str:
    """``path`` as written into training records: relative to the repository root when inside it."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)
