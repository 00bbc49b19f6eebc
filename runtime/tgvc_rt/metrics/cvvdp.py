"""ColorVideoVDP (JOD) of a decoded clip, in process or in a helper Python.

Support, in order:
1. ``pycvvdp`` importable here (``pip install tgvc-rt[eval]``): run in process.
2. env var ``TGVC_CVVDP_PYTHON`` names a Python that has pycvvdp (e.g. a separate venv whose torch
   differs from this one): check both files' headers here, run ``cvvdp_worker.py`` there as a plain
   script and parse its JSON line.
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
from ..io.y4m import check_420, read_y4m_header, read_y4m_planes
from ..types import VideoMeta
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
        ref, test = read_y4m_planes(ref_path), read_y4m_planes(test_path)
        out = cvvdp_worker.run_cvvdp(cvvdp_worker.yuv420_to_rgb(ref.y, ref.u, ref.v),
                                     cvvdp_worker.yuv420_to_rgb(test.y, test.u, test.v),
                                     fps or ref.fps, opts.display, opts.threads)
        return {"cvvdp_jod": out["jod"], "cvvdp_s": out["seconds"], "cvvdp_how": "in-process",
                "cvvdp_display": opts.display}
    python = opts.python or os.environ.get(ENV_PYTHON)
    if not python:
        return {"cvvdp_jod": None, "cvvdp_note": f"skipped: pycvvdp not importable and ${ENV_PYTHON} unset"}
    if not Path(python).exists():
        return {"cvvdp_jod": None, "cvvdp_note": f"skipped: ${ENV_PYTHON}={python} does not exist"}
    meta = _checked_meta(ref_path, test_path)  # the worker trusts what is checked here
    cmd = [python, cvvdp_worker.__file__, str(ref_path), str(test_path), str(meta.width), str(meta.height),
           repr(float(fps or meta.fps)), opts.display, str(opts.threads)]
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


def _checked_meta(ref_path: str, test_path: str) -> VideoMeta:
    """The reference's size and rate; InputError unless both files are 8-bit 4:2:0 y4m of one size."""
    ref, test = read_y4m_header(ref_path), read_y4m_header(test_path)
    check_420(ref, ref_path)
    check_420(test, test_path)
    if (ref.meta.width, ref.meta.height) != (test.meta.width, test.meta.height):
        raise InputError(f"{test_path} is {test.meta.width}x{test.meta.height} but reference {ref_path} is "
                         f"{ref.meta.width}x{ref.meta.height}")
    return ref.meta


if __name__ == "__main__":  # pragma: no cover - debugging aid
    print(cvvdp_jod(sys.argv[1], sys.argv[2]))
