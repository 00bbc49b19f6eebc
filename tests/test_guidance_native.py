"""The compiled float32 CPU guidance (tgvc_rt._guidance_cpu via ctypes) against the NumPy reference."""
import numpy as np
import pytest

from tgvc_rt.diffusion import guidance_native as gn
from tgvc_rt.diffusion.guidance import make_guidance
from tgvc_rt.errors import OptionError

needs_lib = pytest.mark.skipif(not gn.native_available(), reason=f"native guidance not built: "
                               f"{gn.native_unavailable_reason()}")


def _case(rng, F, K, C=3, h=7, w=9):
    """Random window with tracks across the borders, far outside, invisible and fractional vis."""
    x0 = rng.standard_normal((F, C, h, w)).astype(np.float32)
    ref = rng.standard_normal((2, C, h, w)).astype(np.float32)
    pos = np.stack([rng.uniform(-1, w, (K, F)), rng.uniform(-1, h, (K, F))], axis=-1)
    if K >= 6:
        pos[0, :, 0] = rng.uniform(-6.5, -2.5, F)          # mostly / fully outside left
        pos[1, :, 1] = rng.uniform(h + 0.1, h + 6.0, F)    # below the bottom edge
        pos[2] = [-40.3, 77.7]                              # far outside
        pos[3, :, 0] = rng.uniform(w - 1.5, w + 2.5, F)     # right edge
        pos[4, :, :] = np.floor(pos[4])                     # integer positions (zero weights)
        pos[5, :, 1] = 1e9                                  # absurdly far (clamped cell)
    vis = (rng.uniform(size=(K, F)) > 0.25).astype(np.float32)
    if K >= 8:
        vis[6] = 0.0                                        # an invisible track
        vis[7, F // 2] = 0.6                                # fractional visibility multiplies
    return x0, ref, pos.astype(np.float32), vis


def _both(x0, ref, pos, vis):
    ra, rb = [], []
    want = make_guidance(ref, pos, vis, x0.shape, record=ra)(x0, 7).copy()
    got = gn.make_native_guidance(ref, pos, vis, x0.shape, record=rb)(x0, 7).copy()
    return (ra[0][1], want), (rb[0][1], got)


def _assert_close(a, b):
    (la, ga), (lb, gb) = a, b
    assert gb.dtype == np.float32 and gb.shape == ga.shape
    assert lb == pytest.approx(la, rel=1e-5, abs=1e-12)
    scale = max(float(np.abs(ga).max()), 1e-30)
    np.testing.assert_allclose(gb, ga, rtol=1e-5, atol=1e-5 * scale)


@needs_lib
@pytest.mark.parametrize("F,K,C,h,w", [(16, 12, 3, 7, 9), (5, 9, 2, 6, 7), (3, 8, 4, 5, 8), (2, 6, 2, 5, 5),
                                       (16, 20, 32, 10, 12), (9, 10, 16, 8, 6), (7, 8, 5, 4, 4), (16, 9, 4, 1, 1)])
def test_matches_numpy_reference(F, K, C, h, w):
    rng = np.random.default_rng(1000 + 7 * F + K + C)
    x0, ref, pos, vis = _case(rng, F, K, C, h, w)
    ref_, nat = _both(x0, ref, pos, vis)
    _assert_close(ref_, nat)
    assert not nat[1][0].any() and not nat[1][F - 1].any()


@needs_lib
def test_ref_none_uses_end_frames_of_each_step():
    rng = np.random.default_rng(11)
    x0, _, pos, vis = _case(rng, 8, 9, 3, 6, 7)
    _assert_close(*_both(x0, None, pos, vis))
    guide = gn.make_native_guidance(None, pos, vis, x0.shape)
    x1 = x0 * np.float32(1.5)  # the references follow x0
    want = make_guidance(None, pos, vis, x0.shape)(x1, 0)
    np.testing.assert_allclose(guide(x1, 0), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@needs_lib
def test_k0_invisible_and_outside_give_zero():
    rng = np.random.default_rng(12)
    x0 = rng.standard_normal((16, 4, 5, 6)).astype(np.float32)
    rec = []
    g = gn.make_native_guidance(None, np.zeros((0, 16, 2)), np.zeros((0, 16)), x0.shape, record=rec)
    out = g(x0, 3)
    assert not out.any() and rec == [(3, 0.0)]
    g = gn.make_native_guidance(x0[[0, 15]], rng.uniform(1, 4, (3, 16, 2)), np.zeros((3, 16)), x0.shape)
    assert not g(x0, 0).any()
    g = gn.make_native_guidance(x0[[0, 15]], np.full((3, 16, 2), -10.0), np.ones((3, 16)), x0.shape)
    assert not g(x0, 0).any()


@needs_lib
def test_deterministic_reused_buffer_and_input_layouts():
    rng = np.random.default_rng(13)
    x0, ref, pos, vis = _case(rng, 16, 30, 32, 12, 14)
    rec = []
    guide = gn.make_native_guidance(ref, pos, vis, x0.shape, record=rec)
    first = guide(x0, 1).copy()
    again = guide(x0, 2)
    assert np.array_equal(first, again) and rec[0][1] == rec[1][1]
    assert guide(x0, 3) is again  # one preallocated buffer
    other = gn.make_native_guidance(ref, pos, vis, x0.shape)(x0, 0)
    assert np.array_equal(other, first)
    # float64 and non-contiguous x0 are copied into the staging buffer, same numbers
    assert np.array_equal(guide(x0.astype(np.float64), 4), first)
    assert np.array_equal(guide(np.asfortranarray(x0), 5), first)


@needs_lib
def test_thread_count_does_not_change_a_bit():
    rng = np.random.default_rng(17)
    x0, ref, pos, vis = _case(rng, 16, 40, 32, 12, 14)
    runs = []
    for threads in (1, 2, 3, 64):
        rec = []
        grad = gn.make_native_guidance(ref, pos, vis, x0.shape, record=rec, threads=threads)(x0, 0).copy()
        runs.append((grad, rec[0][1]))
    assert all(np.array_equal(g, runs[0][0]) and loss == runs[0][1] for g, loss in runs[1:])
    assert gn.default_threads() >= 1


@needs_lib
def test_errors():
    shape = (5, 2, 4, 4)
    with pytest.raises(OptionError):
        gn.make_native_guidance(None, np.zeros((1, 5, 2)), np.ones((1, 5)), shape, dtype=np.float64)
    with pytest.raises(ValueError):
        gn.make_native_guidance(np.zeros((2, 3, 4, 4), np.float32), np.zeros((1, 5, 2)), np.ones((1, 5)), shape)
    guide = gn.make_native_guidance(None, np.zeros((1, 5, 2)), np.ones((1, 5)), shape)
    with pytest.raises(ValueError):
        guide(np.zeros((5, 2, 4, 5), np.float32), 0)


def test_select_guidance_factory(monkeypatch):
    assert gn.select_guidance_factory("numpy") is make_guidance
    with pytest.raises(OptionError):
        gn.select_guidance_factory("cuda")
    want = gn.make_native_guidance if gn.native_available() else make_guidance
    assert gn.select_guidance_factory("auto") is want
    # without the library: auto falls back to NumPy, native is a clear error
    monkeypatch.setattr(gn, "_loaded", True)
    monkeypatch.setattr(gn, "_lib", None)
    monkeypatch.setattr(gn, "_load_error", "not built (test)")
    assert not gn.native_available()
    assert gn.select_guidance_factory("auto") is make_guidance
    with pytest.raises(OptionError, match="not built"):
        gn.select_guidance_factory("native")
    with pytest.raises(OptionError):
        gn.make_native_guidance(None, np.zeros((0, 3, 2)), np.zeros((0, 3)), (3, 1, 2, 2))


def test_missing_library_path_reports_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("TGVC_GUIDANCE_LIB", str(tmp_path / "nope.so"))
    monkeypatch.setattr(gn, "_loaded", False)
    monkeypatch.setattr(gn, "_lib", None)
    assert not gn.native_available() and "not built" in gn.native_unavailable_reason()
