"""The NumPy guidance reference against docs/guidance.md: a loop transcription and finite differences."""
import numpy as np
import pytest

from tgvc_rt.diffusion.guidance import (guidance_loss_and_grad, latent_positions, make_guidance,
                                        num_pairs, reference_weights)


def _loop_loss(x0, ref, pos, vis):
    """Literal transcription of docs/guidance.md (slow; float64)."""
    F, C, h, w = x0.shape
    K = pos.shape[0]
    W = reference_weights(F)
    npairs = num_pairs(F)
    if K == 0 or npairs == 0:
        return 0.0

    def sample(img, u, v):
        out = np.zeros((25, C))
        fu, fv = int(np.floor(u)), int(np.floor(v))
        ax, ay = u - fu, v - fv
        i = 0
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                for (ox, oy, wt) in ((0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)),
                                     (0, 1, (1 - ax) * ay), (1, 1, ax * ay)):
                    x, y = fu + dx + ox, fv + dy + oy
                    if 0 <= x < w and 0 <= y < h:
                        out[i] += wt * img[:, y, x]
                i += 1
        return out

    n = F - 1
    total = 0.0
    for k in range(K):
        for f in range(F):
            for r, rf in ((0, 0), (1, n)):
                if W[f, r] == 0:
                    continue
                p = sample(x0[f], *pos[k, f])
                q = sample(ref[r], *pos[k, rf])
                total += W[f, r] * vis[k, f] * vis[k, rf] * np.abs(p - q).sum()
    return total / (K * npairs * 25 * C)


