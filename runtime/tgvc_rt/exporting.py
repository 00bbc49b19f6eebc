"""`tgvc-rt export`: hands over to the torch-side exporter in the source tree's export/ folder.

The runtime never imports torch; this only checks that the export tooling is present and runs it as
``python -m tgvc_export export --set NAME [--out DIR]`` in a child process.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .errors import TgvcError


def find_export_dir() -> Path:
    """export/ beside runtime/ in a source checkout, or $TGVC_EXPORT_DIR."""
    env = os.environ.get("TGVC_EXPORT_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "export")
    for c in candidates:
        if (c / "tgvc_export").is_dir():
            return c
    raise TgvcError("export tooling not found: run from a source checkout (export/ folder) or set TGVC_EXPORT_DIR")


def run_export(set_name: str, out: Path | None) -> None:
    export_dir = find_export_dir()
    if importlib.util.find_spec("torch") is None:
        raise TgvcError("export needs torch: pip install torch==2.13.0 && pip install -e '.[export]'")
    cmd = [sys.executable, "-m", "tgvc_export", "export", "--set", set_name]
    if out is not None:
        cmd += ["--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(export_dir), os.environ.get("PYTHONPATH")])))
    if subprocess.run(cmd, env=env).returncode != 0:
        raise TgvcError(f"export of model set {set_name!r} failed (see the messages above)")
