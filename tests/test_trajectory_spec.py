"""docs/bitstream.md, "Trajectory payload", checked against the code.

``reference_decode`` below is a second trajectory decoder written from that section of the document
alone: plain Python integers for the range coder and its two models, no import from tgvc_rt and no
constriction. It decodes real payloads (the GROUP sections of tests/data/golden_sample_v1.tgv and of
an encoder-made fuzz seed) and synthetic ones (every predictor, tracks of no instance, gaps, late
starts, one-frame groups) field by field, and the result must equal ``decode_tracks``'s: the same
instance ids and visibility, the same grid positions, the same float32 positions. A change to the
format that the document does not follow fails here.
"""
from __future__ import annotations

import math
import struct
import zlib
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest

from tgvc_rt.codec.trajectories import PREDICTORS, TrajectoryCodingOptions, decode_tracks, encode_tracks
from tgvc_rt.types import Tracks

DATA = Path(__file__).parent / "data"
GOLDEN_SAMPLE = DATA / "golden_sample_v1.tgv"
TRACKS_SEED = DATA / "fuzz_seeds" / "carphone_64x48_tracks.tgv"

M64 = (1 << 64) - 1


class Corrupt(Exception):
    """The payload breaks a rule of the document."""


# --- the .tgv framing, enough to find the GROUP sections ("Layout", "HEADER") -------------------------

def uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(5):
        if pos + i >= len(data):
            raise Corrupt("varint cut off")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value >= 1 << 32:
                raise Corrupt("varint over 32 bits")
            return value, pos + i + 1
    raise Corrupt("varint over 5 bytes")


