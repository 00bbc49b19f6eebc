"""Dense motion of a keyframe group from its sparse decoded tracks.

For every local frame f we build, on a reduced grid (``scale`` of the frame size), two backward
flows: to key A (frame 0) and to key B (frame F-1), in full-resolution pixels. A pixel x of frame f
shows key A's content at ``x + flow_a[f](x)``.

Method (normalised convolution with a motion prior):

1. Global motion. An affine model per frame and direction is fitted to all tracks (weighted least
   squares, a few IRLS rounds). It is used as the prior only when the tracks look like camera
   motion: enough inliers, spread over the frame, and a non-trivial motion. Otherwise the prior is
   zero motion, so regions without tracks stay static.
2. Residuals ``d_k - prior(p_k)`` of the tracks visible at f are splatted (bilinear) onto the grid
   with a weight, blurred with a Gaussian of width sigma (adapted to the track spacing), and
   normalised by the blurred weight (full strength everywhere). The *support* of the tracks,
   blurred weight / (blurred weight + ``prior_weight``), says how far that residual applies: far
   from any track the flow fades to the prior. (The warp decoder sharpens the support with the
   keyframes' colours.)
3. Occlusion evidence from visibility: tracks visible at f but not at the key splat an indicator,
   normalised the same way; ``occ_vis_a[f]`` in [0, 1] says "this part of frame f is hidden in A".

Everything is vectorised over tracks and frames. ``GroupMotion`` computes the fields of any range of
frames on demand, so a decoder holds a window of frames' fields at a time whatever the group's
length; ``dense_motion`` is all frames at once. Both give the same numbers (see ``GroupMotion``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tgvc_rt.types import Tracks


@dataclass(frozen=True)
class DenseMotionOptions:
    scale: float = 0.25  # motion grid size relative to the frame (fields are smooth)
    sigma_nn_factor: float = 0.8  # Gaussian sigma = factor * nearest-track distance percentile
    sigma_nn_percentile: float = 25.0  # low percentile: densely tracked objects set sigma
    sigma_min: float = 3.0  # full-res pixels
    sigma_max: float = 24.0  # full-res pixels
    prior_weight: float = 0.02  # weight of the prior (global or zero motion), one lone track = 1; was 0.5,
    #   which applied a lone track's motion at 2/3 strength (six clips, 0.005 bpp: warp PSNR-Y +0.09 dB,
    #   re-tracked EPE 9.7 -> 5.7 px; docs/decoder.md). The keys' colours still pull static cells to the prior.
    occluded_track_weight: float = 0.5  # flow weight of a track hidden in the key it points to
    global_min_tracks: int = 8  # fewer visible tracks: no global model
    global_inlier_px: float = 2.0  # residual below this (+5% of the motion) counts as inlier
    global_min_inlier_ratio: float = 0.6  # share of inliers needed to call it camera motion
    global_min_coverage: float = 0.5  # share of 4x4 frame cells holding an inlier
    global_min_motion_px: float = 0.5  # the model must move some corner by at least this
    irls_rounds: int = 3  # reweighting rounds of the robust affine fit


@dataclass
class DenseMotion:
    """Reduced-grid motion of one group, or of a range of its frames (``h, w`` = grid size, F frames
    from local frame ``start``).

    The flow to key A is ``prior_a + support * residual_a`` (same for B): ``residual`` is the
    normalised-convolution interpolation of the tracks' residuals (full strength near tracks),
    ``support`` in [0, 1] how much the tracks cover a grid cell (density / (density + prior)).
    """

    prior_a: np.ndarray  # float32 [F, h, w, 2]: global (camera) or zero backward flow to key A
    prior_b: np.ndarray  # float32 [F, h, w, 2]
    residual_a: np.ndarray  # float32 [F, h, w, 2]: tracked motion on top of the prior
    residual_b: np.ndarray  # float32 [F, h, w, 2]
    support: np.ndarray  # float32 [F, h, w]: track coverage in [0, 1]
    occ_vis_a: np.ndarray  # float32 [F, h, w]: visibility evidence "hidden in A"
    occ_vis_b: np.ndarray  # float32 [F, h, w]
    height: int  # full frame size
    width: int
    start: int = 0  # the group's local frame held at index 0 (GroupMotion.frames)

    @property
    def flow_a(self) -> np.ndarray:
        """float32 [F, h, w, 2]: backward flow frame f -> key A, full-res px."""
        return self.prior_a + self.support[..., None] * self.residual_a

    @property
    def flow_b(self) -> np.ndarray:
        return self.prior_b + self.support[..., None] * self.residual_b


def grid_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def grid_centres(height: int, width: int, h: int, w: int) -> np.ndarray:
    """Full-res (x, y) of the grid's pixel centres, float32 [h, w, 2] (cv2.resize's mapping)."""
    xs = (np.arange(w, dtype=np.float32) + 0.5) * (width / w) - 0.5
    ys = (np.arange(h, dtype=np.float32) + 0.5) * (height / h) - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], axis=-1)


FIT_FRAMES = 64  # frames per batched affine fit of the global model
BLUR_CHANNELS = 64  # splatted channels per GaussianBlur call; the chunks are fixed over the group (see GroupMotion)


def _affine_fit(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, rounds: int) -> np.ndarray:
    """Batched robust affine fit ``dst ~ [src, 1] @ M``; src/dst [B, K, 2], weight [B, K] -> [B, 3, 2]."""
    x = np.concatenate([src, np.ones_like(src[..., :1])], axis=-1).astype(np.float64)
    y = dst.astype(np.float64)
    w = weight.astype(np.float64)
    ridge = 1e-6 * np.eye(3)
    m = np.zeros((src.shape[0], 3, 2))
    for it in range(rounds + 1):
        xtw = np.swapaxes(x * w[..., None], 1, 2)
        m = np.linalg.solve(xtw @ x + ridge, xtw @ y)
        if it < rounds:
            r = np.linalg.norm(x @ m - y, axis=-1)
            scale = np.maximum(1.0, 1.5 * np.median(np.where(w > 0, r, np.nan), axis=1, keepdims=True))
            scale = np.nan_to_num(scale, nan=1.0)
            w = weight * (1.0 / (1.0 + (r / scale) ** 2))  # Cauchy reweighting
    return m.astype(np.float32)


def _affine_per_frame(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """m [F, 3, 2] applied to per-frame points pts [F, K, 2] -> [F, K, 2]."""
    return np.einsum("fkc,fcd->fkd", pts, m[:, :2]) + m[:, None, 2]


def _affine_on_grid(m: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """m [F, 3, 2] applied to grid points [h, w, 2] -> [F, h, w, 2]."""
    return np.einsum("hwc,fcd->fhwd", grid, m[:, :2]) + m[:, None, None, 2]


def _global_model(tracks: Tracks, height: int, width: int, opts: DenseMotionOptions):
    """Per frame affine maps to key A and key B ([F, 3, 2] each), or None if no camera motion."""
    xy, vis = tracks.xy, tracks.vis
    n = tracks.num_frames - 1
    both = vis[:, 0] & vis[:, n]
    if int(both.sum()) < opts.global_min_tracks:
        return None
    # decide on the key-to-key motion
    m_ab = _affine_fit(xy[None, both, 0], xy[None, both, n], np.ones((1, int(both.sum()))), opts.irls_rounds)
    pred = xy[both, 0] @ m_ab[0, :2] + m_ab[0, 2]
    motion = np.linalg.norm(xy[both, n] - xy[both, 0], axis=-1)
    inlier = np.linalg.norm(pred - xy[both, n], axis=-1) < opts.global_inlier_px + 0.05 * motion
    cells = np.unique(np.clip((xy[both, 0][inlier] * [4.0 / width, 4.0 / height]).astype(int), 0, 3), axis=0)
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float32)
    corner_motion = np.linalg.norm(corners @ m_ab[0, :2] + m_ab[0, 2] - corners, axis=-1).max()
    if (inlier.mean() < opts.global_min_inlier_ratio or len(cells) / 16.0 < opts.global_min_coverage
            or corner_motion < opts.global_min_motion_px):
        return None
    src = np.swapaxes(xy, 0, 1)  # [F, K, 2]
    m_a, m_b = [], []
    for s in range(0, n + 1, FIT_FRAMES):  # each frame's fit is its own: chunks bound the temporaries
        part = src[s:s + FIT_FRAMES]
        wa = np.swapaxes(vis[:, s:s + FIT_FRAMES] & vis[:, :1], 0, 1).astype(np.float32)
        wb = np.swapaxes(vis[:, s:s + FIT_FRAMES] & vis[:, n:], 0, 1).astype(np.float32)
        m_a.append(_affine_fit(part, np.broadcast_to(src[:1], part.shape), wa, opts.irls_rounds))
        m_b.append(_affine_fit(part, np.broadcast_to(src[n:], part.shape), wb, opts.irls_rounds))
    return np.concatenate(m_a), np.concatenate(m_b)


def track_sigma(tracks: Tracks, opts: DenseMotionOptions) -> float:
    """A low percentile of the nearest-visible-track distances (first/middle/last frame), scaled, clipped."""
    if tracks.num_tracks < 2:
        return opts.sigma_max
    frames = sorted({0, tracks.num_frames // 2, tracks.num_frames - 1})  # a few frames suffice
    xy, vis = tracks.xy[:, frames], tracks.vis[:, frames]
    diff = xy[:, None] - xy[None]  # [K, K, 3, 2]
    d = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2)
    d = np.where(vis[:, None] & vis[None], d, np.inf)
    d[np.arange(tracks.num_tracks), np.arange(tracks.num_tracks)] = np.inf
    nn = d.min(axis=1)  # [K, F]
    nn = nn[np.isfinite(nn)]
    if nn.size == 0:
        return opts.sigma_max
    nn_dist = np.percentile(nn, opts.sigma_nn_percentile)
    return float(np.clip(opts.sigma_nn_factor * nn_dist, opts.sigma_min, opts.sigma_max))


def _splat(pos: np.ndarray, values: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear splat. pos [F, K, 2] grid coords, values [F, K, C] -> [h, w, F*C] (frame-major)."""
    f_, k_, c_ = values.shape
    x0 = np.floor(pos[..., 0]).astype(np.int64)
    y0 = np.floor(pos[..., 1]).astype(np.int64)
    fx = (pos[..., 0] - x0).astype(np.float32)
    fy = (pos[..., 1] - y0).astype(np.float32)
    out = np.zeros(f_ * h * w * c_, np.float64)
    frame = np.arange(f_)[:, None]
    chan = np.arange(c_)
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        cell = ((yi.clip(0, h - 1) * w + xi.clip(0, w - 1)) * f_ + frame) * c_  # [F, K]
        idx = (cell[..., None] + chan).reshape(-1)
        val = (values * (wt * inside)[..., None]).reshape(-1)
        out += np.bincount(idx, weights=val, minlength=out.size)
    return out.reshape(h, w, f_ * c_).astype(np.float32)


