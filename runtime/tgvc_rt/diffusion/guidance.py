"""Trajectory guidance, NumPy reference of ``docs/guidance.md`` (loss and its exact gradient).

Everything is vectorised, with no Python loop over tracks, frames or taps. A sparse matrix
``S`` holds, for every term (track k, frame f, reference r) and each of its 25 taps, the bilinear
weights of the tap's 4 neighbours (0 for neighbours outside the latent); ``S_ref`` the same for
the reference taps. Applied to the channel-last rows ``[(frame, y, x), C]`` of x0 and ref:

* differences ``d = S @ X - S_ref @ R``   (gather + bilinear interpolation, all channels at once);
* gradient    ``dL/dX = (c S)^T @ sign(d)`` (the bilinear scatter, ``c`` = term coefficients,
  accumulated in compiled code).

Both depend only on the track positions, which are fixed for a window, so ``plan_guidance``
builds them once and ``guidance_step`` reuses them at every sampler step. Math runs in float32 by
default; pass ``dtype=np.float64`` for the gradient tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

try:  # scipy's compiled kernels, called with our own output buffers (no per-step allocation)
    from scipy.sparse._sparsetools import csc_matvecs as _csc_matvecs
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a scipy without them: the public operator path below
    _csr_matvecs = _csc_matvecs = None

PATCH_RADIUS = 2  # taps at offsets -2..2 in x and y: a 5x5 patch (docs/guidance.md)
PATCH_TAPS = (2 * PATCH_RADIUS + 1) ** 2


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
    # one bilinear weight set per patch: all taps are integer offsets of the centre
    wts = np.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay], axis=1)  # [N, 4]
    off = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1)
    tdx = np.tile(off, 2 * PATCH_RADIUS + 1)            # [25] dx, fastest
    tdy = np.repeat(off, 2 * PATCH_RADIUS + 1)          # [25] dy
    big = 1 << 20  # positions far outside all read zeros; keeps the int conversion finite
    fu = np.clip(fu, -big, big).astype(np.int64)
    fv = np.clip(fv, -big, big).astype(np.int64)
    cx = fu[:, None, None] + tdx[None, :, None] + np.array([0, 1, 0, 1])[None, None, :]
    cy = fv[:, None, None] + tdy[None, :, None] + np.array([0, 0, 1, 1])[None, None, :]
    valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)                   # [N, 25, 4]
    rows = (frame.astype(np.int64)[:, None, None] * h + np.clip(cy, 0, h - 1)) * w + np.clip(cx, 0, w - 1)
    return np.where(valid, wts[:, None, :], 0.0), rows


def _csr(data: np.ndarray, cols: np.ndarray, shape: tuple[int, int], dtype) -> sp.csr_matrix:
    """CSR matrix with a fixed number of entries per row (``data``/``cols`` ``[rows, nnz_per_row]``)."""
    nrows, per_row = data.shape
    index_dtype = np.int32 if max(data.size, shape[1]) < 2**31 - 1 else np.int64
    indptr = np.arange(0, data.size + 1, per_row, dtype=index_dtype)
    return sp.csr_matrix((data.astype(dtype).ravel(), cols.astype(index_dtype).ravel(), indptr),
                         shape=shape)


@dataclass
class GuidancePlan:
    """Everything of one window's guidance that does not change between sampler steps.

    A *term* is one (track k, frame f, reference r) with a non-zero coefficient
    ``c = W[f, r] * vis[k, f] * vis[k, r'] / (K * Npairs * 25 * C)``; it has 25 tap rows.
    ``gather`` samples the x0 taps of all terms from the channel-last rows of x0, ``ref_gather``
    the reference taps from the rows of ``ref``; ``scatter`` is ``gather`` transposed with each row
    scaled by its term's ``c``, so ``dL/dX = scatter @ sign(gather @ X - ref_gather @ R)``.
    """

    shape: tuple[int, int, int, int]   # (F, C, h, w) of x0
    gather: sp.csr_matrix | None       # [T * 25, F * h * w], 4 bilinear weights per row
    ref_gather: sp.csr_matrix | None   # [T * 25, 2 * h * w]
    scatter: sp.csc_matrix | None      # [F * h * w, T * 25] (a CSC view of a transposed CSR)
    coef: np.ndarray                   # [T] float64 term coefficients (for the loss)
    dtype: type
    buffers: dict = field(default_factory=dict)  # reused work arrays (rows, d, sign, grad)

    @property
    def empty(self) -> bool:
        return self.gather is None


def plan_guidance(pos: np.ndarray, vis: np.ndarray, shape: tuple[int, int, int, int],
                  dtype=np.float32) -> GuidancePlan:
    """Precompute the sparse gather/scatter matrices for latents of ``shape`` (F, C, h, w).

    ``pos`` ``[K, F, 2]`` latent (u, v), ``vis`` ``[K, F]`` in [0, 1]. Terms with a zero
    coefficient (invisible points, W = 0) are dropped here, so they cost nothing per step.
    """
    F, C, h, w = (int(s) for s in shape)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, F, 2)
    vis = np.asarray(vis, dtype=np.float64).reshape(-1, F)
    K = pos.shape[0]
    W = reference_weights(F).astype(np.float64)
    npairs = int(np.count_nonzero(W > 0))
    none = GuidancePlan((F, C, h, w), None, None, None, np.zeros(0), dtype)
    if K == 0 or npairs == 0:
        return none
    ref_frame = np.array([0, F - 1])
    coef = (W[None, :, :] * vis[:, :, None] * vis[:, ref_frame][:, None, :]
            / (K * npairs * PATCH_TAPS * C))                                # [K, F, 2]
    k, f, r = np.nonzero(coef > 0)
    if k.size == 0:
        return none
    c = coef[k, f, r]
    wx, rx = _patch_taps(pos[k, f], f, h, w)                                # x0 taps  [T, 25, 4]
    wr, rr = _patch_taps(pos[k, ref_frame[r]], r, h, w)                     # ref taps [T, 25, 4]
    T25 = k.size * PATCH_TAPS
    gather = _csr(wx.reshape(T25, 4), rx.reshape(T25, 4), (T25, F * h * w), dtype)
    ref_gather = _csr(wr.reshape(T25, 4), rr.reshape(T25, 4), (T25, 2 * h * w), dtype)
    scatter = _csr((wx * c[:, None, None]).reshape(T25, 4), rx.reshape(T25, 4), (T25, F * h * w), dtype).T
    return GuidancePlan((F, C, h, w), gather, ref_gather, scatter, c, dtype)


def _spmm(a, x: np.ndarray, out: np.ndarray, accumulate: bool = False) -> np.ndarray:
    """``out[:] = a @ x`` (``out += a @ x`` with ``accumulate``) for CSR/CSC ``a``, C-contiguous ``x``."""
    if _csr_matvecs is None or a.dtype != x.dtype or a.dtype != out.dtype:
        if accumulate:
            out += a @ x
        else:
            out[...] = a @ x
        return out
    if not accumulate:
        out.fill(0)
    n_row, n_col = a.shape
    kernel = _csr_matvecs if a.format == "csr" else _csc_matvecs
    kernel(n_row, n_col, x.shape[1], a.indptr, a.indices, a.data, x.ravel(), out.ravel())
    return out


def _rows_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``[N, C, h, w]`` -> channel-last rows ``[N * h * w, C]``, written into ``out`` (one copy)."""
    N, C, h, w = x.shape
    out.reshape(N, h, w, C)[...] = np.asarray(x).transpose(0, 2, 3, 1)
    return out


def reference_taps(plan: GuidancePlan, ref: np.ndarray) -> np.ndarray:
    """The reference side of every term's taps, ``ref_gather @ R``, ``[T * 25, C]``.

    Constant for a window (references are stop-gradient); compute it once and pass it to
    ``guidance_step`` to save a gather per step.
    """
    C, h, w = plan.shape[1:]
    rows = _rows_into(np.asarray(ref), np.empty((2 * h * w, C), plan.dtype))
    return _spmm(plan.ref_gather, rows, np.empty((plan.ref_gather.shape[0], C), plan.dtype))


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
    if plan.empty:
        if out is not None:
            out.fill(0)
            return 0.0, out
        return 0.0, np.zeros(plan.shape, dtype=plan.dtype)
    if ref_taps is None:
        ref_taps = reference_taps(plan, x0[[0, F - 1]] if ref is None else ref)
    buf = plan.buffers
    if not buf:
        T25 = plan.gather.shape[0]
        buf.update(rows=np.empty((F * h * w, C), plan.dtype), d=np.empty((T25, C), plan.dtype),
                   sign=np.empty((T25, C), plan.dtype), grad=np.empty((F * h * w, C), plan.dtype))
    rows = _rows_into(x0, buf["rows"])
    d = np.negative(ref_taps, out=buf["d"])
    _spmm(plan.gather, rows, d, accumulate=True)                           # d = P(x0) - P(ref)
    loss = 0.0
    if with_loss:
        per_term = (np.abs(d) @ np.ones(C, dtype=d.dtype)).reshape(-1, PATCH_TAPS).sum(axis=1)
        loss = float(np.dot(per_term.astype(np.float64), plan.coef))
    sign = np.sign(d, out=buf["sign"])  # into a second buffer: numpy's in-place sign is slow
    grad_rows = _spmm(plan.scatter, sign, buf["grad"])                     # [F * h * w, C]
    grad_cf = grad_rows.reshape(F, h, w, C).transpose(0, 3, 1, 2)
    if out is None:
        return loss, np.ascontiguousarray(grad_cf)
    out[...] = grad_cf
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
