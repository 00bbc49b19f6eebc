"""Fuzz target for the .tgv parser and the warp decoder, with a mutator that keeps section CRCs valid.

``check_one(data)`` parses a stream with small caps and, when it parses, decodes its first frames in warp
mode (no model set). A ``TgvcError`` is the answer to bad input; any other exception is a finding.

Imported without atheris by tests/test_fuzz.py (seeded random mutator) and benchmarks/fuzz_tgv.py.
Run as a script with atheris installed, it fuzzes coverage-guided (libFuzzer flags pass through):

    python tests/fuzz_tgv.py -max_total_time=600 CORPUS_DIR tests/data/fuzz_seeds
    python tests/fuzz_tgv.py --write-seeds   # regenerate tests/data/fuzz_seeds/ with the encoder
"""
from __future__ import annotations

import itertools
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS_DIR = HERE / "data" / "fuzz_seeds"
GOLDEN = HERE / "data" / "golden_v1.tgv"
DECODE_FRAMES = 3
INTERESTING = (0, 1, 2, 3, 15, 16, 17, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0xFFFF, 0x10000,
               (1 << 28) - 1, (1 << 31) - 1, (1 << 32) - 1)


def _caps():
    """Caps small enough that one input decodes in milliseconds: 256x256 frames, 1 Mpixel groups."""
    from tgvc_rt.bitstream import StreamCaps
    return StreamCaps(frames_per_group=64, pixels_per_frame=256 * 256, pixels_per_group=1 << 20,
                      tracks_per_group=4096, sections=4096)


def check_one(data: bytes, decode: bool = True) -> bool:
    """Parse ``data`` (and, with ``decode``, warp-decode up to DECODE_FRAMES frames). Returns whether it
    parsed; a TgvcError means rejected input, anything else propagates as a finding."""
    from tgvc_rt.bitstream import read_bitstream
    from tgvc_rt.errors import TgvcError
    try:
        bs = read_bitstream(data, _caps())
    except TgvcError:
        return False
    if decode:
        _decode_some(data)
    else:
        _decode_tracks(bs)
    return True


def _decode_some(data: bytes) -> None:
    """Warp-decode the first frames (the decoder re-parses with its default caps, which are wider)."""
    from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames
    from tgvc_rt.errors import TgvcError
    try:
        for _ in itertools.islice(iter_decoded_frames(data, DecodeOptions(mode="warp")), DECODE_FRAMES):
            pass
    except TgvcError:
        pass


def _decode_tracks(bs) -> None:
    """The parser's fast path also runs the trajectory decoder on every group (no images, no warp)."""
    from tgvc_rt.codec.trajectories import decode_tracks
    from tgvc_rt.errors import TgvcError
    for g in bs.groups:
        try:
            decode_tracks(g.tracks, g.end - g.start + 1, bs.header.width, bs.header.height)
        except TgvcError:
            pass


# ----------------------------------------------------------------------------------- stream surgery

def split_stream(data: bytes) -> list[tuple[int, bytes]] | None:
    """Sections as (kind, payload), read leniently (CRCs ignored, a truncated tail dropped); None when
    the preamble is missing."""
    from tgvc_rt.bitstream.sections import MAGIC, PREAMBLE
    if len(data) < PREAMBLE.size or data[:4] != MAGIC:
        return None
    pos, out = PREAMBLE.size, []
    while pos < len(data):
        length, start = _lenient_uleb(data, pos + 1)
        if start is None or start + length + 4 > len(data):
            break
        out.append((data[pos], bytes(data[start:start + length])))
        pos = start + length + 4
    return out


def _lenient_uleb(data: bytes, pos: int) -> tuple[int, int | None]:
    """(value, next position), or (0, None) when the varint is truncated or longer than 5 bytes."""
    value = 0
    for i in range(5):
        if pos + i >= len(data):
            return 0, None
        value |= (data[pos + i] & 0x7F) << (7 * i)
        if not data[pos + i] & 0x80:
            return value, pos + i + 1
    return 0, None


def join_stream(sections: list[tuple[int, bytes]], preamble: bytes | None = None) -> bytes:
    """Preamble + sections, each framed with a fresh length and CRC."""
    from tgvc_rt.bitstream.sections import pack_preamble, pack_section
    return (preamble if preamble is not None else pack_preamble()) + b"".join(
        pack_section(kind & 0xFF, payload) for kind, payload in sections)


def _mutate_payload(payload: bytes, rng: random.Random) -> bytes:
    """One edit of a section payload: flip, overwrite with a varint, insert, delete or truncate."""
    b = bytearray(payload)
    op = rng.randrange(6)
    at = rng.randrange(len(b) + 1)
    if op == 0 and b:
        b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
    elif op == 1 and b:
        b[min(at, len(b) - 1)] = rng.randrange(256)
    elif op == 2:
        v = rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(1 << rng.randrange(1, 33))
        from tgvc_rt.bitstream.varint import pack_uleb
        enc = pack_uleb(v)
        b[at:at + (len(enc) if rng.random() < 0.5 else 1)] = enc
    elif op == 3:
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif op == 4:
        del b[at:at + rng.randint(1, 16)]
    else:
        del b[at:]
    return bytes(b)


