"""The compile check every CUDA kernel's tests share: a syntax error in a .cu source fails on any machine,
GPU or not (nvcc where installed, else NVRTC, else the check skips)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tgvc_rt.kernels import nvrtc_cache


def nvcc() -> str | None:
    return shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc")
                                         if Path(p).is_file()), None)


def check_compiles(src: Path, tmp_path: Path, flags=("-cubin", "-ptx", "-c")) -> None:
    """nvcc ``flags`` (-c also builds a file's C++ host launcher) for sm_75; without nvcc an NVRTC build."""
    exe = nvcc()
    if exe:
        for flag in flags:
            r = subprocess.run([exe, "-arch=sm_75", flag, "-o", str(tmp_path / f"k{flag}"), str(src)],
                               capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, r.stderr[-3000:]
        return
    try:
        nvrtc_cache.nvrtc_version()
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"neither nvcc nor NVRTC available: {err}")
    nvrtc_cache.cached_compile("sm_75", source_path=src, directory=tmp_path)