def dense_motion(tracks: Tracks, height: int, width: int,
                 options: DenseMotionOptions = DenseMotionOptions()) -> DenseMotion:
    """Reduced-grid backward flows to both keys and visibility-based occlusion maps of a group (all frames)."""
    return GroupMotion(tracks, height, width, options).frames(0, tracks.num_frames)


class GroupMotion:
    """Dense motion of one group, one range of frames at a time (``frames``), in memory that grows with
    the range, not the group.

    Built once per group from the tracks: the global model (affine maps per frame, [F, 3, 2] each) and
    the Gaussian width. ``frames(start, stop)`` then equals ``dense_motion(...)`` restricted to those
    frames, bit for bit: every step works per frame except the Gaussian blur, which filters the splatted
    channels (9 per frame, frame-major over the whole group) in fixed chunks of ``BLUR_CHANNELS``; a range
    blurs the chunks covering it, each splatted frame by frame from the (at most 9) frames it touches, and
    the last chunk is kept for the next range (ranges are usually asked for in ascending order).
    """

    def __init__(self, tracks: Tracks, height: int, width: int,
                 options: DenseMotionOptions = DenseMotionOptions()):
        self.tracks, self.height, self.width, self.options = tracks, height, width, options
        self.num_frames = tracks.num_frames
        self.grid = grid_size(height, width, options.scale)
        self.centres = grid_centres(height, width, *self.grid)
        self.active = tracks.num_tracks > 0 and self.num_frames >= 2  # else all fields are zero
        self.glob = _global_model(tracks, height, width, options) if self.active else None
        self.sigma = track_sigma(tracks, options) * options.scale if self.active else 0.0
        self._chunk: tuple[int, np.ndarray] | None = None  # the last blurred chunk: (index, [h, w, C])

    @property
    def has_prior(self) -> bool:
        """Whether the prior (global) motion is non-zero anywhere in the group."""
        if self.glob is None:
            return False
        step = max(1, BLUR_CHANNELS // 9)
        return any(np.any(p) for s in range(0, self.num_frames, step) for p in self._priors(s, s + step))

    def _priors(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.grid
        if self.glob is None:
            zeros2 = np.zeros((stop - start, h, w, 2), np.float32)
            return zeros2, zeros2
        m_a, m_b = self.glob
        c = self.centres
        return _affine_on_grid(m_a[start:stop], c) - c[None], _affine_on_grid(m_b[start:stop], c) - c[None]

    def _splat_inputs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid positions [B, K, 2] and values [B, K, 9] of the tracks at frames ``start .. stop-1``: weighted
        residuals to both keys, visibility and hiding, to be splatted on the grid."""
        tracks, options = self.tracks, self.options
        h, w = self.grid
        n = self.num_frames - 1
        xy, vis = tracks.xy, tracks.vis
        part, pvis = xy[:, start:stop], vis[:, start:stop]
        src = np.swapaxes(part, 0, 1)  # [B, K, 2] positions at frame f
        d_a = xy[:, :1] - part  # [K, B, 2] displacement to key A
        d_b = xy[:, n:] - part
        if self.glob is not None:
            m_a, m_b = self.glob
            d_a = d_a - np.swapaxes(_affine_per_frame(m_a[start:stop], src) - src, 0, 1)
            d_b = d_b - np.swapaxes(_affine_per_frame(m_b[start:stop], src) - src, 0, 1)
        vis_f = np.swapaxes(pvis, 0, 1).astype(np.float32)  # [B, K]
        hid_a = np.swapaxes(~vis[:, :1] & pvis, 0, 1).astype(np.float32)
        hid_b = np.swapaxes(~vis[:, n:] & pvis, 0, 1).astype(np.float32)
        wt_a = vis_f * (1 - hid_a * (1 - options.occluded_track_weight))
        wt_b = vis_f * (1 - hid_b * (1 - options.occluded_track_weight))
        ra, rb = np.swapaxes(d_a, 0, 1), np.swapaxes(d_b, 0, 1)  # [B, K, 2]
        values = np.concatenate([wt_a[..., None], wt_a[..., None] * ra, wt_b[..., None], wt_b[..., None] * rb,
                                 vis_f[..., None], hid_a[..., None], hid_b[..., None]], axis=-1)  # [B, K, 9]
        pos = (src + 0.5) * np.array([w / self.width, h / self.height], np.float32) - 0.5
        return pos, values

    def _blurred_chunk(self, index: int) -> np.ndarray:
        """Blurred channels ``index * BLUR_CHANNELS ..`` (at most BLUR_CHANNELS) of the group's splat."""
        if self._chunk is not None and self._chunk[0] == index:
            return self._chunk[1]
        h, w = self.grid
        lo = index * BLUR_CHANNELS
        hi = min(lo + BLUR_CHANNELS, self.num_frames * 9)
        first, last = lo // 9, -(-hi // 9)
        pos, values = self._splat_inputs(first, last)
        splat = np.empty((h, w, hi - lo), np.float32)
        for i in range(last - first):  # frame by frame: a frame's splat is the same alone (float64 sums per cell)
            c = (first + i) * 9
            a, b = max(lo, c), min(hi, c + 9)
            splat[..., a - lo:b - lo] = _splat(pos[i:i + 1], values[i:i + 1], h, w)[..., a - c:b - c]
        chunk = cv2.GaussianBlur(splat, (0, 0), self.sigma, borderType=cv2.BORDER_CONSTANT).reshape(splat.shape)
        self._chunk = (index, chunk)
        return chunk

    def _blurred(self, start: int, stop: int) -> np.ndarray:
        """Blurred splat of frames ``start .. stop-1``, float32 [h, w, (stop - start) * 9]."""
        lo, hi = start * 9, stop * 9
        parts = []
        for index in range(lo // BLUR_CHANNELS, -(-hi // BLUR_CHANNELS)):
            base = index * BLUR_CHANNELS
            parts.append(self._blurred_chunk(index)[..., max(lo, base) - base:min(hi, base + BLUR_CHANNELS) - base])
        return np.concatenate(parts, axis=-1)

    def frames(self, start: int, stop: int) -> DenseMotion:
        """The fields of local frames ``start .. stop-1`` (``DenseMotion.start`` = ``start``)."""
        if not 0 <= start < stop <= self.num_frames:
            raise ValueError(f"frames {start}..{stop - 1} are not in a group of {self.num_frames} frames")
        f32 = np.float32
        h, w = self.grid
        b = stop - start
        if not self.active:
            zeros2 = np.zeros((b, h, w, 2), f32)
            zeros1 = np.zeros((b, h, w), f32)
            return DenseMotion(zeros2, zeros2, zeros2, zeros2, zeros1, zeros1, zeros1, self.height, self.width,
                               start)
        prior_a, prior_b = self._priors(start, stop)
        sigma = self.sigma
        acc = self._blurred(start, stop)
        acc = acc.reshape(h, w, b, 9).transpose(2, 0, 1, 3) * np.float32(2 * np.pi * sigma * sigma)
        prior = np.float32(self.options.prior_weight)
        tiny = np.float32(1e-6)
        res_a = acc[..., 1:3] / (acc[..., 0:1] + tiny)
        res_b = acc[..., 4:6] / (acc[..., 3:4] + tiny)
        support = acc[..., 6] / (acc[..., 6] + prior)
        occ_a = acc[..., 7] / (acc[..., 6] + prior)
        occ_b = acc[..., 8] / (acc[..., 6] + prior)
        return DenseMotion(prior_a.astype(f32), prior_b.astype(f32), res_a.astype(f32), res_b.astype(f32),
                           np.clip(support, 0, 1).astype(f32), np.clip(occ_a, 0, 1).astype(f32),
                           np.clip(occ_b, 0, 1).astype(f32), self.height, self.width, start)