def fix_track_body_length(group_payload: bytes) -> bytes:
    """A GROUP payload whose trajectory body length field matches the bytes that follow it (so edits
    inside the range-coded body reach the symbol decoder); unchanged when its header does not parse."""
    from tgvc_rt.bitstream.varint import pack_uleb
    pos: int | None = 0
    for field_bytes in (None, None, None, 2, None, 7):  # start, end, track count, step+flags, runs, params
        if field_bytes is None:
            _, pos = _lenient_uleb(group_payload, pos)
            if pos is None:
                return group_payload
        else:
            pos += field_bytes
    _, body = _lenient_uleb(group_payload, pos)
    if body is None:
        return group_payload
    return group_payload[:pos] + pack_uleb(len(group_payload) - body) + group_payload[body:]


def _mutate_sections(secs: list[tuple[int, bytes]], rng: random.Random,
                     donors: list[list[tuple[int, bytes]]]) -> list[tuple[int, bytes]]:
    """One edit of the section list: a payload edit (most often), or drop/duplicate/swap/retype/splice."""
    secs = list(secs)
    if not secs:
        return [(rng.choice((1, 2, 3, 0x7F)), bytes(rng.randrange(256) for _ in range(rng.randrange(40))))]
    i = rng.randrange(len(secs))
    op = rng.random()
    if op < 0.7:
        secs[i] = (secs[i][0], _mutate_payload(secs[i][1], rng))
        if secs[i][0] == 3 and rng.random() < 0.3:
            secs[i] = (3, fix_track_body_length(secs[i][1]))
    elif op < 0.76:
        del secs[i]
    elif op < 0.82:
        secs.insert(i, secs[rng.randrange(len(secs))])
    elif op < 0.88:
        j = rng.randrange(len(secs))
        secs[i], secs[j] = secs[j], secs[i]
    elif op < 0.92:
        secs[i] = (rng.choice((0, 1, 2, 3, 4, 0x7E, 0x7F, 0xFF)), secs[i][1])
    elif donors:
        donor = rng.choice(donors)
        if donor:
            secs[i] = rng.choice(donor)
    return secs


def mutate(data: bytes, rng: random.Random, donors: list[list[tuple[int, bytes]]] = ()) -> bytes:
    """A mutant of ``data``: mostly 1-3 section-level edits re-framed with valid CRCs (so they reach the
    parser's and decoders' logic); sometimes raw byte edits that the framing and CRC must catch."""
    secs = split_stream(data)
    if secs is None or rng.random() < 0.08:
        return _mutate_raw(data, rng)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        secs = _mutate_sections(secs, rng, list(donors))
    preamble = data[:6] if rng.random() < 0.97 else bytes(rng.randrange(256) for _ in range(6))
    return join_stream(secs, preamble)


def _mutate_raw(data: bytes, rng: random.Random) -> bytes:
    """Byte edits on the framed stream (CRCs left stale), or a truncation."""
    b = bytearray(data)
    if b and rng.random() < 0.5:
        del b[rng.randrange(len(b)):]
    else:
        b = bytearray(_mutate_payload(bytes(b), rng))
    return bytes(b)


# ----------------------------------------------------------------------------------- fuzz loop

@dataclass
class FuzzResult:
    executions: int = 0
    parsed: int = 0
    seconds: float = 0.0
    corpus: int = 0
    findings: list[tuple[str, bytes]] = field(default_factory=list)  # (exception, reproducer)


def load_seeds() -> list[bytes]:
    """The golden stream and the committed encoder-made seeds."""
    return [GOLDEN.read_bytes()] + [p.read_bytes() for p in sorted(SEEDS_DIR.glob("*.tgv"))]


def _signature(data: bytes, decode: bool) -> tuple[str, str]:
    """Outcome class of one input: the exception type and message with numbers blanked (cheap feedback)."""
    try:
        check_one(data, decode)
        return ("ok", "")
    except Exception as err:  # noqa: BLE001 - classifying every outcome is the point
        return (type(err).__name__, re.sub(r"\d+", "#", str(err))[:120])