def group_payloads(stream: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(width, height, [(F, trajectory payload)] per GROUP section) of a .tgv stream."""
    assert stream[:4] == b"TGVC" and stream[4] == 1
    pos, width, height, groups = 6, None, None, []
    while True:
        kind = stream[pos]
        length, body = uleb(stream, pos + 1)
        payload = stream[body:body + length]
        (crc,) = struct.unpack_from("<I", stream, body + length)
        assert crc == zlib.crc32(stream[pos:body + length])
        pos = body + length + 4
        if kind == 0x01:
            width, p = uleb(payload, 0)
            height, p = uleb(payload, p)
        elif kind == 0x03:
            start, p = uleb(payload, 0)
            end, p = uleb(payload, p)
            groups.append((end - start + 1, payload[p:]))
        elif kind == 0x7F:
            return width, height, groups


# --- "The body: range coder" -----------------------------------------------------------------------

class RangeDecoder:
    def __init__(self, body: bytes) -> None:
        body = body + b"\0" * (-len(body) % 4)
        self.words = [int.from_bytes(body[i:i + 4], "little") for i in range(0, len(body), 4)]
        self.next = 0
        self.lower, self.range = 0, M64
        self.point = (self._word() << 32) | self._word()

    def _word(self) -> int:
        if self.next < len(self.words):
            self.next += 1
            return self.words[self.next - 1]
        self.next += 1
        return 0

    def symbol(self, first: int, last: int, cum) -> int:
        scale = self.range >> 24
        v = ((self.point - self.lower) & M64) // scale
        if v >= 1 << 24:
            raise Corrupt("range decoder: v >= 2^24")
        lo, hi = first, last  # the x with cum(x) <= v < cum(x + 1): C is strictly increasing
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cum(mid) <= v:
                lo = mid
            else:
                hi = mid - 1
        c0, c1 = cum(lo), cum(lo + 1)
        self.lower = (self.lower + scale * c0) & M64
        self.range = scale * (c1 - c0)
        if self.range < 1 << 32:
            self.lower = (self.lower << 32) & M64
            self.range <<= 32
            self.point = ((self.point << 32) & M64) | self._word()
        return lo

    def laplace(self, mu: float, b: float, limit: int) -> int:
        wfree = float((1 << 24) - (2 * limit + 1))

        def F(t: float) -> float:
            return 0.5 * math.exp((t - mu) / b) if t <= mu else 1.0 - 0.5 * math.exp(-(t - mu) / b)

        def cum(x: int) -> int:
            if x == -limit:
                return 0
            if x == limit + 1:
                return 1 << 24
            return math.trunc(wfree * F(x - 0.5)) + (x + limit)

        return self.symbol(-limit, limit, cum)

    def bernoulli(self, p: float) -> int:
        c1 = math.trunc((1.0 - p) * ((1 << 24) - 2)) + 1
        return self.symbol(0, 1, lambda x: (0, c1, 1 << 24)[x])

    def check_end(self) -> None:
        if self.next < len(self.words) or ((self.point - self.lower) & M64) >= (1 << 33) - 1:
            raise Corrupt("body not exhausted")


# --- "Fields", "The grid", "The symbols", "Prediction", "Dequantisation" ----------------------------

def scale_of(code: int) -> float:
    return 2.0 ** ((code - 64) / 16)


def reference_decode(payload: bytes, F: int, W: int, H: int) -> dict:
    """Decode one trajectory payload as docs/bitstream.md describes it."""
    K, pos = uleb(payload, 0)
    if K == 0:
        if pos != len(payload):
            raise Corrupt("bytes after K = 0")
        return {"instance": [], "vis": np.zeros((0, F), bool), "q": {}, "xy": np.zeros((0, F, 2), np.float32)}
    assert K <= 65535 and K * F <= 1 << 24
    step_code, flags = payload[pos], payload[pos + 1]
    assert 1 <= step_code and flags <= 3
    R, pos = uleb(payload, pos + 2)
    assert 1 <= R <= K
    c_vis0, c_stay, c_hide, c_motion, c_start, c_rx, c_ry = payload[pos:pos + 7]
    assert min(c_vis0, c_stay, c_hide) >= 1
    body_len, pos = uleb(payload, pos + 7)
    if pos + body_len != len(payload):
        raise Corrupt("body length")
    rc = RangeDecoder(payload[pos:])

    qmax = (((W - 1) * 16) // step_code, ((H - 1) * 16) // step_code)
    Q = max(qmax)
    centre = (qmax[0] // 2, qmax[1] // 2)

    # 1. instance runs
    labels, total = [], 0
    for _ in range(R):
        total += rc.laplace(1.0, 1.0, 65536)
        if not 0 <= total <= 65536:
            raise Corrupt("instance label")
        labels.append(total)
    mu = K / R - 1
    lengths = [rc.laplace(mu, max(mu / 2, 0.5), K) + 1 for _ in range(R - 1)]
    lengths.append(K - sum(lengths))
    if min(lengths) < 1:
        raise Corrupt("runs")
    instance = [label - 1 for label, n in zip(labels, lengths) for _ in range(n)]
    order_seen: dict[int, int] = {}
    for i in instance:
        order_seen.setdefault(i, len(order_seen))
    group = [order_seen[i] for i in instance]
    G = len(order_seen)

    # 2. instance motion
    d = [[[0] * F for _ in range(G)] for _ in range(2)]
    for c in range(2):
        for g in range(G):
            for j in range(1, F):
                d[c][g][j] = rc.laplace(0.0, scale_of(c_motion), 2 * Q)
    M = [[[0] * F for _ in range(G)] for _ in range(2)]
    for c in range(2):
        for g in range(G):
            m = 0
            for j in range(1, F):
                m += d[c][g][j]
                M[c][g][j] = M[c][g][j - 1] + m

    # 3. visibility
    vis = [[False] * F for _ in range(K)]
    for f in range(F):
        for k in range(K):
            if f == 0:
                p = c_vis0 / 256
            else:
                p = c_stay / 256 if vis[k][f - 1] else 1 - c_hide / 256
            vis[k][f] = rc.bernoulli(p) == 1

    # 4. start positions
    q: dict[tuple[int, int], list[int]] = {}
    started = [k for k in range(K) if any(vis[k])]
    f0 = {k: vis[k].index(True) for k in started}
    seen_groups, lead, prev = set(), {}, {}
    last_in_group: dict[int, int] = {}
    for k in started:
        lead[k] = group[k] not in seen_groups
        seen_groups.add(group[k])
        prev[k] = last_in_group.get(group[k])
        last_in_group[group[k]] = k
    start = {k: [0, 0] for k in started}
    for c in range(2):
        delta = {}
        for k in started:
            if lead[k]:
                delta[k] = rc.laplace(0.0, max(qmax[c] / 4, 1), Q)
        for k in started:
            if not lead[k]:
                delta[k] = rc.laplace(0.0, scale_of(c_start), Q)
        for k in started:
            start[k][c] = centre[c] + delta[k] if lead[k] else start[prev[k]][c] + delta[k]
            if not 0 <= start[k][c] <= qmax[c]:
                raise Corrupt("start position")
    for k in started:
        q[k, f0[k]] = start[k]

    # 5. residuals, with the prediction
    def visible_before(k: int, f: int) -> int:
        return max((t for t in range(f) if vis[k][t]), default=-1)

    for f in range(1, F):
        rows = [k for k in range(K) if vis[k][f] and visible_before(k, f) >= 0]
        res = [[rc.laplace(0.0, scale_of(code), Q) for _ in rows] for code in (c_rx, c_ry)]
        for i, k in enumerate(rows):
            p1 = visible_before(k, f)
            p2 = visible_before(k, p1)
            pos_k = []
            for c in range(2):
                Mk = M[c][group[k]]
                pred = q[k, p1][c]
                if flags & 1:
                    pred += Mk[f] - Mk[p1]
                if flags & 2 and p2 >= 0:
                    a = q[k, p1][c] - (Mk[p1] if flags & 1 else 0)
                    b = q[k, p2][c] - (Mk[p2] if flags & 1 else 0)
                    t = (f - p1) / (p1 - p2)
                    pred += math.floor(float(a - b) * t + 0.5)
                pred = min(max(pred, 0), qmax[c])
                value = pred + res[c][i]
                if not 0 <= value <= qmax[c]:
                    raise Corrupt("position")
                pos_k.append(value)
            q[k, f] = pos_k
    rc.check_end()

    # dequantisation
    s = step_code / 16
    xy = np.zeros((K, F, 2), np.float32)
    for k in started:
        frames = [f for f in range(F) if vis[k][f]]
        for f in range(F):
            for c in range(2):
                Mk = M[c][group[k]]
                if vis[k][f]:
                    xy[k, f, c] = q[k, f][c] * s
                    continue
                lo = max((t for t in frames if t < f), default=None)
                hi = min((t for t in frames if t > f), default=None)
                comp = {t: q[k, t][c] - Mk[t] for t in frames}
                if lo is not None and hi is not None:
                    w = (f - lo) / (hi - lo)
                    value = comp[lo] * (1 - w) + comp[hi] * w
                else:
                    value = comp[lo if lo is not None else hi]
                xy[k, f, c] = (value + Mk[f]) * s
    return {"instance": instance, "vis": np.array(vis, bool).reshape(K, F), "q": q, "xy": xy,
            "flags": flags, "step_code": step_code}


def assert_matches(payload: bytes, F: int, W: int, H: int) -> dict:
    ref = reference_decode(payload, F, W, H)
    got = decode_tracks(payload, F, W, H)
    np.testing.assert_array_equal(ref["instance"], got.instance)
    np.testing.assert_array_equal(ref["vis"], got.vis)
    s = ref["step_code"] / 16 if ref["q"] else 1.0
    for (k, f), value in ref["q"].items():  # the grid positions, exactly
        assert (got.xy[k, f] == np.float32(np.array(value) * s)).all(), (k, f)
    np.testing.assert_array_equal(ref["xy"], got.xy)
    return ref


# --- the tests ---------------------------------------------------------------------------------------

def test_golden_sample_payloads_follow_the_document():
    W, H, groups = group_payloads(GOLDEN_SAMPLE.read_bytes())
    assert (W, H) == (176, 144) and len(groups) == 4
    refs = [assert_matches(payload, F, W, H) for F, payload in groups]
    assert all(len(r["instance"]) > 0 for r in refs)
    assert {r["flags"] for r in refs} >= {1}  # the instance predictor, as the encoder mostly picks


def test_encoder_made_seed_follows_the_document():
    W, H, groups = group_payloads(TRACKS_SEED.read_bytes())
    flags = {assert_matches(payload, F, W, H)["flags"] for F, payload in groups}
    assert flags  # previous / velocity predictors (flags 0 and 2) on this one


def _synthetic(rng, k=24, f=9, w=96, h=64) -> Tracks:
    """Instances in several runs (one id coming back), tracks of no instance, gaps, late starts,
    points that leave the frame, and a track never visible."""
    inst = np.array([2, 2, 2, -1, -1, 0, 0, 0, 0, 2, 5, 5, -1] + [0] * (k - 13), np.int32)
    vel = {2: (1.7, -0.6), -1: (0.0, 0.0), 0: (-2.2, 1.1), 5: (0.4, 2.5)}
    start = rng.uniform([4, 4], [w - 4, h - 4], (k, 2))
    t = np.arange(f)[None, :, None]
    steps = np.array([vel[i] for i in inst])[:, None, :]
    xy = start[:, None] + steps * t + rng.normal(0, 0.4, (k, f, 2)).cumsum(axis=1)
    vis = rng.random((k, f)) < 0.8
    vis[3, :4] = False         # starts late
    vis[6, 2:6] = False        # a gap
    vis[7] = False             # never visible
    vis[8, 1:] = False         # seen once
    return Tracks(xy.astype(np.float32), vis, inst)


@pytest.mark.parametrize("predictor", sorted(PREDICTORS))
@pytest.mark.parametrize("step, tolerance", [(0.5, 1.0), (0.25, 0.0), (1.5, 0.0)])
def test_synthetic_payloads_follow_the_document(predictor, step, tolerance):
    rng = np.random.default_rng(7)
    W, H = 96, 64
    tracks = _synthetic(rng, w=W, h=H)
    opts = TrajectoryCodingOptions(step=step, predictor=predictor, tolerance=tolerance)
    payload = encode_tracks(tracks, W, H, opts)
    ref = assert_matches(payload, tracks.num_frames, W, H)
    assert ref["flags"] == PREDICTORS[predictor]


@pytest.mark.parametrize("k, f", [(0, 5), (3, 1), (1, 2)])
def test_small_payloads_follow_the_document(k, f):
    rng = np.random.default_rng(k + 10 * f)
    tracks = Tracks(rng.uniform(0, 40, (k, f, 2)).astype(np.float32), np.ones((k, f), bool),
                    np.zeros(k, np.int32))
    payload = encode_tracks(tracks, 48, 40)
    if k == 0:
        assert payload == b"\x00"
    assert_matches(payload, f, 48, 40)


def test_scale_codes_are_the_nearest_doubles():
    """The document's b = 2^((c - 64) / 16) is, for every code, the double nearest to the real value
    (so a decoder may tabulate it), and the encoder's parameter bytes read as the document says."""
    getcontext().prec = 50
    ln2 = Decimal(2).ln()
    for code in range(256):
        exact = float((Decimal(code - 64) / 16 * ln2).exp())
        assert scale_of(code) == exact, code
    from tgvc_rt.codec import track_entropy as te

    assert [te.scale_value(c) for c in range(256)] == [scale_of(c) for c in range(256)]
    assert [te.prob_value(c) for c in range(1, 256)] == [c / 256 for c in range(1, 256)]


def test_reference_refuses_what_decode_tracks_refuses():
    """The document's checks bite in the reference too: a flipped body byte, a cut body."""
    from tgvc_rt.errors import BitstreamError

    _, _, groups = group_payloads(GOLDEN_SAMPLE.read_bytes())
    F, payload = groups[1]
    bad = bytearray(payload)
    bad[-1] ^= 0x5A
    for corrupt in (bytes(bad), payload[:-1]):
        with pytest.raises(BitstreamError):
            decode_tracks(corrupt, F, 176, 144)
        with pytest.raises((Corrupt, AssertionError)):
            reference_decode(corrupt, F, 176, 144)
