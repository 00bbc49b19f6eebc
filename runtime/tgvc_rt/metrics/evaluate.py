"""One call that measures a decoded clip against its source: PSNR, MS-SSIM, VMAF, ColorVideoVDP, rate.

Both clips are read as raw 8-bit 4:2:0 y4m planes (no RGB round trip): PSNR and MS-SSIM are on the
file's own Y plane, VMAF on the files themselves, ColorVideoVDP on their BT.601 RGB conversion.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import InputError, OptionError
from ..io.y4m import YuvClip, read_y4m_planes
from .cvvdp import CvvdpOptions, cvvdp_jod
from .msssim import MsssimOptions, ms_ssim, scales_that_fit
from .psnr import PsnrOptions, psnr_per_frame, psnr_yuv_per_frame
from .vmaf import VmafOptions, vmaf

ALL_METRICS = ("psnr", "msssim", "vmaf", "cvvdp")


def check_same_geometry(ref: YuvClip, test: YuvClip, ref_path: str, test_path: str) -> None:
    """InputError (one line) unless both clips have the same size and frame count."""
    if ref.size != test.size:
        raise InputError(f"{test_path} is {test.size[0]}x{test.size[1]} but reference {ref_path} is "
                         f"{ref.size[0]}x{ref.size[1]}")
    if ref.num_frames != test.num_frames:
        raise InputError(f"{test_path} has {test.num_frames} frames but reference {ref_path} has "
                         f"{ref.num_frames}")


def rate_of(num_bytes: int, width: int, height: int, frames: int, fps: float) -> dict:
    """bpp = bits / (W * H * N); kbps = bits * fps / N / 1000."""
    bits = 8 * int(num_bytes)
    return {"bytes": int(num_bytes), "bpp": bits / (width * height * frames),
            "kbps": bits * fps / frames / 1000.0}


def evaluate(ref_path: str, test_path: str, tgv_path: str | None = None,
             metrics: tuple[str, ...] | list[str] = ALL_METRICS,
             cvvdp_opts: CvvdpOptions = CvvdpOptions(), vmaf_opts: VmafOptions = VmafOptions(),
             msssim_opts: MsssimOptions = MsssimOptions(), psnr_opts: PsnrOptions = PsnrOptions()) -> dict:
    """Quality of test_path (decoded y4m) against ref_path (source y4m).

    tgv_path: the compressed file (a .tgv or any bitstream) whose size gives bpp / kbps.
    metrics: any of "psnr", "msssim", "vmaf", "cvvdp". A metric whose tool is absent is skipped with
    a note in result["notes"] (VMAF without ffmpeg, ColorVideoVDP without pycvvdp).
    """
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise OptionError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL_METRICS)}")
    ref, test = read_y4m_planes(ref_path), read_y4m_planes(test_path)
    check_same_geometry(ref, test, ref_path, test_path)
    w, h = ref.size
    out: dict = {"ref": str(ref_path), "test": str(test_path), "width": w, "height": h,
                 "frames": ref.num_frames, "fps": ref.fps, "notes": []}
    if tgv_path is not None:
        if not os.path.exists(tgv_path):
            raise InputError(f"{tgv_path}: no such file")
        out["bitstream"] = str(tgv_path)
        out.update(rate_of(os.path.getsize(tgv_path), w, h, ref.num_frames, ref.fps))
    if "psnr" in metrics:
        t0 = time.perf_counter()
        py = psnr_per_frame(ref.y, test.y, psnr_opts)
        pyuv = psnr_yuv_per_frame((ref.y, ref.u, ref.v), (test.y, test.u, test.v), psnr_opts)
        out.update(psnr_y=float(np.mean(py)), psnr_yuv=float(np.mean(pyuv)),
                   psnr_y_per_frame=[round(float(x), 3) for x in py],
                   psnr_s=time.perf_counter() - t0)
    if "msssim" in metrics:
        t0 = time.perf_counter()
        if scales_that_fit(h, w, msssim_opts) == 0:
            out["msssim_y"] = None
            out["notes"].append(f"MS-SSIM skipped: {w}x{h} is smaller than the {msssim_opts.window}px window")
        else:
            r = ms_ssim(ref.y, test.y, msssim_opts)
            out.update(msssim_y=r.mean, msssim_scales=r.scales, msssim_s=time.perf_counter() - t0)
            if r.scales < len(msssim_opts.weights):
                out["notes"].append(f"MS-SSIM on {r.scales} scales (frame too small for "
                                    f"{len(msssim_opts.weights)}), weights renormalised")
    if "vmaf" in metrics:
        try:
            out.update(vmaf(str(ref_path), str(test_path), vmaf_opts))
        except InputError as exc:
            out["vmaf"] = None
            out["notes"].append(f"VMAF skipped: {exc}")
    if "cvvdp" in metrics:
        res = cvvdp_jod(str(ref_path), str(test_path), ref.fps, cvvdp_opts)
        if res.get("cvvdp_note"):
            out["notes"].append(f"ColorVideoVDP {res.pop('cvvdp_note')}")
        out.update(res)
    return out


def _fmt(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def format_report(result: dict) -> str:
    """Human-readable multi-line summary of an evaluate() result (for the CLI)."""
    r = result
    lines = [f"{r['test']} vs {r['ref']}: {r['width']}x{r['height']}, {r['frames']} frames @ {r['fps']:g} fps"]
    if "bpp" in r:
        lines.append(f"  rate      {r['bytes']} bytes  {r['bpp']:.5f} bpp  {r['kbps']:.2f} kbps")
    if "psnr_y" in r:
        lines.append(f"  PSNR-Y    {r['psnr_y']:.3f} dB   (PSNR-YUV 6:1:1 {r['psnr_yuv']:.3f} dB, "
                     f"min frame {min(r['psnr_y_per_frame']):.2f} dB)")
    if "msssim_y" in r:
        scales = f"  ({r['msssim_scales']} scales)" if r.get("msssim_scales") else ""
        lines.append(f"  MS-SSIM-Y {_fmt(r['msssim_y'], '.5f')}{scales}")
    if "vmaf" in r:
        extra = f"  (min {r['vmaf_min']:.2f}, {r['vmaf_s']:.1f} s)" if r["vmaf"] is not None else ""
        lines.append(f"  VMAF      {_fmt(r['vmaf'], '.3f')}{extra}")
    if "cvvdp_jod" in r:
        extra = f"  ({r['cvvdp_display']}, {r['cvvdp_s']:.1f} s)" if r["cvvdp_jod"] is not None else ""
        lines.append(f"  CVVDP     {_fmt(r['cvvdp_jod'], '.3f', ' JOD')}{extra}")
    lines += [f"  note: {n}" for n in r.get("notes", [])]
    return "\n".join(lines)
