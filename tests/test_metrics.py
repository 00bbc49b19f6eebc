"""Quality metrics: PSNR, MS-SSIM, VMAF (ffmpeg), ColorVideoVDP (optional), evaluate()."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from tgvc_rt.errors import InputError, OptionError
from tgvc_rt.io.y4m import read_y4m_planes
from tgvc_rt.metrics.cvvdp import CvvdpOptions, cvvdp_in_process, cvvdp_jod
from tgvc_rt.metrics.cvvdp_worker import yuv420_to_rgb
from tgvc_rt.metrics.evaluate import evaluate, format_report, rate_of
from tgvc_rt.metrics.msssim import ms_ssim, scales_that_fit
from tgvc_rt.metrics.psnr import PsnrOptions, psnr_per_frame, psnr_yuv_per_frame
from tgvc_rt.metrics.vmaf import ffmpeg_exe


def write_y4m(path, y, u=None, v=None, fps="30:1"):
    n, h, w = y.shape
    u = np.full((n, (h + 1) // 2, (w + 1) // 2), 128, np.uint8) if u is None else u
    v = np.full_like(u, 128) if v is None else v
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps} Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            f.write(b"FRAME\n" + y[i].tobytes() + u[i].tobytes() + v[i].tobytes())
    return str(path)


def textured(n, h, w, seed=0):
    """Smooth-ish deterministic test frames (a moving gradient plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [(128 + 60 * np.sin(xx / 7.0 + i) * np.cos(yy / 5.0)) for i in range(n)]
    base = np.stack(frames) + rng.normal(0, 5, (n, h, w))
    return np.clip(base, 0, 255).astype(np.uint8)


def add_noise(y, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(y.astype(np.float64) + rng.normal(0, sigma, y.shape), 0, 255).astype(np.uint8)


# --- PSNR ------------------------------------------------------------------------------------

def test_psnr_exact_on_known_arrays():
    ref = np.zeros((2, 4, 4), np.uint8)
    test = ref.copy()
    test[0, 0, 0] = 16  # frame 0: MSE = 256 / 16 = 16
    test[1] += 1        # frame 1: MSE = 1
    got = psnr_per_frame(ref, test)
    assert got[0] == pytest.approx(10 * math.log10(255 ** 2 / 16.0), abs=1e-12)
    assert got[1] == pytest.approx(10 * math.log10(255 ** 2), abs=1e-12)


def test_psnr_identical_is_capped():
    y = textured(2, 8, 8)
    assert np.all(psnr_per_frame(y, y) == 100.0)
    assert np.all(psnr_per_frame(y, y, PsnrOptions(max_db=80.0)) == 80.0)


def test_psnr_yuv_weights():
    y = np.zeros((1, 4, 4), np.uint8)
    c = np.zeros((1, 2, 2), np.uint8)
    got = psnr_yuv_per_frame((y, c, c), (y + 1, c, c))  # Y: 48.13 dB, U, V: 100 (cap)
    assert got[0] == pytest.approx((6 * 10 * math.log10(255 ** 2) + 200) / 8)


# --- MS-SSIM ---------------------------------------------------------------------------------

def test_msssim_identical_is_one_and_noise_lowers_it():
    y = textured(2, 176, 176)
    r = ms_ssim(y, y)
    assert r.scales == 5 and np.allclose(r.per_frame, 1.0)
    low, high = ms_ssim(y, add_noise(y, 20)).mean, ms_ssim(y, add_noise(y, 5)).mean
    assert 0.0 < low < high < 1.0


def test_msssim_small_frames_use_fewer_scales():
    assert scales_that_fit(144, 176) == 4
    assert scales_that_fit(288, 352) == 5
    assert scales_that_fit(10, 10) == 0
    y = textured(1, 144, 176)
    r = ms_ssim(y, add_noise(y, 10))
    assert r.scales == 4 and sum(r.weights) == pytest.approx(1.0) and 0 < r.mean < 1


def test_msssim_refuses_tiny_frames():
    with pytest.raises(ValueError):
        ms_ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


# --- y4m / evaluate --------------------------------------------------------------------------

def test_read_y4m_planes_and_rgb(tmp_path):
    y = textured(3, 16, 24)
    clip = read_y4m_planes(write_y4m(tmp_path / "a.y4m", y, fps="25:1"))
    assert clip.size == (24, 16) and clip.num_frames == 3 and clip.fps == 25.0
    assert np.array_equal(clip.y, y)
    rgb = yuv420_to_rgb(clip.y, clip.u, clip.v)
    assert rgb.shape == (3, 16, 24, 3) and rgb.dtype == np.uint8


def test_evaluate_psnr_msssim_and_rate(tmp_path):
    y = textured(3, 64, 64)
    ref = write_y4m(tmp_path / "ref.y4m", y)
    test = write_y4m(tmp_path / "test.y4m", add_noise(y, 8))
    tgv = tmp_path / "x.tgv"
    tgv.write_bytes(b"\0" * 96)  # 768 bits over 64*64*3 pixels
    res = evaluate(ref, test, tgv_path=str(tgv), metrics=("psnr", "msssim"))
    assert res["bpp"] == pytest.approx(768 / (64 * 64 * 3))
    assert res["kbps"] == pytest.approx(768 * 30 / 3 / 1000)
    assert 25 < res["psnr_y"] < 35 and res["psnr_yuv"] > res["psnr_y"]
    assert 0.5 < res["msssim_y"] < 1 and res["msssim_scales"] == 3
    assert any("3 scales" in n for n in res["notes"])
    text = format_report(res)
    assert "PSNR-Y" in text and "bpp" in text


def test_evaluate_mismatch_raises_input_error(tmp_path):
    ref = write_y4m(tmp_path / "ref.y4m", textured(3, 32, 32))
    fewer = write_y4m(tmp_path / "fewer.y4m", textured(2, 32, 32))
    bigger = write_y4m(tmp_path / "bigger.y4m", textured(3, 32, 48))
    with pytest.raises(InputError, match="frames"):
        evaluate(ref, fewer, metrics=("psnr",))
    with pytest.raises(InputError, match="32x32"):
        evaluate(ref, bigger, metrics=("psnr",))
    with pytest.raises(InputError):
        evaluate(ref, str(tmp_path / "missing.y4m"), metrics=("psnr",))
    with pytest.raises(OptionError):
        evaluate(ref, ref, metrics=("lpips",))


def test_rate_of():
    r = rate_of(100, 10, 10, 8, 30.0)
    assert r["bpp"] == pytest.approx(800 / 800) and r["kbps"] == pytest.approx(800 * 30 / 8 / 1000)


# --- VMAF / ColorVideoVDP (optional tools) ---------------------------------------------------

@pytest.mark.skipif(ffmpeg_exe() is None, reason="imageio-ffmpeg's ffmpeg binary not available")
def test_vmaf_on_tiny_y4m(tmp_path):
    y = textured(4, 64, 64)
    ref = write_y4m(tmp_path / "ref.y4m", y)
    test = write_y4m(tmp_path / "test.y4m", add_noise(y, 12), fps="25:1")  # rate differs: ignored
    same = evaluate(ref, ref, metrics=("vmaf",))
    noisy = evaluate(ref, test, metrics=("vmaf",))
    assert same["vmaf"] is not None and noisy["vmaf"] is not None
    assert 0 <= noisy["vmaf"] < same["vmaf"] <= 100


def test_cvvdp_skipped_cleanly_when_absent(tmp_path, monkeypatch):
    if cvvdp_in_process():
        pytest.skip("pycvvdp is importable here; the skip path is not reachable")
    monkeypatch.delenv("TGVC_CVVDP_PYTHON", raising=False)
    ref = write_y4m(tmp_path / "ref.y4m", textured(2, 32, 32))
    res = evaluate(ref, ref, metrics=("cvvdp",))
    assert res["cvvdp_jod"] is None and any("ColorVideoVDP skipped" in n for n in res["notes"])
    res = cvvdp_jod(ref, ref, opts=CvvdpOptions(python=str(tmp_path / "no-python")))
    assert res["cvvdp_jod"] is None


def test_cvvdp_worker_stands_alone():
    """The worker also runs as a script under a Python that has pycvvdp but maybe neither tgvc_rt nor OpenCV:
    at module level it imports the standard library and NumPy only, and nowhere anything of tgvc_rt."""
    import ast
    import sys

    from tgvc_rt.metrics import cvvdp_worker

    tree = ast.parse(Path(cvvdp_worker.__file__).read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= set(sys.stdlib_module_names) | {"numpy", "__future__"}, top
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not node.module.startswith("tgvc_rt")
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith(("tgvc_rt", "cv2")) for a in node.names)


def test_cvvdp_worker_reads_what_the_y4m_reader_reads(tmp_path):
    """The worker's minimal frame walker gives the planes tgvc_rt.io.y4m reads (odd size, FRAME lines with
    parameters), and its RGB conversion is io.y4m's 4:4:4 conversion after nearest chroma upsampling."""
    from tgvc_rt.io.y4m import _yuv444_to_rgb
    from tgvc_rt.metrics.cvvdp_worker import read_planes

    rng = np.random.default_rng(5)
    n, h, w = 3, 17, 23
    y = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    u, v = (rng.integers(0, 256, (n, 9, 12), dtype=np.uint8) for _ in range(2))
    path = tmp_path / "odd.y4m"
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2\n".encode())
        for i in range(n):
            f.write(f"FRAME Ip X{i}\n".encode() + y[i].tobytes() + u[i].tobytes() + v[i].tobytes())
    clip = read_y4m_planes(path)
    planes = read_planes(str(path), w, h)
    for got, want in zip(planes, (clip.y, clip.u, clip.v)):
        assert np.array_equal(got, want)
    up = [np.repeat(np.repeat(c, 2, axis=1), 2, axis=2)[:, :h, :w] for c in (u, v)]
    assert np.array_equal(yuv420_to_rgb(*planes), np.stack([_yuv444_to_rgb(y[i], up[0][i], up[1][i])
                                                            for i in range(n)]))
    (tmp_path / "cut.y4m").write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="frame 2"):
        read_planes(str(tmp_path / "cut.y4m"), w, h)


def test_cvvdp_helper_gets_checked_files(tmp_path, y4m_writer):
    """The helper Python is handed only files the y4m reader accepted (8-bit 4:2:0, one size: InputError
    here otherwise); what the worker itself finds wrong comes back as a note."""
    import sys

    if cvvdp_in_process():
        pytest.skip("pycvvdp is importable here; the helper path is not taken")
    opts = CvvdpOptions(python=sys.executable)  # runs the worker as a script; it has no pycvvdp
    ref = write_y4m(tmp_path / "ref.y4m", textured(3, 32, 32))
    bigger = write_y4m(tmp_path / "bigger.y4m", textured(3, 32, 48))
    fewer = write_y4m(tmp_path / "fewer.y4m", textured(2, 32, 32))
    y4m_writer(tmp_path / "444.y4m", [(np.zeros((32, 32)),) * 3], 32, 32, "444")
    with pytest.raises(InputError, match="32x32"):
        cvvdp_jod(ref, bigger, opts=opts)
    with pytest.raises(InputError, match="4:2:0"):
        cvvdp_jod(ref, str(tmp_path / "444.y4m"), opts=opts)
    with pytest.raises(InputError, match="no such file|cannot read"):
        cvvdp_jod(ref, str(tmp_path / "missing.y4m"), opts=opts)
    res = cvvdp_jod(ref, fewer, opts=opts)
    assert res["cvvdp_jod"] is None and "frame counts differ" in res["cvvdp_note"]
    res = cvvdp_jod(ref, ref, opts=opts)  # read and converted; the metric itself is missing there
    assert res["cvvdp_jod"] is None and "pycvvdp" in res["cvvdp_note"]


def test_single_scale_ssim_matches_brute_force_windows():
    """One scale of MS-SSIM = mean over 'valid' window positions of the textbook SSIM formula."""
    from tgvc_rt.metrics.msssim import MsssimOptions, gaussian_kernel

    a = textured(1, 14, 15, seed=3)
    b = add_noise(a, 15, seed=4)
    g = np.outer(gaussian_kernel(11, 1.5), gaussian_kernel(11, 1.5))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(14 - 10):
        for j in range(15 - 10):
            pa, pb = a[0, i:i + 11, j:j + 11].astype(float), b[0, i:i + 11, j:j + 11].astype(float)
            ma, mb = (g * pa).sum(), (g * pb).sum()
            va, vb = (g * pa * pa).sum() - ma ** 2, (g * pb * pb).sum() - mb ** 2
            cov = (g * pa * pb).sum() - ma * mb
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    r = ms_ssim(a, b, MsssimOptions())
    assert r.scales == 1
    assert r.mean == pytest.approx(max(np.mean(vals), 0.0), rel=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(not (cvvdp_in_process() or os.environ.get("TGVC_CVVDP_PYTHON")),
                    reason="no pycvvdp here and TGVC_CVVDP_PYTHON unset")
def test_cvvdp_identical_is_10_jod(tmp_path):
    ref = write_y4m(tmp_path / "ref.y4m", textured(4, 64, 64))
    res = cvvdp_jod(ref, ref)
    assert res["cvvdp_jod"] == pytest.approx(10.0, abs=1e-3)
