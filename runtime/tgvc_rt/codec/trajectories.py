"""Trajectory coding: Tracks <-> bytes (quantised, predicted, range coded with constriction).

Payload (all integers little-endian varints unless noted)::

    K                                  number of tracks; K = 0 ends the payload (1 byte in all)
    step_code  u8                      quantisation step = step_code / 16 px
    flags      u8                      bit 0: instance-motion prediction, bit 1: velocity prediction
    R                                  number of runs of equal instance ids in track order
    7 x u8                             model parameters: P(visible at frame 0), P(stay visible),
                                       P(stay invisible) (code/256); Laplace scales of instance
                                       motion, start positions, x and y residuals (2^((c-64)/16))
    body_len                           length of the range-coded body, which ends the payload
    body                               constriction RangeEncoder words (little-endian u32, trailing
                                       zero bytes dropped), holding in order:
      runs        label deltas (instance+1, Laplace mean 1) and R-1 run lengths
      motion      per instance group, per frame 1..F-1: second difference of its mean step (x, y)
      visibility  frame-major Markov bits (= run-length coding with geometric run lengths)
      starts      first visible grid position of each track, as a delta from the previous track
                  of its group (the first one of a group from the frame centre): x then y
      residuals   frame-major, for f = 1..F-1: grid position minus prediction, x of all tracks
                  visible at f then y

Prediction of a visible point from the track's last visible point (frame p1): the same position
(``previous``), plus the instance's mean motion since p1 (``instance``, default: fewest bits on
real clips, see benchmarks/track_coding.py), plus the track's own last velocity relative to its
instance (``velocity`` / ``instance_velocity``). Invisible points are not sent; the decoder
interpolates them (:mod:`.track_quantise`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import BitstreamError, OptionError
from ..types import Tracks
from . import track_entropy as te
from .track_quantise import (INSTANCE_FLAG, VELOCITY_FLAG, QuantisedTracks, assemble,
                             cumulative_motion, grid_limits, instance_groups, predict,
                             previous_visible, quantise)

MAX_TRACKS = 65535
MAX_FRAMES = 4096
MAX_POINTS = 1 << 24       # K * F
MAX_DIMENSION = 1 << 15
PREDICTORS = {"previous": 0, "instance": INSTANCE_FLAG, "velocity": VELOCITY_FLAG,
              "instance_velocity": INSTANCE_FLAG | VELOCITY_FLAG}


@dataclass
class TrajectoryCodingOptions:
    step: float = 0.5
    """Quantisation step in pixels, a multiple of 1/16 in 1/16 .. 15.9375 (stored in the payload)."""
    predictor: str = "auto"
    """Position predictor: ``previous``, ``instance``, ``velocity``, ``instance_velocity``, or
    ``auto`` (default): code with each and keep the shortest payload (``instance`` wins on most
    real groups; ``previous``/``velocity`` when instances are too small to pay for their motion)."""
    tolerance: float = 1.0
    """Largest position error (px) the encoder may choose to save bits (encoder only, not stored):
    above step/2, each point is the grid point within ``tolerance`` nearest its prediction, so
    tracker jitter below it is not sent. 0 (or <= step/2): plain rounding, error <= step/2."""


def _step_code(options: TrajectoryCodingOptions) -> int:
    code = int(round(float(options.step) * 16.0))
    if not 1 <= code <= 255 or abs(code / 16.0 - options.step) > 1e-6:
        raise OptionError(f"trajectory step must be a multiple of 1/16 in [1/16, 255/16], "
                          f"got {options.step}")
    if options.predictor not in PREDICTORS and options.predictor != "auto":
        raise OptionError(f"unknown trajectory predictor {options.predictor!r} "
                          f"(have {sorted(PREDICTORS)})")
    return code


def _check_size(num_tracks: int, num_frames: int, width: int, height: int, err=OptionError) -> None:
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise err(f"frame size {width}x{height} out of range")
    if not 1 <= num_frames <= MAX_FRAMES:
        raise err(f"group of {num_frames} frames out of range 1..{MAX_FRAMES}")
    if num_tracks > MAX_TRACKS or num_tracks * num_frames > MAX_POINTS:
        raise err(f"{num_tracks} tracks x {num_frames} frames exceeds the caps")


def _runs(instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    change = np.flatnonzero(np.diff(instance)) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [instance.size]]))
    return instance[starts].astype(np.int64) + 1, counts


def _start_layout(qt: QuantisedTracks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks with a visible point (in order), their first visible frame, and whether each is
    the first such track of its group."""
    started = np.flatnonzero(qt.vis.any(axis=1))
    first_frame = np.argmax(qt.vis[started], axis=1)
    g = qt.group[started]
    _, lead = np.unique(g, return_index=True)
    is_lead = np.zeros(started.size, bool)
    is_lead[lead] = True
    return started, first_frame, is_lead