def fuzz(seconds: float, seed: int = 0, decode: bool = True, max_runs: int | None = None,
         seeds: list[bytes] | None = None, max_findings: int = 10) -> FuzzResult:
    """Seeded mutation fuzzing for ``seconds`` (or ``max_runs`` executions). Inputs with an outcome not
    seen before join the corpus. Unexpected exceptions are collected with their reproducers."""
    from tgvc_rt.errors import TgvcError
    rng = random.Random(seed)
    corpus = list(seeds if seeds is not None else load_seeds())
    donors = [s for s in (split_stream(c) for c in corpus) if s]
    seen: set[tuple[str, str]] = set()
    res, t0 = FuzzResult(), time.perf_counter()
    while len(res.findings) < max_findings:
        if max_runs is not None and res.executions >= max_runs:
            break
        if max_runs is None and time.perf_counter() - t0 >= seconds:
            break
        data = corpus[res.executions] if res.executions < len(corpus) else mutate(rng.choice(corpus), rng, donors)
        res.executions += 1
        try:
            ok = check_one(data, decode)
            sig = ("ok", "") if ok else _rejection(data)
        except TgvcError:
            continue
        except Exception as err:  # noqa: BLE001 - every other exception is a finding
            res.findings.append((f"{type(err).__name__}: {err}", data))
            continue
        res.parsed += ok
        if sig not in seen and len(corpus) < 4096:
            seen.add(sig)
            corpus.append(data)
    res.seconds, res.corpus = time.perf_counter() - t0, len(corpus)
    return res


def _rejection(data: bytes) -> tuple[str, str]:
    """Why the parser rejected ``data`` (numbers blanked), for corpus feedback."""
    from tgvc_rt.bitstream import read_bitstream
    from tgvc_rt.errors import TgvcError
    try:
        read_bitstream(data, _caps())
    except TgvcError as err:
        return ("rejected", re.sub(r"\d+", "#", str(err))[:120])
    return ("rejected", "")


# ----------------------------------------------------------------------------------- seeds

def make_seeds() -> dict[str, bytes]:
    """Tiny streams from the project's own encoder: the bundled carphone clip at 64x48 (6 frames, two
    keyframe codecs) and one whose groups carry coded trajectories (the encoder picks none at this size)."""
    from tgvc_rt.data import SAMPLE_CLIP
    from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video
    from tgvc_rt.encoder.ratecontrol import RateOptions
    from tgvc_rt.io import read_video
    video = read_video(SAMPLE_CLIP, max_frames=6, resize=(64, 48))
    seeds = {}
    for codec, bpp in (("av1-seq", 0.1), ("avif", 0.2)):
        opts = EncodeOptions(rate=RateOptions(bpp=bpp), keyframe_codec=codec, seed=1)
        seeds[f"carphone_64x48_{codec}"] = encode_video(video, opts).data
    seeds["carphone_64x48_tracks"] = _with_tracks(seeds["carphone_64x48_av1-seq"])
    return seeds


def _with_tracks(data: bytes) -> bytes:
    """``data`` with every group's trajectory payload replaced by a few coded synthetic tracks."""
    import numpy as np
    from tgvc_rt.bitstream import read_bitstream, write_bitstream
    from tgvc_rt.codec.trajectories import encode_tracks
    from tgvc_rt.types import Tracks
    bs = read_bitstream(data)
    w, h = bs.header.width, bs.header.height
    rng = np.random.default_rng(7)
    for g in bs.groups:
        f = g.end - g.start + 1
        xy = rng.uniform(4, [w - 4, h - 4], (12, 1, 2)) + np.arange(f)[None, :, None] * rng.normal(0, 1.5, (12, 1, 2))
        vis = np.ones((12, f), bool)
        vis[:3, f // 2:] = False
        g.tracks = encode_tracks(Tracks(xy.astype(np.float32), vis, np.repeat(np.arange(3), 4).astype(np.int32)), w, h)
    return write_bitstream(bs)


def write_seeds() -> None:
    """Regenerate tests/data/fuzz_seeds/*.tgv."""
    SEEDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in make_seeds().items():
        (SEEDS_DIR / f"{name}.tgv").write_bytes(data)
        print(f"{name}.tgv: {len(data)} bytes")


# ----------------------------------------------------------------------------------- atheris entry

def atheris_main(argv: list[str]) -> None:
    """Coverage-guided fuzzing with atheris (libFuzzer): the tgvc_rt modules are instrumented, and the
    custom mutator mixes libFuzzer's byte mutations (sections re-framed with valid CRCs) with ``mutate``."""
    import atheris
    with atheris.instrument_imports(include=["tgvc_rt"]):
        import tgvc_rt.bitstream  # noqa: F401
        import tgvc_rt.decoder.pipeline  # noqa: F401
        import tgvc_rt.codec.trajectories  # noqa: F401
    decode = "--parse-only" not in argv
    argv = [a for a in argv if a != "--parse-only"]

    def one_input(data: bytes) -> None:
        check_one(data, decode)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        secs = split_stream(data)
        if secs and rng.random() < 0.5:
            i = rng.randrange(len(secs))
            secs[i] = (secs[i][0], atheris.Mutate(secs[i][1], max(len(secs[i][1]) * 2, 64)))
            return join_stream(secs, data[:6])[:max_size]
        if rng.random() < 0.5:
            return mutate(data, rng)[:max_size]
        return atheris.Mutate(data, max_size)

    atheris.Setup(argv, one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    if "--write-seeds" in sys.argv:
        write_seeds()
    else:
        atheris_main(sys.argv)
