"""Trajectory guidance, NumPy reference of ``docs/guidance.md`` (loss and its exact gradient).

Everything is vectorised, with no Python loop over taps or terms. A *term* is one (track k,
frame f, reference r) of the loss; each track has the same ``Npairs`` terms (frames 1..n-1 against
their references, ``reference_weights``), so the terms of a window form a regular grid
``[K, Npairs]``. Per track chunk (a fixed number of tracks, so that the work arrays stay in cache):

* ``D = -Q`` (the track's reference patch ``Q[k, r]``, broadcast over its frames: the reference
  patches depend only on (k, r) and are gathered once per window, ``reference_taps``);
* ``D += G @ X``: the bilinear gather of every term's 25 taps x 4 neighbours from the channel-last
  rows ``X`` of the inner frames (scipy's compiled CSR kernel, accumulating in place);
* ``S = sign(D)`` as ``clip(D * 2^e * 2^e, -1, 1)`` (exact, sign(0) = 0; np.sign is ~5x slower);
* loss ``sum c * |D|`` (pairwise row sums), gradient rows ``+= (c G)^T @ S`` (the bilinear scatter).

``G`` and ``c G`` depend only on the track positions, so ``plan_guidance`` builds them once per
window and ``guidance_step`` reuses them at every sampler step. Out-of-latent neighbours and
zero-coefficient terms (invisible points) have no entries at all. Math runs in float32 by default;
pass ``dtype=np.float64`` for the gradient tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

try:  # scipy's compiled kernels, called with our own output buffers (accumulate: Y += A @ X)
    from scipy.sparse._sparsetools import csc_matvecs as _csc_matvecs
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a scipy without them: the public operator path below
    _csr_matvecs = _csc_matvecs = None
try:  # a blocked transpose, ~5x faster than NumPy's strided copy for [C, h*w] <-> [h*w, C]
    import cv2 as _cv2
except ImportError:  # pragma: no cover
    _cv2 = None

PATCH_RADIUS = 2  # taps at offsets -2..2 in x and y: a 5x5 patch (docs/guidance.md)
PATCH_TAPS = (2 * PATCH_RADIUS + 1) ** 2
TRACKS_PER_CHUNK = 16  # tracks per work chunk: [16 * Npairs * 25, C] float32 work arrays ~0.9 MB (L2)


def reference_weights(num_frames: int) -> np.ndarray:
    """``W[f, r]`` float32 ``[F, 2]``: how much frame f is pulled towards keyframe r (0 first, 1 last).

    ``n = F - 1``, ``a = n // 3``, ``b = floor(0.6 n)``; for ``1 <= f <= n - 1``: ``f <= a`` -> (1, 0),
    ``f >= b`` -> (0, 1), otherwise (0.5, 0.5); rows 0 and n are 0.
    """
    F = int(num_frames)
    W = np.zeros((max(F, 0), 2), dtype=np.float32)
    n = F - 1
    if n < 2:
        return W
    a, b = n // 3, (6 * n) // 10  # exact integer floor(0.6 n)
    f = np.arange(1, n)
    first = f <= a
    last = (f >= b) & ~first
    mid = ~first & ~last
    W[f[first], 0] = 1.0
    W[f[last], 1] = 1.0
    W[f[mid], :] = 0.5
    return W


def num_pairs(num_frames: int) -> int:
    """``Npairs = #{(f, r): W[f, r] > 0}`` (17 for F = 16)."""
    return int(np.count_nonzero(reference_weights(num_frames) > 0))


def latent_positions(xy_pixels: np.ndarray) -> np.ndarray:
    """Pixel (x, y) -> latent (u, v) = ``(x + 0.5) / 8 - 0.5``; same shape ``[..., 2]``, float32."""
    return (np.asarray(xy_pixels, dtype=np.float32) + np.float32(0.5)) / np.float32(8.0) - np.float32(0.5)