def encode_tracks(tracks: Tracks, width: int, height: int,
                  options: TrajectoryCodingOptions = TrajectoryCodingOptions()) -> bytes:
    """Code ``tracks`` of a ``width`` x ``height`` group into a self-delimiting payload."""
    if options.predictor == "auto":
        _step_code(options)
        tries = [encode_tracks(tracks, width, height, replace(options, predictor=name))
                 for name in PREDICTORS]
        return min(tries, key=len)  # first (in PREDICTORS order) of the shortest
    code = _step_code(options)
    k, f = tracks.vis.shape
    _check_size(k, f, width, height)
    if tracks.instance.size and (tracks.instance.min() < -1 or tracks.instance.max() > MAX_TRACKS):
        raise OptionError("track instance ids must lie in -1..65535")
    if k == 0:
        return te.put_varint(0)
    flags = PREDICTORS[options.predictor]
    qt, motion = quantise(tracks, width, height, code, flags, options.tolerance)
    qlim = max(qt.qmax)
    labels, counts = _runs(qt.instance)
    mk = motion[qt.group]
    # symbols of every section
    dm = np.diff(np.diff(motion, axis=1), axis=1, prepend=0)         # [G, F-1, 2]
    started, first_frame, is_lead = _start_layout(qt)
    start_q = qt.q[started, first_frame]
    centre = np.array(qt.qmax, np.int64) // 2
    order = np.lexsort((np.arange(started.size), qt.group[started]))
    prev_in_group = np.empty(started.size, np.int64)
    prev_in_group[order] = np.concatenate([[0], order[:-1]]) if started.size else order
    start_delta = np.where(is_lead[:, None], start_q - centre, start_q - start_q[prev_in_group])
    p1, p2 = previous_visible(qt.vis)
    coded = qt.vis & (p1 >= 0)
    kk, ff = np.nonzero(coded.T)[::-1]                               # frame-major order
    q1, q2 = qt.q[kk, p1[kk, ff]], qt.q[kk, np.maximum(p2[kk, ff], 0)]
    pred = predict(q1, q2, p1[kk, ff], p2[kk, ff], ff, mk[kk, p1[kk, ff]],
                    mk[kk, np.maximum(p2[kk, ff], 0)], mk[kk, ff], flags, qt.qmax)
    resid = qt.q[kk, ff] - pred
    vis_t = qt.vis.T
    params = [
        te.prob_code(vis_t[0].sum(), k),
        te.prob_code((vis_t[1:] & vis_t[:-1]).sum(), vis_t[:-1].sum()),
        te.prob_code((~vis_t[1:] & ~vis_t[:-1]).sum(), (~vis_t[:-1]).sum()),
        te.scale_code(np.abs(dm).mean() if dm.size else 0.0),
        te.scale_code(np.abs(start_delta[~is_lead]).mean() if (~is_lead).any() else 0.0),
        te.scale_code(np.abs(resid[:, 0]).mean() if resid.size else 0.0),
        te.scale_code(np.abs(resid[:, 1]).mean() if resid.size else 0.0),
    ]
    enc = te.new_encoder()
    _code_runs(enc, labels, counts, k)
    for c in range(2):
        te.encode_laplace(enc, dm[..., c], 2 * qlim, 0.0, te.scale_value(params[3]))
    p_vis = _vis_probs(vis_t, params)
    te.encode_bits(enc, vis_t, p_vis)
    for c in range(2):
        te.encode_laplace(enc, start_delta[is_lead, c], qlim, 0.0, max(qt.qmax[c] / 4.0, 1.0))
        te.encode_laplace(enc, start_delta[~is_lead, c], qlim, 0.0, te.scale_value(params[4]))
    for frame in range(1, f):
        rows = ff == frame
        for c in range(2):
            te.encode_laplace(enc, resid[rows, c], qlim, 0.0, te.scale_value(params[5 + c]))
    body = te.finish(enc)
    head = te.put_varint(k) + bytes([code, flags]) + te.put_varint(labels.size) + bytes(params)
    return head + te.put_varint(len(body)) + body


