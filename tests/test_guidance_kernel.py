"""CUDA guidance kernel (runtime/tgvc_rt/kernels/guidance.cu) against the NumPy reference.

GPU tests skip without a GPU and cuda-python; the compile test still builds the kernel with nvcc
(or NVRTC) so a syntax error fails on a CPU-only machine, and the emulation tests run the kernels
themselves on the CPU (g++ with kernels/cuda_emu.h: one thread per CUDA thread, real barriers and
atomics), so the indexing, the fixed-point accumulation and the last-block loss are checked here too. Most cases use *dyadic* data (latents
multiples of 1/8, positions multiples of 1/16): every tap difference is then exact in fp32 and
fp64, so sign(d) - ties at 0 included - is identical and the gradient must match to rounding.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import launcher, nvrtc_cache

from kernel_compile import check_compiles

CU = Path(launcher.__file__).with_name("guidance.cu")

try:  # the shared NumPy reference (docs/guidance.md); the local oracle stands in without it
    from tgvc_rt.diffusion.guidance import guidance_loss_and_grad as _shared_ref
    from tgvc_rt.diffusion.guidance import reference_weights as _shared_weights
except ImportError:  # pragma: no cover
    _shared_ref = _shared_weights = None


# ---- tiny float64 oracle (kept for cross-checking the shared reference) -------------------
def oracle_weights(F: int) -> np.ndarray:
    n, W = F - 1, np.zeros((F, 2))
    a, b = n // 3, (6 * n) // 10  # the kernel's integer form of floor(0.6 n)
    for f in range(1, n):
        W[f] = (1, 0) if f <= a else (0, 1) if f >= b else (0.5, 0.5)
    return W


def _sample(planes, fidx, uv, h, w):
    off = np.arange(-2, 3)
    tdx, tdy = np.tile(off, 5), np.repeat(off, 5)
    u, v = uv[:, 0].astype(np.float64), uv[:, 1].astype(np.float64)
    fu, fv = np.clip(np.floor(u), -2**20, 2**20), np.clip(np.floor(v), -2**20, 2**20)
    ax, ay = u - fu, v - fv
    vals, corners = 0.0, []
    for ox, oy, wt in ((0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)), (0, 1, (1 - ax) * ay), (1, 1, ax * ay)):
        cx = (fu[:, None] + tdx + ox).astype(np.int64)
        cy = (fv[:, None] + tdy + oy).astype(np.int64)
        wv = np.where((cx >= 0) & (cx < w) & (cy >= 0) & (cy < h), wt[:, None], 0.0)
        cx, cy = np.clip(cx, 0, w - 1), np.clip(cy, 0, h - 1)
        vals = vals + wv[..., None] * planes[fidx[:, None], :, cy, cx]
        corners.append((cx, cy, wv))
    return vals, corners


def oracle(x0, ref, pos, vis):
    x0, ref = np.asarray(x0, np.float64), np.asarray(ref, np.float64)
    F, C, h, w = x0.shape
    K, n, W = pos.shape[0], F - 1, oracle_weights(F)
    norm = K * np.count_nonzero(W) * 25 * C
    grad = np.zeros(x0.shape)
    if norm == 0:
        return 0.0, grad
    k, f = (a.ravel() for a in np.meshgrid(np.arange(K), np.arange(F), indexing="ij"))
    P, corners = _sample(x0, f, pos[k, f], h, w)
    coef, loss = np.zeros_like(P), 0.0
    for r, rf in ((0, 0), (1, n)):
        c = W[f, r] * vis[k, f] * vis[k, rf]
        d = P - _sample(ref, np.full_like(f, r), pos[k, np.full_like(f, rf)], h, w)[0]
        loss += float((c[:, None, None] * np.abs(d)).sum())
        coef += c[:, None, None] * np.sign(d)
    ch = np.arange(C)[None, None, :]
    for cx, cy, wv in corners:
        np.add.at(grad, (f[:, None, None], ch, cy[..., None], cx[..., None]), coef * wv[..., None] / norm)
    return loss / norm, grad


def reference(x0, ref, pos, vis):
    if _shared_ref is None:
        return oracle(x0, ref, pos, vis)
    loss, grad = _shared_ref(np.asarray(x0, np.float64), np.asarray(ref, np.float64), pos, vis, dtype=np.float64)
    return loss, grad


def case(seed, F=16, C=8, h=12, w=20, K=24, dyadic=True, vis_mode="mixed", margin=3.0):
    rng = np.random.default_rng(seed)
    if dyadic:
        x0 = rng.integers(-32, 33, (F, C, h, w)) / 8.0
        ref = rng.integers(-32, 33, (2, C, h, w)) / 8.0
        pos = rng.integers(int(-margin * 16), int((w - 1 + margin) * 16), (K, F, 2)) / 16.0
        pos[..., 1] = rng.integers(int(-margin * 16), int((h - 1 + margin) * 16), (K, F)) / 16.0
    else:
        x0, ref = rng.standard_normal((F, C, h, w)), rng.standard_normal((2, C, h, w))
        pos = np.stack([rng.uniform(-margin, w - 1 + margin, (K, F)), rng.uniform(-margin, h - 1 + margin, (K, F))], -1)
    vis = {"ones": np.ones((K, F)), "mixed": rng.choice([0.0, 0.5, 1.0], (K, F), p=[0.2, 0.2, 0.6]),
           "zeros": np.zeros((K, F))}[vis_mode]
    return x0.astype(np.float32), ref.astype(np.float32), pos.astype(np.float32), vis.astype(np.float32)


def rel(a, b):
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / nb if nb > 0 else np.linalg.norm(a)


# ---- CPU-only tests ------------------------------------------------------------------------
def test_oracle_matches_shared_reference():
    if _shared_ref is None:
        pytest.skip("tgvc_rt.diffusion.guidance not present yet")
    for F in range(1, 40):
        np.testing.assert_array_equal(oracle_weights(F), _shared_weights(F))
    for seed, F in ((1, 16), (2, 5), (3, 4)):
        x0, ref, pos, vis = case(seed, F=F)
        lo, go = oracle(x0, ref, pos, vis)
        lr, gr = reference(x0, ref, pos, vis)
        assert abs(lo - lr) <= 1e-12 + 1e-9 * abs(lr)
        assert rel(go, gr) < 1e-9


def test_oracle_gradient_finite_difference():
    x0, ref, pos, vis = case(5, F=6, C=2, h=8, w=9, K=5, dyadic=False)
    x0 = x0.astype(np.float64)
    _, g = oracle(x0, ref, pos, vis)
    rng, eps = np.random.default_rng(0), 1e-7
    for _ in range(5):
        d = rng.standard_normal(x0.shape)
        fd = (oracle(x0 + eps * d, ref, pos, vis)[0] - oracle(x0 - eps * d, ref, pos, vis)[0]) / (2 * eps)
        assert abs(fd - float((g * d).sum())) < 1e-6 * max(1.0, abs(fd))


def test_launcher_helpers_without_cuda():
    assert launcher.balanced_tile(40, 64) == (40, 64)
    assert launcher.balanced_tile(135, 240) == (34, 60)
    assert launcher.balanced_tile(40, 64, 32, 64) == (20, 64)
    a, b = launcher.ddim_coefficients(0.5, 0.5)
    assert abs(a - 1) < 1e-12 and abs(b) < 1e-12
    a, b = launcher.x0_coefficients(0.25)
    assert abs(a - 2) < 1e-12 and abs(b + np.sqrt(0.75) * 2) < 1e-12
    assert launcher.guidance_step_size(30, 0.25) == pytest.approx(30 * 0.75 / 0.5)
    assert launcher.guidance_step_size(30, 0.25, 170) == pytest.approx(170 * 30 * 0.75 / 0.5)
    for F in range(1, 40):
        assert launcher.num_pairs(F) == int(np.count_nonzero(oracle_weights(F)))
    assert launcher.smem_bytes(40, 64) < 48 * 1024
    lay = launcher.workspace_layout(16, 32, 100, 512)
    assert lay["trk"] % 4 == 0 and lay["rp"] == 4 + 4 * 16 * 100 and lay["total"] == lay["partials"] + 512
    with pytest.raises(OptionError):
        launcher.check_track_data(np.zeros((3, 4, 2), np.float32), np.full((3, 4), 1.5, np.float32))
    with pytest.raises(OptionError):
        launcher.check_track_data(np.full((1, 4, 2), np.nan, np.float32), np.ones((1, 4), np.float32))


def test_kernel_source_compiles(tmp_path):
    """A syntax error in guidance.cu fails here, GPU or not (nvcc, else NVRTC)."""
    check_compiles(CU, tmp_path, flags=("-cubin", "-ptx"))


def test_nvrtc_compile_when_available(tmp_path):
    try:
        nvrtc_cache.nvrtc_version()
    except Exception as err:
        pytest.skip(f"NVRTC not available: {err}")
    k = nvrtc_cache.cached_compile("compute_75", directory=tmp_path)
    assert k.is_ptx and b"tgvc_guidance_step_f32" in k.image and k.path.is_file()
    again = nvrtc_cache.cached_compile("compute_75", directory=tmp_path)
    assert again.image == k.image


# ---- the kernels on the CPU (emulated CUDA) --------------------------------------------------
@pytest.fixture(scope="module")
def emu_exe(tmp_path_factory):
    gxx = shutil.which("g++")
    if not gxx:
        pytest.skip("g++ not available")
    exe = tmp_path_factory.mktemp("emu") / "guidance_emu"
    src = CU.with_name("emu_main.cpp")  # 64-thread blocks: same code, fewer OS threads
    r = subprocess.run([gxx, "-std=c++20", "-O1", "-pthread", "-DTGVC_EMU", "-DTGVC_BLOCK=64", str(src), "-o", str(exe)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode and "barrier" in r.stderr:
        pytest.skip("this g++ has no C++20 <barrier>")
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def emulate(exe, x0, ref, pos, vis, z=None, step=0.0, tile=(0, 0), want=(1, 1, 1)):
    """(loss, grad, z) from the emulated kernels; tile (0, 0): the C++ host launcher's tiles."""
    F, C, h, w = x0.shape
    K = pos.shape[0]
    z = np.zeros_like(x0) if z is None else z
    head = np.array([int(x0.dtype == np.float16), F, C, h, w, K, *tile, *want], np.int32)
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.bin", Path(d) / "out.bin"
        src.write_bytes(b"".join([head.tobytes(), np.float32(step).tobytes()] +
                                 [np.ascontiguousarray(a).tobytes() for a in (x0, ref.astype(x0.dtype), pos.astype(np.float32),
                                                                              vis.astype(np.float32), z.astype(x0.dtype))]))
        r = subprocess.run([str(exe), str(src), str(out)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        raw = out.read_bytes()
    n = x0.size
    grad = np.frombuffer(raw[4:4 + 4 * n], np.float32).reshape(x0.shape)
    return float(np.frombuffer(raw[:4], np.float32)[0]), grad, np.frombuffer(raw[4 + 4 * n:], x0.dtype).reshape(x0.shape)


EMU_CASES = [dict(seed=11, F=5, C=3, h=7, w=9, K=9), dict(seed=13, F=16, C=2, h=13, w=70, K=70, margin=6.0),
             dict(seed=14, F=3, K=7, C=2)]


@pytest.mark.parametrize("kw", EMU_CASES)
def test_emulated_kernel_matches_reference(emu_exe, kw):
    x0, ref, pos, vis = case(**kw)
    lr, gr = reference(x0, ref, pos, vis)
    loss, grad, _ = emulate(emu_exe, x0, ref, pos, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr) + 1e-12
    assert rel(grad, gr) <= 1e-5
    assert not grad[0].any() and not grad[-1].any()


def test_emulated_kernel_tiles_edges_fp16_update(emu_exe):
    x0, ref, pos, vis = case(50, F=5, C=2, h=13, w=18, K=40)
    far = pos.copy()
    far[::3] += 1e6  # far outside: reads zeros, loss only
    far[1::5] -= 3e7
    lr, gr = reference(x0, ref, far, vis)
    loss, grad, _ = emulate(emu_exe, x0, ref, far, vis, tile=(6, 8))  # 3 x 3 tiles, tracks across borders
    assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-5
    for p, v in ((pos[:0], vis[:0]), (pos, vis * 0)):  # K = 0, nothing visible
        loss, grad, _ = emulate(emu_exe, x0, ref, p, v)
        assert loss == 0.0 and not grad.any()
    lr, gr = reference(x0, ref, pos, vis)  # dyadic data is exact in fp16 too
    loss, grad, _ = emulate(emu_exe, x0.astype(np.float16), ref.astype(np.float16), pos, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-5
    z = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    step = launcher.guidance_step_size(30.0, 0.3)
    for dtype, tol in ((np.float32, 1e-6), (np.float16, 2e-3)):
        loss, grad, zo = emulate(emu_exe, x0.astype(dtype), ref.astype(dtype), pos, vis, z=z.astype(dtype), step=step,
                                 want=(0, 1, 0))
        assert np.isnan(loss) and np.isnan(grad).all()  # not asked for: untouched
        assert rel(zo.astype(np.float64), z.astype(dtype).astype(np.float64) - step * gr) <= tol


def test_emulated_kernel_row_split(tmp_path):
    """-DTGVC_MAX_SEGMENTS=5: tracks split over 5 threads (one tap row each) give the same numbers."""
    gxx = shutil.which("g++")
    if not gxx:
        pytest.skip("g++ not available")
    exe = tmp_path / "guidance_emu_rows"
    r = subprocess.run([gxx, "-std=c++20", "-O1", "-pthread", "-DTGVC_EMU", "-DTGVC_BLOCK=64", "-DTGVC_MAX_SEGMENTS=5",
                        str(CU.with_name("emu_main.cpp")), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    if r.returncode and "barrier" in r.stderr:
        pytest.skip("this g++ has no C++20 <barrier>")
    assert r.returncode == 0, r.stderr[-3000:]
    x0, ref, pos, vis = case(13, F=16, C=2, h=13, w=70, K=70, margin=6.0)
    lr, gr = reference(x0, ref, pos, vis)
    loss, grad, _ = emulate(exe, x0, ref, pos, vis, tile=(7, 32))
    assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-5


def test_emulated_kernel_generic_floats_deterministic(emu_exe):
    x0, ref, pos, vis = case(30, F=6, C=3, h=10, w=14, K=30, dyadic=False)
    lr, gr = reference(x0, ref, pos, vis)
    loss, grad, _ = emulate(emu_exe, x0, ref, pos, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-3
    loss2, grad2, _ = emulate(emu_exe, x0, ref, pos, vis)
    assert loss2 == loss and np.array_equal(grad, grad2)


# ---- GPU tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cg():
    try:
        g = launcher.CudaGuidance()
    except Exception as err:  # no binding, no driver, no GPU, no NVRTC
        pytest.skip(f"no usable GPU for the guidance kernel: {err}")
    yield g
    g.close()


CASES = [dict(seed=10), dict(seed=11, F=5, C=3, h=7, w=9, K=9), dict(seed=12, F=4, C=32, h=40, w=64, K=60),
         dict(seed=13, F=16, C=4, h=33, w=70, K=40, margin=6.0), dict(seed=14, F=3, K=7), dict(seed=15, vis_mode="ones")]


@pytest.mark.gpu
@pytest.mark.parametrize("kw", CASES)
def test_kernel_fp32_matches_reference(cg, kw):
    x0, ref, pos, vis = case(**kw)
    lr, gr = reference(x0, ref, pos, vis)
    loss, grad = cg.loss_and_grad(x0, ref, pos, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr) + 1e-12
    assert rel(grad, gr) <= 1e-5
    assert not grad[0].any() and not grad[-1].any()


@pytest.mark.gpu
def test_kernel_fp16_matches_reference(cg):
    x0, ref, pos, vis = case(20, C=6)
    lr, gr = reference(x0, ref, pos, vis)  # dyadic data is exact in fp16 too
    loss, grad = cg.loss_and_grad(x0.astype(np.float16), ref.astype(np.float16), pos, vis)
    assert abs(loss - lr) <= 1e-4 * abs(lr) and rel(grad, gr) <= 1e-4
    x0, ref, pos, vis = case(21, C=6, dyadic=False)
    x0h, refh = x0.astype(np.float16), ref.astype(np.float16)
    lr, gr = reference(x0h.astype(np.float32), refh.astype(np.float32), pos, vis)
    loss, grad = cg.loss_and_grad(x0h, refh, pos, vis)
    assert abs(loss - lr) <= 1e-3 * abs(lr) and rel(grad, gr) <= 2e-2


@pytest.mark.gpu
def test_kernel_generic_floats_and_determinism(cg):
    x0, ref, pos, vis = case(30, dyadic=False)
    lr, gr = reference(x0, ref, pos, vis)
    loss, grad = cg.loss_and_grad(x0, ref, pos, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr)
    assert rel(grad, gr) <= 1e-3  # a tap difference within rounding of 0 may flip sign(d)
    assert np.mean(np.isclose(grad, gr, rtol=1e-4, atol=1e-9 * np.abs(gr).max())) > 0.999
    loss2, grad2 = cg.loss_and_grad(x0, ref, pos, vis)
    assert loss2 == loss and np.array_equal(grad2, grad)  # bit-reproducible


@pytest.mark.gpu
def test_kernel_edge_cases(cg):
    x0, ref, pos, vis = case(40)
    for p, v in ((pos[:0], vis[:0]), (pos, vis * 0)):  # K = 0, nothing visible
        loss, grad = cg.loss_and_grad(x0, ref, p, v)
        assert loss == 0.0 and not grad.any()
    far = pos.copy()
    far[::2] += 1e6  # far outside: reads zeros, no gradient there
    far[1::4] -= 3e7
    lr, gr = reference(x0, ref, far, vis)
    loss, grad = cg.loss_and_grad(x0, ref, far, vis)
    assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-5
    x2, r2, p2, v2 = case(41, F=2)  # no interior frame: no pairs
    loss, grad = cg.loss_and_grad(x2, r2, p2, v2)
    assert loss == 0.0 and not grad.any()


@pytest.mark.gpu
def test_kernel_small_tiles_prepared_plan_and_options(cg):
    x0, ref, pos, vis = case(50, h=21, w=30, K=50)
    lr, gr = reference(x0, ref, pos, vis)
    for opts in (launcher.GuidanceOptions(tile_h=8, tile_w=8), launcher.GuidanceOptions(block=128, min_blocks=2),
                 launcher.GuidanceOptions(defines=("-DTGVC_MAX_SEGMENTS=5",))):  # row split at small K
        other = launcher.CudaGuidance(options=opts)
        try:
            loss, grad = other.loss_and_grad(x0, ref, pos, vis)
            assert abs(loss - lr) <= 1e-5 * abs(lr) and rel(grad, gr) <= 1e-5, opts
        finally:
            other.close()
    # one prepare, several steps (the decoding loop): same bits every step, loss slot reused
    bufs = [cg.to_device(a) for a in (x0, ref, pos, vis)]
    gptr = cg.api.alloc(4 * x0.size)
    plan = cg.prepare(bufs[1], bufs[2], bufs[3], x0.shape, pos.shape[0])
    try:
        outs = []
        run = cg.stepper(plan, bufs[0], grad=gptr)  # the ready launch gives the same bits
        for i in range(4):
            cg.step(plan, bufs[0], grad=gptr) if i < 3 else run(0.0)
            g, l = np.empty(x0.shape, np.float32), np.empty(1, np.float32)
            cg.api.d2h(g, gptr)
            cg.api.d2h(l, cg.loss_ptr)
            outs.append((float(l[0]), g))
        assert all(o[0] == outs[0][0] and np.array_equal(o[1], outs[0][1]) for o in outs)
        assert abs(outs[0][0] - lr) <= 1e-5 * abs(lr) and rel(outs[0][1], gr) <= 1e-5
    finally:
        cg.free_plan(plan)
        for p in bufs + [gptr]:
            cg.api.free(p)


@pytest.mark.gpu
def test_update_ddim_and_conversion_kernels(cg):
    x0, ref, pos, vis = case(60)
    _, gr = reference(x0, ref, pos, vis)
    F, C, h, w = x0.shape
    z = np.random.default_rng(1).standard_normal(x0.shape).astype(np.float32)
    step = launcher.guidance_step_size(30.0, 0.3)
    api = cg.api
    for dtype in (np.float32, np.float16):
        name = "float32" if dtype == np.float32 else "float16"
        bufs = [cg.to_device(a.astype(dtype)) for a in (x0, ref, z)] + [cg.to_device(pos), cg.to_device(vis)]
        cg.guidance(bufs[0], bufs[1], bufs[3], bufs[4], x0.shape, pos.shape[0], dtype=name, z=bufs[2], step=step)
        out = np.empty(x0.shape, dtype)
        api.d2h(out, bufs[2])
        want = z.astype(dtype).astype(np.float64) - step * gr
        tol = 1e-6 if dtype == np.float32 else 2e-3
        assert rel(out.astype(np.float64), want) <= tol
        a, b = launcher.ddim_coefficients(0.3, 0.5)
        cg.axpby(bufs[2], bufs[0], bufs[2], x0.size, a, b, dtype=name)
        api.d2h(out, bufs[2])
        want = a * want + b * x0.astype(dtype).astype(np.float64)
        assert rel(out.astype(np.float64), want) <= tol
        for p in bufs:
            api.free(p)
    src = cg.to_device(z)
    half, back = api.alloc(2 * z.size), api.alloc(4 * z.size)
    cg.convert(src, half, z.size, to_half=True)
    cg.convert(half, back, z.size, to_half=False)
    out = np.empty_like(z)
    api.d2h(out, back)
    np.testing.assert_array_equal(out, z.astype(np.float16).astype(np.float32))
    for p in (src, half, back):
        api.free(p)


@pytest.mark.gpu
def test_guided_stepper_matches_numpy(cg):
    from tgvc_rt.backends.cuda import DeviceBuffer, GuidedStepper

    x0, ref, pos, vis = case(70, F=6, C=4)
    rng = np.random.default_rng(2)
    z = rng.integers(-16, 17, x0.shape).astype(np.float32) / 8
    eps = np.zeros_like(z)  # keeps x0 = 2 z dyadic, so sign(d) is exact (axpby is tested above)
    st = GuidedStepper(cg, ref, pos, vis, x0.shape)
    zb, eb = DeviceBuffer.from_host(cg.api, z), DeviceBuffer.from_host(cg.api, eps)
    try:
        st.step(zb.ptr, eb.ptr, 0.25, 0.5, 30.0)
        got = zb.to_host()
    finally:
        for b in (zb, eb):
            b.free()
        st.close()
    a, b = launcher.x0_coefficients(0.25)
    _, g = reference((a * z + b * eps).astype(np.float32), ref, pos, vis)
    want = z - launcher.guidance_step_size(30.0, 0.25, pos.shape[0] * launcher.num_pairs(x0.shape[0])) * g
    a, b = launcher.ddim_coefficients(0.25, 0.5)
    want = a * want + b * eps
    assert rel(got, want) <= 1e-5