def _case(rng, F, K, C=3, h=7, w=9, border=True):
    x0 = rng.standard_normal((F, C, h, w))
    ref = rng.standard_normal((2, C, h, w))
    pos = np.stack([rng.uniform(-1, w, (K, F)), rng.uniform(-1, h, (K, F))], axis=-1)
    if border and K >= 4:
        pos[0, :, 0] = rng.uniform(-6.5, -2.5, F)          # mostly / fully outside left
        pos[1, :, 1] = rng.uniform(h + 0.1, h + 6.0, F)    # below the bottom edge
        pos[2] = [-40.3, 77.7]                              # far outside
        pos[3, :, 0] = rng.uniform(w - 1.5, w + 2.5, F)     # right edge
    vis = (rng.uniform(size=(K, F)) > 0.25).astype(np.float64)
    if K >= 5:
        vis[4, F // 2] = 0.6  # fractional visibility multiplies
    return x0, ref, pos, vis


def test_reference_weights_paper_rule():
    W = reference_weights(16)
    assert W[0].sum() == 0 and W[15].sum() == 0
    assert (W[1:6, 0] == 1).all() and (W[1:6, 1] == 0).all()
    assert (W[6:9] == 0.5).all()
    assert (W[9:15, 1] == 1).all() and (W[9:15, 0] == 0).all()
    assert num_pairs(16) == 17
    assert num_pairs(1) == num_pairs(2) == 0 and num_pairs(3) == 1


def test_latent_positions():
    uv = latent_positions(np.array([[3.5, -0.5], [0.0, 7.5]]))
    np.testing.assert_allclose(uv, [[0.0, -0.5], [-0.4375, 0.5]])


@pytest.mark.parametrize("F,K", [(5, 6), (7, 5), (16, 4), (3, 5)])
def test_matches_loop_transcription(F, K):
    rng = np.random.default_rng(F * 10 + K)
    x0, ref, pos, vis = _case(rng, F, K)
    loss, _ = guidance_loss_and_grad(x0, ref, pos, vis, dtype=np.float64)
    assert loss == pytest.approx(_loop_loss(x0, ref, pos, vis), rel=1e-12, abs=1e-15)
    loss32, _ = guidance_loss_and_grad(x0.astype(np.float32), ref.astype(np.float32), pos, vis)
    assert loss32 == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize("F,K,C,h,w", [(5, 6, 3, 7, 9), (16, 5, 2, 6, 8), (9, 7, 2, 5, 6)])
def test_gradient_central_differences(F, K, C, h, w):
    rng = np.random.default_rng(100 + F)
    x0, ref, pos, vis = _case(rng, F, K, C, h, w)
    loss, grad = guidance_loss_and_grad(x0, ref, pos, vis, dtype=np.float64)
    assert grad.shape == x0.shape and grad.dtype == np.float64
    assert not grad[0].any() and not grad[F - 1].any()
    eps = 1e-7
    flat = x0.ravel()
    idx = np.arange(flat.size)
    if flat.size > 700:  # every entry with a gradient plus a random sample of the others
        nz = np.flatnonzero(grad)
        idx = np.union1d(nz[rng.permutation(nz.size)[:500]], rng.choice(flat.size, 150, replace=False))
    fd = np.empty(idx.size)
    for j, i in enumerate(idx):
        xp, xm = flat.copy(), flat.copy()
        xp[i] += eps
        xm[i] -= eps
        lp, _ = guidance_loss_and_grad(xp.reshape(x0.shape), ref, pos, vis, dtype=np.float64)
        lm, _ = guidance_loss_and_grad(xm.reshape(x0.shape), ref, pos, vis, dtype=np.float64)
        fd[j] = (lp - lm) / (2 * eps)
    g = grad.ravel()[idx]
    assert np.abs(fd).max() > 0
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-3


def test_fully_outside_and_invisible_give_zero():
    rng = np.random.default_rng(3)
    x0, ref, _, _ = _case(rng, 16, 0, 2, 6, 8)
    pos = np.tile(np.array([[-10.0, -10.0]]), (3, 16, 1))
    loss, grad = guidance_loss_and_grad(x0, ref, pos, np.ones((3, 16)))
    assert loss == 0.0 and not grad.any()
    pos = rng.uniform(1, 5, (3, 16, 2))
    loss, grad = guidance_loss_and_grad(x0, ref, pos, np.zeros((3, 16)))
    assert loss == 0.0 and not grad.any()


def test_k0_and_short_windows():
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((16, 4, 5, 6)).astype(np.float32)
    loss, grad = guidance_loss_and_grad(x0, None, np.zeros((0, 16, 2)), np.zeros((0, 16)))
    assert loss == 0.0 and grad.shape == x0.shape and not grad.any() and grad.dtype == np.float32
    for F in (1, 2):
        x = rng.standard_normal((F, 4, 5, 6)).astype(np.float32)
        loss, grad = guidance_loss_and_grad(x, None, rng.uniform(0, 4, (3, F, 2)), np.ones((3, F)))
        assert loss == 0.0 and not grad.any()


def test_ref_none_uses_end_frames_and_closure():
    rng = np.random.default_rng(5)
    x0, _, pos, vis = _case(rng, 8, 5, 2, 6, 7)
    a = guidance_loss_and_grad(x0, None, pos, vis, dtype=np.float64)
    b = guidance_loss_and_grad(x0, x0[[0, 7]].copy(), pos, vis, dtype=np.float64)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    record = []
    guide = make_guidance(None, pos, vis, x0.shape, dtype=np.float64, record=record)
    np.testing.assert_array_equal(guide(x0, 10), a[1])
    assert record == [(10, a[0])]


def test_closure_with_reference_matches_one_shot_float32():
    rng = np.random.default_rng(6)
    x0, ref, pos, vis = _case(rng, 16, 9, 4, 8, 10)
    x0, ref = x0.astype(np.float32), ref.astype(np.float32)
    loss, grad = guidance_loss_and_grad(x0, ref, pos, vis)
    guide = make_guidance(ref, pos, vis, x0.shape)
    g1 = guide(x0, 3).copy()
    g2 = guide(x0 + 0.0, 3)
    assert g2.dtype == np.float32 and grad.dtype == np.float32
    np.testing.assert_array_equal(g1, grad)
    np.testing.assert_array_equal(g2, grad)


# --- the chunked sparse implementation: its options and fallback paths give the same numbers ---
from tgvc_rt.diffusion import guidance as _g  # noqa: E402


def _step(x0, ref, pos, vis, dtype=np.float64, **plan_kw):
    plan = _g.plan_guidance(pos, vis, x0.shape, dtype, **plan_kw)
    return _g.guidance_step(plan, x0.astype(dtype), None if ref is None else ref.astype(dtype))


def test_sign_into_is_exact_sign():
    for dt in (np.float32, np.float64):
        tiny = np.finfo(dt).smallest_subnormal
        d = np.array([0.0, -0.0, tiny, -tiny, 1e-30, -3.0, 1e30, np.inf, -np.inf, np.nan, 0.5], dtype=dt)
        s = _g._sign_into(d, np.empty_like(d))
        np.testing.assert_array_equal(s, np.sign(d))


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_chunk_size_does_not_change_results(chunk):
    rng = np.random.default_rng(20 + chunk)
    x0, ref, pos, vis = _case(rng, 9, 8, 3, 6, 7)
    want = _step(x0, ref, pos, vis)
    got = _step(x0, ref, pos, vis, tracks_per_chunk=chunk)
    assert got[0] == want[0] and np.array_equal(got[1], want[1])
    assert got[0] == pytest.approx(_loop_loss(x0, ref, pos, vis), rel=1e-12)


def test_fallbacks_without_scipy_kernels_or_cv2(monkeypatch):
    rng = np.random.default_rng(21)
    x0, ref, pos, vis = _case(rng, 7, 6, 2, 5, 8)
    want64, want32 = _step(x0, ref, pos, vis), _step(x0, ref, pos, vis, np.float32)
    monkeypatch.setattr(_g, "_cv2", None)
    a = _step(x0, ref, pos, vis)
    assert a[0] == want64[0] and np.array_equal(a[1], want64[1])
    monkeypatch.setattr(_g, "_csr_matvecs", None)
    monkeypatch.setattr(_g, "_csc_matvecs", None)
    b64, b32 = _step(x0, ref, pos, vis), _step(x0, ref, pos, vis, np.float32)
    assert b64[0] == pytest.approx(want64[0], rel=1e-12)
    np.testing.assert_allclose(b64[1], want64[1], rtol=1e-12, atol=1e-18)
    assert b32[0] == pytest.approx(want32[0], rel=1e-5)
    np.testing.assert_allclose(b32[1], want32[1], rtol=1e-5, atol=1e-9)


def test_step_inputs_outputs_and_reference_taps():
    rng = np.random.default_rng(22)
    x0, ref, pos, vis = _case(rng, 8, 7, 3, 6, 9)
    x0, ref = x0.astype(np.float32), ref.astype(np.float32)
    plan = _g.plan_guidance(pos, vis, x0.shape)
    want = _g.guidance_step(plan, x0, ref)
    taps = _g.reference_taps(plan, ref)
    assert taps.shape == (plan.tracks.size * 2 * 25, 3) and taps.dtype == np.float32
    out = np.full(x0.shape, np.nan, np.float32)                  # stale contents are overwritten
    got = _g.guidance_step(plan, x0, None, ref_taps=taps, out=out)
    assert got[1] is out and got[0] == want[0] and np.array_equal(out, want[1])
    assert _g.guidance_step(plan, x0, ref, with_loss=False)[0] == 0.0
    # non-contiguous float64 input to a float32 plan: converted, same numbers
    big = np.zeros((8, 3, 6, 18), np.float64)
    big[..., ::2] = x0
    loss, grad = _g.guidance_step(plan, big[..., ::2], ref)
    assert loss == want[0] and np.array_equal(grad, want[1])
    with pytest.raises(ValueError):
        _g.guidance_step(plan, x0[:, :, :5], ref)


def _bilinear_matrix(uv, h, w):
    """Dense [25 taps, h * w pixels] bilinear sampling matrix of one 5x5 patch (zero padding)."""
    M = np.zeros((25, h * w))
    for i, (dy, dx) in enumerate((a, b) for a in range(-2, 3) for b in range(-2, 3)):
        u, v = uv[0] + dx, uv[1] + dy
        fu, fv = int(np.floor(u)), int(np.floor(v))
        ax, ay = u - fu, v - fv
        for ox, oy, wt in ((0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)), (0, 1, (1 - ax) * ay), (1, 1, ax * ay)):
            if 0 <= fu + ox < w and 0 <= fv + oy < h:
                M[i, (fv + oy) * w + fu + ox] += wt
    return M


def test_against_previous_dense_term_formulation():
    """Gradient against an independent build: one dense [taps, pixels] bilinear matrix per term."""
    rng = np.random.default_rng(23)
    F, K, C, h, w = 7, 6, 2, 5, 6
    x0, ref, pos, vis = _case(rng, F, K, C, h, w)
    W, npairs, n = reference_weights(F), num_pairs(F), F - 1
    want = np.zeros_like(x0)
    for k in range(K):
        for f in range(1, n):
            for r, rf in ((0, 0), (1, n)):
                c = W[f, r] * vis[k, f] * vis[k, rf] / (K * npairs * 25 * C)
                if c == 0:
                    continue
                M, Mr = _bilinear_matrix(pos[k, f], h, w), _bilinear_matrix(pos[k, rf], h, w)
                d = M @ x0[f].reshape(C, -1).T - Mr @ ref[r].reshape(C, -1).T      # [25, C]
                want[f] += c * (M.T @ np.sign(d)).T.reshape(C, h, w)
    _, grad = guidance_loss_and_grad(x0, ref, pos, vis, dtype=np.float64)
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)