def _vis_probs(vis_t: np.ndarray, params: list[int]) -> np.ndarray:
    """P(visible) of every frame-major visibility bit given the previous frame's bits."""
    p = np.empty(vis_t.shape, np.float64)
    p[0] = te.prob_value(params[0])
    p[1:] = np.where(vis_t[:-1], te.prob_value(params[1]), 1.0 - te.prob_value(params[2]))
    return p


def _count_model(k: int, runs: int) -> tuple[float, float]:
    mean = k / max(runs, 1) - 1.0
    return mean, max(mean / 2.0, 0.5)


def _code_runs(enc, labels: np.ndarray, counts: np.ndarray, k: int) -> None:
    deltas = np.diff(np.concatenate([[0], labels]))
    te.encode_laplace(enc, deltas, MAX_TRACKS + 1, 1.0, 1.0)
    mean, scale = _count_model(k, labels.size)
    te.encode_laplace(enc, counts[:-1] - 1, k, mean, scale)


def decode_tracks(data: bytes, num_frames: int, width: int, height: int) -> Tracks:
    """Inverse of :func:`encode_tracks`: exactly ``reconstruct_tracks`` of the coded tracks.
    Any malformed, truncated or over-long payload raises BitstreamError."""
    _check_size(0, num_frames, width, height, BitstreamError)
    data = bytes(data)
    k, pos = te.get_varint(data, 0)
    f = num_frames
    _check_size(k, f, width, height, BitstreamError)
    if k == 0:
        if pos != len(data):
            raise BitstreamError("track payload has trailing bytes")
        return Tracks.empty(f)
    if pos + 2 > len(data):
        raise BitstreamError("track payload truncated in its header")
    code, flags = data[pos], data[pos + 1]
    if code == 0 or flags > 3:
        raise BitstreamError("track payload header has an invalid step or flags")
    runs, pos = te.get_varint(data, pos + 2)
    if not 1 <= runs <= k:
        raise BitstreamError(f"track payload has {runs} instance runs for {k} tracks")
    if pos + 7 > len(data):
        raise BitstreamError("track payload truncated in its model parameters")
    params = list(data[pos:pos + 7])
    if not all(1 <= c <= 255 for c in params[:3]):
        raise BitstreamError("track payload has an invalid probability")
    body_len, pos = te.get_varint(data, pos + 7)
    if pos + body_len != len(data):
        raise BitstreamError(f"track payload body should be {body_len} bytes, "
                             f"{len(data) - pos} present")
    reader = te.SymbolReader(data[pos:])
    qmax = grid_limits(width, height, code)
    qlim = max(qmax)
    instance = _read_runs(reader, k, runs)
    group = instance_groups(instance)
    n_groups = int(group.max()) + 1
    dm = np.stack([reader.laplace(n_groups * (f - 1), 2 * qlim, 0.0, te.scale_value(params[3]))
                   .reshape(n_groups, f - 1) for _ in range(2)], axis=-1)
    m = np.zeros((n_groups, f, 2), np.int64)
    m[:, 1:] = np.cumsum(dm, axis=1)
    motion = cumulative_motion(m)
    vis = _read_vis(reader, k, f, params)
    qt = QuantisedTracks(np.zeros((k, f, 2), np.int64), vis, instance, group, code, qmax)
    _read_starts(reader, qt, params)
    _read_residuals(reader, qt, motion[group], flags, params)
    reader.check_exhausted()
    return assemble(qt, motion)


def _read_runs(reader: te.SymbolReader, k: int, runs: int) -> np.ndarray:
    labels = np.cumsum(reader.laplace(runs, MAX_TRACKS + 1, 1.0, 1.0))
    if labels.size and (labels.min() < 0 or labels.max() > MAX_TRACKS + 1):
        raise BitstreamError("track payload has an instance id out of range")
    mean, scale = _count_model(k, runs)
    counts = reader.laplace(runs - 1, k, mean, scale) + 1
    rest = k - int(counts.sum())
    if counts.size and counts.min() < 1 or rest < 1:
        raise BitstreamError("track payload instance runs do not add up to the track count")
    return (np.repeat(labels, np.append(counts, rest)) - 1).astype(np.int32)