def _patch_taps(uv: np.ndarray, frame: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps of N 5x5 patches: ``(weights, rows)``, both ``[N, 25, 4]``.

    Tap ``(dy + 2) * 5 + (dx + 2)`` of patch n samples ``uv[n] + (dx, dy)`` of frame ``frame[n]``
    from the 4 neighbours ``(floor(u) + i, floor(v) + j)``, i, j in {0, 1}; ``rows`` indexes the
    channel-last latent rows ``(frame * h + y) * w + x``. A neighbour outside ``[0, w-1] x [0, h-1]``
    gets weight 0 (zero padding, no gradient) and a clipped, harmless row index.
    """
    u = uv[:, 0].astype(np.float64)
    v = uv[:, 1].astype(np.float64)
    fu, fv = np.floor(u), np.floor(v)
    ax, ay = u - fu, v - fv
    big = 1 << 20  # positions far outside all read zeros; keeps the int conversion finite
    # separable: window columns/rows floor + (-2..3); tap d, neighbour o uses window index d + 2 + o
    win = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 2)
    cx = np.clip(fu, -big, big).astype(np.int64)[:, None] + win                 # [N, 6]
    cy = np.clip(fv, -big, big).astype(np.int64)[:, None] + win
    sel = (np.arange(2 * PATCH_RADIUS + 1)[:, None] + np.array([0, 1])).ravel()  # [(tap, o)] -> window
    wx = (np.stack([1 - ax, ax], axis=1)[:, None, :] * ((cx >= 0) & (cx < w))[:, sel].reshape(-1, 5, 2))
    wy = (np.stack([1 - ay, ay], axis=1)[:, None, :] * ((cy >= 0) & (cy < h))[:, sel].reshape(-1, 5, 2))
    rx = np.clip(cx, 0, w - 1)[:, sel]                                           # [N, 10] (dx, ox)
    ry = (frame.astype(np.int64)[:, None] * h + np.clip(cy, 0, h - 1))[:, sel] * w  # [N, 10] (dy, oy)
    # entry (dy, dx, oy, ox) of a patch, taps dx fastest, neighbours ox fastest: index tables [100]
    dy, dx, oy, ox = np.indices((5, 5, 2, 2)).reshape(4, -1)
    iy, ix = dy * 2 + oy, dx * 2 + ox
    N = uv.shape[0]
    wts = wy.reshape(N, 10)[:, iy] * wx.reshape(N, 10)[:, ix]
    rows = ry[:, iy] + rx[:, ix]
    return wts.reshape(N, PATCH_TAPS, 4), rows.reshape(N, PATCH_TAPS, 4)


@dataclass
class _Sparse:
    """CSR arrays of ``[n_rows, n_cols]`` with rows in patch-tap order and only non-zero entries.

    The same arrays read as CSC give the transpose (``scatter``): column j = row j of the CSR.
    ``indptr`` holds absolute offsets, so a chunk of rows is just the slice ``indptr[r0:r1 + 1]``.
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int


def _sparse(weights: np.ndarray, cols: np.ndarray, n_cols: int, dtype) -> _Sparse:
    """``_Sparse`` from dense ``[rows, 4]`` weights/column indices, dropping the zero weights."""
    keep = weights != 0
    index_dtype = np.int32 if max(weights.size, n_cols) < 2**31 - 1 else np.int64
    indptr = np.zeros(weights.shape[0] + 1, dtype=index_dtype)
    indptr[1:] = np.cumsum(keep.ravel(), dtype=index_dtype)[weights.shape[1] - 1::weights.shape[1]]
    return _Sparse(indptr, cols[keep].astype(index_dtype), weights[keep].astype(dtype), int(n_cols))


def _spmm_acc(a: _Sparse, r0: int, r1: int, x: np.ndarray, y: np.ndarray, transpose: bool = False) -> None:
    """``y += A[r0:r1] @ x`` or, with ``transpose``, ``y += A[r0:r1].T @ x`` (C-contiguous x, y)."""
    ptr = a.indptr[r0:r1 + 1]
    n_vecs = x.shape[1]
    if _csr_matvecs is not None and a.data.dtype == x.dtype == y.dtype:
        if transpose:
            _csc_matvecs(y.shape[0], r1 - r0, n_vecs, ptr, a.indices, a.data, x.ravel(), y.ravel())
        else:
            _csr_matvecs(r1 - r0, a.n_cols, n_vecs, ptr, a.indices, a.data, x.ravel(), y.ravel())
        return
    lo, hi = int(ptr[0]), int(ptr[-1])
    m = sp.csr_matrix((a.data[lo:hi], a.indices[lo:hi], ptr - lo), shape=(r1 - r0, a.n_cols))
    y += (m.T @ x if transpose else m @ x).astype(y.dtype, copy=False)


def _transpose_frames(src: np.ndarray, dst: np.ndarray) -> bool:
    """``dst[i] = src[i].T`` for 2-D frames with OpenCV's blocked transpose; False if not done."""
    if _cv2 is None or src.dtype != dst.dtype or src.dtype not in (np.float32, np.float64):
        return False
    for i in range(src.shape[0]):
        if _cv2.transpose(src[i], dst=dst[i]) is not dst[i]:  # pragma: no cover - cv2 reallocated
            return False
    return True


def _rows_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``[N, C, h, w]`` -> channel-last rows ``[N * h * w, C]``, written into ``out`` (one copy)."""
    N, C, h, w = x.shape
    if not (x.flags.c_contiguous and _transpose_frames(x.reshape(N, C, h * w), out.reshape(N, h * w, C))):
        out.reshape(N, h, w, C)[...] = np.asarray(x).transpose(0, 2, 3, 1)
    return out


def _rows_to_cf(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Channel-last rows ``[N * h * w, C]`` -> ``out`` ``[N, C, h, w]`` (the inverse of ``_rows_into``)."""
    N, C, h, w = out.shape
    if not (out.flags.c_contiguous and _transpose_frames(rows.reshape(N, h * w, C), out.reshape(N, C, h * w))):
        out[...] = rows.reshape(N, h, w, C).transpose(0, 3, 1, 2)
    return out


@dataclass
class GuidancePlan:
    """Everything of one window's guidance that does not change between sampler steps.

    Tracks with at least one non-zero term are kept (``tracks``); term j of a track pairs inner frame
    ``frames[j]`` with reference ``refs[j]`` (the first ``n0`` terms use reference 0, the others 1),
    coefficient ``coef[k, j] = W * vis * vis / (K * Npairs * 25 * C)``. ``gather`` rows are
    ``(track, term, tap)`` over the channel-last rows of the inner frames 1..F-2; ``scatter`` is the
    same pattern with each term's entries scaled by its coefficient; ``ref_gather`` rows are
    ``(track, r, tap)`` over the rows of the two reference frames.
    """

    shape: tuple[int, int, int, int]   # (F, C, h, w) of x0
    dtype: type
    tracks: np.ndarray                 # [Kp] kept track indices
    n0: int                            # terms against reference 0 (frames 1..n0), then reference 1
    coef: np.ndarray                   # [Kp, Npairs] float64 term coefficients
    gather: _Sparse | None             # [Kp * Npairs * 25, (F-2) * h * w]
    scatter: _Sparse | None            # gather with the coefficients folded in, used transposed
    ref_gather: _Sparse | None         # [Kp * 2 * 25, 2 * h * w]
    chunk: int = TRACKS_PER_CHUNK      # tracks per work chunk
    buffers: dict = field(default_factory=dict)  # reused work arrays

    @property
    def empty(self) -> bool:
        return self.gather is None


def plan_guidance(pos: np.ndarray, vis: np.ndarray, shape: tuple[int, int, int, int],
                  dtype=np.float32, tracks_per_chunk: int = TRACKS_PER_CHUNK) -> GuidancePlan:
    """Precompute the sparse gather/scatter patterns for latents of ``shape`` (F, C, h, w).

    ``pos`` ``[K, F, 2]`` latent (u, v), ``vis`` ``[K, F]`` in [0, 1]. Terms with a zero
    coefficient (invisible points, W = 0) get no entries, so they cost nothing per step.
    ``tracks_per_chunk`` sets the work-chunk size (speed only; results do not depend on it).
    """
    F, C, h, w = (int(s) for s in shape)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, F, 2)
    vis = np.asarray(vis, dtype=np.float64).reshape(-1, F)
    K = pos.shape[0]
    W = reference_weights(F).astype(np.float64)
    npairs = int(np.count_nonzero(W > 0))
    none = GuidancePlan((F, C, h, w), dtype, np.zeros(0, np.int64), 0, np.zeros((0, npairs)),
                        None, None, None, max(1, int(tracks_per_chunk)))
    if K == 0 or npairs == 0:
        return none
    ref_frame = np.array([0, F - 1])
    f0, f1 = np.flatnonzero(W[:, 0] > 0), np.flatnonzero(W[:, 1] > 0)   # each a contiguous range
    frames = np.concatenate([f0, f1])
    refs = np.concatenate([np.zeros(f0.size, np.int64), np.ones(f1.size, np.int64)])
    coef = (W[frames, refs][None, :] * vis[:, frames] * vis[:, ref_frame[refs]]
            / (K * npairs * PATCH_TAPS * C))                               # [K, Npairs]
    tracks = np.flatnonzero((coef > 0).any(axis=1))
    if tracks.size == 0:
        return none
    coef = coef[tracks]
    Kp = tracks.size
    k = np.repeat(tracks, npairs)                                           # [Kp * Npairs] terms
    ft = np.tile(frames, Kp)
    wx, rx = _patch_taps(pos[k, ft], ft - 1, h, w)                          # [T, 25, 4]
    c = coef.reshape(-1)
    wx = np.where((c > 0)[:, None, None], wx, 0.0).reshape(-1, 4)
    gather = _sparse(wx, rx.reshape(-1, 4), (F - 2) * h * w, dtype)
    scatter = _Sparse(gather.indptr, gather.indices,
                      (wx * np.repeat(c, PATCH_TAPS)[:, None])[wx != 0].astype(dtype), gather.n_cols)
    kr = np.repeat(tracks, 2)                                               # [Kp * 2] (k, r) patches
    rr = np.tile(np.array([0, 1]), Kp)
    wr, rows_r = _patch_taps(pos[kr, ref_frame[rr]], rr, h, w)
    ref_gather = _sparse(wr.reshape(-1, 4), rows_r.reshape(-1, 4), 2 * h * w, dtype)
    return GuidancePlan((F, C, h, w), dtype, tracks, int(f0.size), coef, gather, scatter, ref_gather,
                        max(1, int(tracks_per_chunk)))


