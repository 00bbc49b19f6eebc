"""ColorVideoVDP (JOD) of a decoded clip, in process or in a helper Python.

Support, in order:
1. ``pycvvdp`` importable here (``pip install tgvc-rt[eval]``): run in process.
2. env var ``TGVC_CVVDP_PYTHON`` names a Python that has pycvvdp (e.g. a separate venv whose torch
   differs from this one): run ``cvvdp_worker.py`` there as a plain script and parse its JSON line.
3. neither: return ``{"cvvdp_jod": None, "cvvdp_note": "..."}`` (skipped, not an error).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from . import cvvdp_worker

ENV_PYTHON = "TGVC_CVVDP_PYTHON"


@dataclass(frozen=True)
class CvvdpOptions:
    display: str = "standard_4k"  # pycvvdp display model name
    python: str | None = None      # helper interpreter; None = $TGVC_CVVDP_PYTHON
    timeout_s: float = 1800.0      # give up on the helper process after this long
    threads: int = 1               # torch CPU threads (1: no OpenMP spin-waiting on a busy machine)


def cvvdp_in_process() -> bool:
    """Whether pycvvdp can be imported by this interpreter (without importing it)."""
    return importlib.util.find_spec("pycvvdp") is not None


def cvvdp_jod(ref_path: str, test_path: str, fps: float | None = None,
              opts: CvvdpOptions = CvvdpOptions()) -> dict:
    """JOD of test against ref (y4m files). Keys: cvvdp_jod (None if unavailable), cvvdp_s, cvvdp_how
    ("in-process" / helper path) and cvvdp_note when skipped."""
    if cvvdp_in_process():
        try:
            ref, test = cvvdp_worker.read_y4m_planes(ref_path), cvvdp_worker.read_y4m_planes(test_path)
        except cvvdp_worker.Y4mReadError as exc:
            raise InputError(str(exc)) from None
        out = cvvdp_worker.run_cvvdp(cvvdp_worker.yuv420_to_rgb(ref), cvvdp_worker.yuv420_to_rgb(test),
                                     fps or ref.fps, opts.display, opts.threads)
        return {"cvvdp_jod": out["jod"], "cvvdp_s": out["seconds"], "cvvdp_how": "in-process",
                "cvvdp_display": opts.display}
    python = opts.python or os.environ.get(ENV_PYTHON)
    if not python:
        return {"cvvdp_jod": None, "cvvdp_note": f"skipped: pycvvdp not importable and ${ENV_PYTHON} unset"}
    if not Path(python).exists():
        return {"cvvdp_jod": None, "cvvdp_note": f"skipped: ${ENV_PYTHON}={python} does not exist"}
    # fps 0 tells the worker to take the frame rate from the reference file's header
    cmd = [python, cvvdp_worker.__file__, str(ref_path), str(test_path), repr(float(fps or 0)), opts.display,
           str(opts.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout_s,
                              env={**os.environ, "PYTHONWARNINGS": "ignore",
                                   "OMP_NUM_THREADS": str(opts.threads), "OMP_WAIT_POLICY": "PASSIVE"})
    except subprocess.TimeoutExpired:
        return {"cvvdp_jod": None, "cvvdp_note": f"failed: helper ran past {opts.timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    res = json.loads(lines[-1]) if lines else {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    if "error" in res:
        return {"cvvdp_jod": None, "cvvdp_note": f"failed: {res['error']}"}
    return {"cvvdp_jod": res["jod"], "cvvdp_s": res["seconds"], "cvvdp_how": python,
            "cvvdp_display": res.get("display", opts.display)}


if __name__ == "__main__":  # pragma: no cover - debugging aid
    print(cvvdp_jod(sys.argv[1], sys.argv[2]))