def _read_vis(reader: te.SymbolReader, k: int, f: int, params: list[int]) -> np.ndarray:
    vis_t = np.zeros((f, k), bool)
    vis_t[0] = reader.bits(np.full(k, te.prob_value(params[0])))
    for frame in range(1, f):
        p = np.where(vis_t[frame - 1], te.prob_value(params[1]), 1.0 - te.prob_value(params[2]))
        vis_t[frame] = reader.bits(p)
    return np.ascontiguousarray(vis_t.T)


def _read_starts(reader: te.SymbolReader, qt: QuantisedTracks, params: list[int]) -> None:
    started, first_frame, is_lead = _start_layout(qt)
    qlim = max(qt.qmax)
    delta = np.zeros((started.size, 2), np.int64)
    for c in range(2):
        delta[is_lead, c] = reader.laplace(int(is_lead.sum()), qlim, 0.0, max(qt.qmax[c] / 4.0, 1.0))
        delta[~is_lead, c] = reader.laplace(int((~is_lead).sum()), qlim, 0.0,
                                            te.scale_value(params[4]))
    centre = np.array(qt.qmax, np.int64) // 2
    order = np.lexsort((np.arange(started.size), qt.group[started]))
    vals = np.where(is_lead[:, None], delta + centre, delta)[order]
    cs = np.cumsum(vals, axis=0)
    lead_pos = np.maximum.accumulate(np.where(is_lead[order], np.arange(order.size), 0))
    base = np.where(lead_pos[:, None] > 0, cs[np.maximum(lead_pos - 1, 0)], 0)
    start = np.empty_like(vals)
    start[order] = cs - base
    if start.size and ((start < 0).any() or (start > np.array(qt.qmax)).any()):
        raise BitstreamError("track payload start position out of the frame")
    qt.q[started, first_frame] = start


def _read_residuals(reader: te.SymbolReader, qt: QuantisedTracks, mk: np.ndarray, flags: int,
                    params: list[int]) -> None:
    p1, p2 = previous_visible(qt.vis)
    qlim = max(qt.qmax)
    hi = np.array(qt.qmax, np.int64)
    for frame in range(1, qt.vis.shape[1]):
        rows = np.flatnonzero(qt.vis[:, frame] & (p1[:, frame] >= 0))
        a, b = p1[rows, frame], np.maximum(p2[rows, frame], 0)
        pred = predict(qt.q[rows, a], qt.q[rows, b], a, p2[rows, frame], frame, mk[rows, a],
                        mk[rows, b], mk[rows, frame], flags, qt.qmax)
        r = np.stack([reader.laplace(rows.size, qlim, 0.0, te.scale_value(params[5 + c]))
                      for c in range(2)], axis=1)
        val = pred + r
        if val.size and ((val < 0).any() or (val > hi).any()):
            raise BitstreamError("track payload position out of the frame")
        qt.q[rows, frame] = val


def reconstruct_tracks(tracks: Tracks, width: int, height: int,
                       options: TrajectoryCodingOptions = TrajectoryCodingOptions()) -> Tracks:
    """The tracks the decoder will see after :func:`encode_tracks` / :func:`decode_tracks`."""
    code = _step_code(options)
    _check_size(tracks.num_tracks, tracks.num_frames, width, height)
    flags = PREDICTORS.get(options.predictor, 0)
    if options.predictor == "auto":
        flags = _payload_flags(encode_tracks(tracks, width, height, options))
    qt, motion = quantise(tracks, width, height, code, flags, options.tolerance)
    return assemble(qt, motion)


def bits_per_track_point(tracks: Tracks, nbytes: int) -> float:
    """Payload bits per visible track point (0 when no point is visible)."""
    points = int(np.asarray(tracks.vis).sum())
    return 8.0 * nbytes / points if points else 0.0


def _payload_flags(data: bytes) -> int:
    """The predictor flags of a payload made by :func:`encode_tracks` (0 for K = 0)."""
    k, pos = te.get_varint(data, 0)
    return data[pos + 1] if k else 0