def reference_taps(plan: GuidancePlan, ref: np.ndarray) -> np.ndarray:
    """The reference patches of every kept track, ``[Kp * 2 * 25, C]`` (rows (track, r, tap)).

    Constant for a window (references are stop-gradient); compute it once and pass it to
    ``guidance_step`` to save a gather per step.
    """
    C, h, w = plan.shape[1:]
    ref = np.asarray(ref)
    out = np.zeros((plan.tracks.size * 2 * PATCH_TAPS, C), plan.dtype)
    if plan.empty:
        return out
    rows = _rows_into(np.ascontiguousarray(ref, dtype=plan.dtype), np.empty((2 * h * w, C), plan.dtype))
    _spmm_acc(plan.ref_gather, 0, out.shape[0], rows, out)
    return out


def _sign_into(d: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = sign(d)`` exactly (+-1, 0 for +-0, NaN for NaN) in three SIMD passes.

    ``d * 2^e * 2^e`` (``2^e`` = the dtype's largest power of two / 2) is >= 1 in magnitude for every
    non-zero ``d``, subnormals included (it may overflow to inf), and stays 0 for 0; clipping to
    [-1, 1] leaves the sign. ``np.sign`` has no SIMD loop and is ~5x slower.
    """
    big = np.dtype(d.dtype).type(2.0 ** (np.finfo(d.dtype).maxexp - 2))  # 2^126 for float32
    with np.errstate(over="ignore"):
        np.multiply(d, big, out=out)
        np.multiply(out, big, out=out)
    return np.clip(out, -1, 1, out=out)


def _buffers(plan: GuidancePlan) -> dict:
    buf = plan.buffers
    if not buf:
        F, C, h, w = plan.shape
        rows = min(plan.chunk, plan.tracks.size) * plan.coef.shape[1] * PATCH_TAPS
        buf.update(x=np.empty(((F - 2) * h * w, C), plan.dtype), grad=np.empty(((F - 2) * h * w, C), plan.dtype),
                   d=np.empty((rows, C), plan.dtype), s=np.empty((rows, C), plan.dtype),
                   a=np.empty((rows, C), plan.dtype), sums=np.empty(plan.coef.size, plan.dtype))
    return buf


def guidance_step(plan: GuidancePlan, x0: np.ndarray, ref: np.ndarray | None = None,
                  with_loss: bool = True, ref_taps: np.ndarray | None = None,
                  out: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """``(L, dL/dx0)`` for a planned window; ``ref`` ``[2, C, h, w]`` or None (= ``x0[[0, F-1]]``).

    The gradient is ``plan.dtype`` ``[F, C, h, w]``; frames 0 and F-1 are always zero.
    ``with_loss=False`` skips the loss (returned as 0.0): the sampler only needs the gradient.
    ``ref_taps`` (from ``reference_taps``) replaces ``ref`` when given. ``out`` (``[F, C, h, w]``
    of ``plan.dtype``), when given, receives the gradient (no allocation per step).
    """
    F, C, h, w = plan.shape
    if tuple(x0.shape) != plan.shape:
        raise ValueError(f"x0 shape {x0.shape} does not match the guidance plan {plan.shape}")
    if out is None:
        out = np.empty(plan.shape, dtype=plan.dtype)
    out[0] = 0
    out[F - 1] = 0
    if plan.empty:
        out.fill(0)
        return 0.0, out
    if ref_taps is None:
        ref_taps = reference_taps(plan, x0[[0, F - 1]] if ref is None else ref)
    buf = _buffers(plan)
    x = _rows_into(np.ascontiguousarray(x0[1:F - 1], dtype=plan.dtype), buf["x"])
    grad = buf["grad"]
    grad.fill(0)
    npairs, n0, chunk = plan.coef.shape[1], plan.n0, plan.chunk
    q = ref_taps.reshape(-1, 2, 1, PATCH_TAPS * C)                       # [Kp, r, 1, 25 C]
    sums = buf["sums"].reshape(-1, npairs)
    for k0 in range(0, plan.tracks.size, chunk):
        k1 = min(k0 + chunk, plan.tracks.size)
        r0, r1 = k0 * npairs * PATCH_TAPS, k1 * npairs * PATCH_TAPS
        n = r1 - r0
        d, s = buf["d"][:n], buf["s"][:n]
        dv = d.reshape(k1 - k0, npairs, PATCH_TAPS * C)
        np.negative(q[k0:k1, 0], out=dv[:, :n0])                     # D = -Q (broadcast over frames)
        np.negative(q[k0:k1, 1], out=dv[:, n0:])
        _spmm_acc(plan.gather, r0, r1, x, d)                         # D += P(x0)
        if with_loss:
            a = np.abs(d, out=buf["a"][:n])
            np.add.reduce(a.reshape(-1, PATCH_TAPS * C), axis=1, out=sums[k0:k1].reshape(-1))  # no BLAS threads
        _sign_into(d, s)
        _spmm_acc(plan.scatter, r0, r1, s, grad, transpose=True)     # grad += (c G)^T sign(D)
    loss = float(np.dot(sums.reshape(-1).astype(np.float64), plan.coef.reshape(-1))) if with_loss else 0.0
    _rows_to_cf(grad, out[1:F - 1])
    return loss, out


def guidance_loss_and_grad(x0: np.ndarray, ref: np.ndarray | None, pos: np.ndarray, vis: np.ndarray,
                           dtype=np.float32) -> tuple[float, np.ndarray]:
    """Loss ``L`` and ``dL/dx0`` exactly as defined in ``docs/guidance.md``.

    x0 ``[F, C, h, w]``, ref ``[2, C, h, w]`` (or None: ``x0[[0, F-1]]``, as constants),
    pos ``[K, F, 2]`` latent (u, v), vis ``[K, F]``. One-shot: plans and runs one step.
    """
    plan = plan_guidance(pos, vis, x0.shape, dtype)
    return guidance_step(plan, x0, ref)


def make_guidance(ref: np.ndarray | None, pos: np.ndarray, vis: np.ndarray,
                  shape: tuple[int, int, int, int], dtype=np.float32,
                  record: list | None = None) -> Callable[[np.ndarray, int], np.ndarray]:
    """A sampler ``guidance(x0, t) -> dL/dx0`` closure over one window's planned tracks.

    ``record`` (a list), when given, receives ``(t, loss)`` for every call. The returned gradient
    is a buffer reused by the next call (the sampler consumes it at once).
    """
    plan = plan_guidance(pos, vis, shape, dtype)
    taps = None if (ref is None or plan.empty) else reference_taps(plan, np.asarray(ref, dtype=dtype))
    out = np.empty(tuple(shape), dtype=dtype)

    def guidance(x0: np.ndarray, t: int) -> np.ndarray:
        loss, grad = guidance_step(plan, x0, None, with_loss=record is not None, ref_taps=taps, out=out)
        if record is not None:
            record.append((int(t), loss))
        return grad

    return guidance
