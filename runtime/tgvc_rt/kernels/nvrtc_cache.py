"""Run-time compilation of the CUDA kernel sources with NVRTC, cached on disk.

Any one-file kernel source of this directory (``guidance.cu`` by default, ``image_input.cu``,
``flow_upsample.cu``, ``frame_output.cu``, ``latent_affine.cu``, ``gaussian_blur.cu``,
``residual_output.cu``; ``source_path`` of ``cached_compile``) compiles here.

The cubin (or PTX, for a GPU newer than the installed NVRTC knows) is stored as
``<cache>/<sha256(source, arch, nvrtc version, options)>.<cubin|ptx>`` where ``<cache>`` is
``$TGVC_KERNEL_CACHE`` or ``~/.cache/tgvc-rt/kernels``. Nothing here needs a GPU: compiling only
needs the NVRTC library (``cuda-python`` / ``cuda-bindings`` plus ``nvidia-cuda-nvrtc``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tgvc_rt.errors import TgvcError

KERNEL_DIR = Path(__file__).resolve().parent
GUIDANCE_SOURCE = KERNEL_DIR / "guidance.cu"
HEADERS = (KERNEL_DIR / "tgvc_kernel.cuh",)  # what the sources may #include, handed to NVRTC by name


class KernelBuildError(TgvcError):
    """NVRTC is missing or rejected the kernel source."""


@dataclass(frozen=True)
class CompiledKernel:
    image: bytes  # cubin, or NUL-terminated PTX text when is_ptx
    is_ptx: bool
    arch: str  # "sm_90" or "compute_90"
    path: Path  # where it is cached


def cache_dir() -> Path:
    env = os.environ.get("TGVC_KERNEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tgvc-rt" / "kernels"


def kernel_source(path: Path = GUIDANCE_SOURCE) -> str:
    return path.read_text()


def import_nvrtc():
    """The NVRTC binding of cuda-python (new ``cuda.bindings`` or old ``cuda`` layout)."""
    try:
        from cuda.bindings import nvrtc  # cuda-bindings >= 12.6
        return nvrtc
    except ImportError:
        pass
    try:
        from cuda import nvrtc  # type: ignore[no-redef]  # cuda-python < 12.6
        return nvrtc
    except ImportError as err:
        raise KernelBuildError("NVRTC unavailable: install cuda-python (pip install 'tgvc-rt[gpu]')") from err


def _check(result, what: str):
    err = result[0]
    if int(err) != 0:
        raise KernelBuildError(f"{what} failed: {err}")
    return result[1:] if len(result) > 2 else (result[1] if len(result) == 2 else None)


def nvrtc_version(nvrtc=None) -> tuple[int, int]:
    nvrtc = nvrtc or import_nvrtc()
    try:
        major, minor = _check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    except Exception as err:  # library not loadable
        raise KernelBuildError(f"NVRTC library not loadable: {err}") from err
    return int(major), int(minor)


def supported_archs(nvrtc=None) -> list[int]:
    """Compute capabilities (e.g. 90) this NVRTC can emit cubins for."""
    nvrtc = nvrtc or import_nvrtc()
    try:
        archs = _check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")
        return sorted(int(a) for a in archs)
    except (AttributeError, KernelBuildError):
        return [75, 80, 86, 87, 89, 90]


def pick_target(cc: int, nvrtc=None) -> tuple[str, bool]:
    """(arch option, is_ptx): a cubin for ``cc`` if NVRTC knows it, else PTX of the newest."""
    archs = supported_archs(nvrtc)
    if cc in archs:
        return f"sm_{cc}", False
    older = [a for a in archs if a <= cc]
    if not older:
        raise KernelBuildError(f"NVRTC supports no architecture <= sm_{cc} (has {archs})")
    return f"compute_{older[-1]}", True


def _log(nvrtc, prog) -> str:
    try:
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        buf = b" " * int(size)
        nvrtc.nvrtcGetProgramLog(prog, buf)
        return buf.decode(errors="replace").strip("\x00 \n")
    except Exception:  # pragma: no cover - best effort
        return ""


def compile_source(source: str, arch: str, options: tuple[str, ...] = (), name: str = GUIDANCE_SOURCE.name,
                   nvrtc=None) -> bytes:
    """NVRTC-compile ``source`` for ``arch`` ("sm_90" -> cubin, "compute_90" -> PTX)."""
    nvrtc = nvrtc or import_nvrtc()
    headers = {h.name: h.read_text().encode() for h in HEADERS}
    prog = _check(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), len(headers), list(headers.values()),
                                           [n.encode() for n in headers]), "nvrtcCreateProgram")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17", b"-default-device"]
        opts += [o.encode() for o in options]
        err = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)[0]
        if int(err) != 0:
            raise KernelBuildError(f"NVRTC could not compile {name} for {arch}: {_log(nvrtc, prog)}")
        if arch.startswith("sm_"):
            size = _check(nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
            buf = b" " * int(size)
            _check((nvrtc.nvrtcGetCUBIN(prog, buf)[0], None), "nvrtcGetCUBIN")
        else:
            size = _check(nvrtc.nvrtcGetPTXSize(prog), "ptx size")
            buf = b" " * int(size)
            _check((nvrtc.nvrtcGetPTX(prog, buf)[0], None), "nvrtcGetPTX")
        return bytes(buf)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def cached_compile(arch: str, options: tuple[str, ...] = (), source_path: Path = GUIDANCE_SOURCE,
                   directory: Path | None = None) -> CompiledKernel:
    """Compile ``source_path`` once per (source, arch, NVRTC version, options); later calls read disk."""
    nvrtc = import_nvrtc()
    source = kernel_source(source_path)
    ver = nvrtc_version(nvrtc)
    headers = [h.read_text() for h in HEADERS]
    key = hashlib.sha256("\0".join([source, *headers, arch, f"{ver[0]}.{ver[1]}", *options]).encode()).hexdigest()
    is_ptx = not arch.startswith("sm_")
    directory = directory or cache_dir()
    path = directory / f"{key}.{'ptx' if is_ptx else 'cubin'}"
    if path.is_file():
        return CompiledKernel(path.read_bytes(), is_ptx, arch, path)
    image = compile_source(source, arch, options, source_path.name, nvrtc)
    try:  # atomic write; a read-only home only costs a recompilation next time
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(image)
        os.replace(tmp, path)
    except OSError:
        pass
    return CompiledKernel(image, is_ptx, arch, path)
