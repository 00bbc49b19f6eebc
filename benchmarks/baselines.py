"""Classical baselines at a target bpp: x265 (HEVC) and VVenC (VVC) through imageio-ffmpeg's ffmpeg.

For each clip and target bpp the encoder's quality knob (x265: CRF, a float; VVenC: QP, an integer)
is searched until the ACHIEVED bitstream size is within +-tolerance of the target
(bytes = bpp * W * H * N / 8, raw elementary stream, no container). If even the coarsest setting
overshoots, x265 is retried once in a "floor" configuration (QP 51 everywhere, no AQ, flat I/P/B
ratios) and the smallest stream is kept, flagged ``rate_reached = false``. The chosen stream is
decoded to y4m and measured with tgvc_rt.metrics.evaluate.

    python benchmarks/baselines.py --bpp 0.005 0.01 --out benchmarks/results/baselines.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tgvc_rt.errors import InputError
from tgvc_rt.io.y4m import read_y4m_planes, write_frame
from tgvc_rt.metrics.cvvdp import CvvdpOptions
from tgvc_rt.metrics.evaluate import evaluate
from tgvc_rt.metrics.vmaf import ffmpeg_exe

from paths import VIDEOS_DIR  # benchmarks/paths.py (this folder is on sys.path when run as a script)

DEFAULT_CLIPS = VIDEOS_DIR  # $TGVC_DATA/videos, else <repository root>/../shared/data/videos
CODECS = ("x265", "vvenc")


@dataclass(frozen=True)
class BaselineOptions:
    x265_preset: str = "slow"      # x265 speed preset (slow: a fair baseline, ~1 s per CIF clip)
    vvenc_preset: str = "medium"   # VVenC preset (medium is well above x265 veryslow in RD terms)
    tolerance: float = 0.10        # accept achieved bpp within target * (1 +- tolerance)
    max_encodes: int = 8           # give up the rate search after this many encodes
    keyint: int = 600              # x265 max GOP (frames); longer than any clip: one I-frame
    vvenc_period_s: int = 60       # VVenC intra period (seconds); longer than any clip: one I-frame
    threads: int = 2               # encoder threads


# ---------------------------------------------------------------------------------------------
# ffmpeg helpers


def _ffmpeg() -> str:
    exe = ffmpeg_exe()
    if exe is None:
        raise InputError("the baselines need imageio-ffmpeg's ffmpeg binary")
    return exe


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {last}")
    return time.perf_counter() - t0


def encode_cmd(codec: str, src: str, dst: str, q: float | str, opts: BaselineOptions) -> list[str]:
    """ffmpeg command encoding src (y4m) to a raw elementary stream at quality knob q."""
    base = [_ffmpeg(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i", src]
    if codec == "x265":
        if q == "floor":
            knob = "qp=51:aq-mode=0:ipratio=1.0:pbratio=1.0:bframes=16"
        else:
            knob = f"crf={float(q):.3f}"
        params = f"{knob}:keyint={opts.keyint}:pools={opts.threads}:log-level=error"
        return base + ["-c:v", "libx265", "-preset", opts.x265_preset, "-x265-params", params,
                       "-f", "hevc", dst]
    if codec == "vvenc":
        return base + ["-pix_fmt", "yuv420p10le", "-c:v", "libvvenc", "-preset", opts.vvenc_preset,
                       "-qp", str(int(q)), "-period", str(opts.vvenc_period_s),
                       "-threads", str(opts.threads), "-f", "vvc", dst]
    raise ValueError(f"unknown codec {codec!r}; choose from {CODECS}")


def decode_to_y4m(codec: str, bitstream: str, dst: str, fps_num: int, fps_den: int) -> float:
    """Decode a raw stream to 8-bit 4:2:0 y4m at the source frame rate; returns seconds."""
    fmt = {"x265": "hevc", "vvenc": "vvc"}[codec]
    return _run([_ffmpeg(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
                 "-r", f"{fps_num}/{fps_den}", "-f", fmt, "-i", bitstream,
                 "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-strict", "-1", dst])


def trim_y4m(src: str, dst: str, frames: int) -> str:
    """Write the first `frames` frames of src to dst (byte copy of header + frames)."""
    clip = read_y4m_planes(src, max_frames=frames)
    with open(src, "rb") as f:
        header = f.readline()
    with open(dst, "wb") as f:
        f.write(header)
        for i in range(clip.num_frames):
            write_frame(f, (clip.y[i], clip.u[i], clip.v[i]))
    return dst


# ---------------------------------------------------------------------------------------------
# rate search


_Q_RANGE = {"x265": (0.0, 51.0), "vvenc": (0, 63)}
_Q_START = {"x265": 40.0, "vvenc": 45}


def search_rate(codec: str, src: str, target_bytes: float, workdir: str,
                opts: BaselineOptions = BaselineOptions()) -> dict:
    """Find the quality knob whose stream size is within tolerance of target_bytes.

    Secant steps on log2(size) vs q (starting slope: size halves every 6 q steps), kept inside the
    bracket of known over/undershoots (bisection when a step leaves it). Returns the best try:
    {"q", "bytes", "encode_s", "path", "tries": [(q, bytes), ...], "rate_reached": bool}.
    """
    lo_q, hi_q = _Q_RANGE[codec]
    integer = codec == "vvenc"
    tries: dict = {}  # q -> (bytes, seconds, path)

    def run(q):
        if q not in tries:
            path = os.path.join(workdir, f"{codec}_{q}.bin")
            secs = _run(encode_cmd(codec, src, path, q, opts))
            tries[q] = (os.path.getsize(path), secs, path)
        return tries[q][0]

    def err(q):  # log2 ratio achieved / target
        return math.log2(tries[q][0] / target_bytes)

    tol = math.log2(1.0 + opts.tolerance), math.log2(1.0 - opts.tolerance)
    q = _Q_START[codec]
    slope = -1.0 / 6.0
    prev = None
    for _ in range(opts.max_encodes):
        run(q)
        e = err(q)
        if tol[1] <= e <= tol[0]:
            break
        over = [k for k in tries if isinstance(k, (int, float)) and err(k) > 0]
        under = [k for k in tries if isinstance(k, (int, float)) and err(k) < 0]
        b_lo = max(over) if over else lo_q   # highest q still too big
        b_hi = min(under) if under else hi_q  # lowest q already too small
        if prev is not None and q != prev:
            s = (err(q) - err(prev)) / (q - prev)
            slope = min(-1.0 / 16.0, max(-1.0 / 3.0, s)) if s < 0 else slope
        nxt = q - e / slope
        if over and under and not (b_lo < nxt < b_hi):
            nxt = (b_lo + b_hi) / 2.0  # bisect inside a known bracket
        elif not under:
            nxt = max(min(nxt, hi_q), q + (1 if integer else 0.5))  # go coarser, up to hi_q
        elif not over:
            nxt = min(max(nxt, lo_q), q - (1 if integer else 0.5))  # go finer, down to lo_q
        if integer:
            nxt = int(round(nxt))
            nxt = min(max(nxt, b_lo + 1 if over else lo_q), b_hi - 1 if under else hi_q)
            if nxt in tries or (over and under and b_hi - b_lo <= 1):
                break
        else:
            nxt = round(min(max(nxt, lo_q), hi_q), 3)
            if nxt in tries or (over and under and b_hi - b_lo < 0.05):
                break
        if (not under and q >= hi_q) or (not over and q <= lo_q):
            break  # the coarsest (finest) setting still overshoots (undershoots)
        prev, q = q, min(max(nxt, lo_q), hi_q)
    if codec == "x265" and min(err(k) for k in tries) > tol[0]:
        run("floor")
    best = min(tries, key=lambda k: abs(err(k)))
    size, secs, path = tries[best]
    return {"q": best, "bytes": size, "encode_s": secs, "path": path,
            "tries": [[k, v[0]] for k, v in tries.items()],
            "rate_reached": bool(tol[1] <= err(best) <= tol[0])}


# ---------------------------------------------------------------------------------------------
# one baseline point


def run_baseline(codec: str, clip_path: str, bpp: float, workdir: str,
                 metrics: tuple[str, ...] = ("psnr", "msssim", "vmaf", "cvvdp"),
                 opts: BaselineOptions = BaselineOptions(),
                 cvvdp_opts: CvvdpOptions = CvvdpOptions()) -> dict:
    """Encode clip_path with codec at target bpp, decode, measure; returns one result record."""
    clip = read_y4m_planes(clip_path)
    w, h = clip.size
    n = clip.num_frames
    target_bytes = bpp * w * h * n / 8.0
    t0 = time.perf_counter()
    found = search_rate(codec, clip_path, target_bytes, workdir, opts)
    search_s = time.perf_counter() - t0
    decoded = os.path.join(workdir, f"{codec}_{bpp}_dec.y4m")
    dec_s = decode_to_y4m(codec, found["path"], decoded, clip.fps_num, clip.fps_den)
    res = evaluate(clip_path, decoded, tgv_path=found["path"], metrics=metrics, cvvdp_opts=cvvdp_opts)
    preset = opts.x265_preset if codec == "x265" else opts.vvenc_preset
    rec = {"clip": Path(clip_path).stem, "codec": codec, "preset": preset, "target_bpp": bpp,
           "q": found["q"], "q_kind": "crf" if codec == "x265" else "qp",
           "rate_reached": found["rate_reached"], "rate_search": found["tries"],
           "encode_s": found["encode_s"], "decode_s": dec_s, "search_s": search_s,
           "encode_fps": n / found["encode_s"], "decode_fps": n / dec_s,
           "command": " ".join(encode_cmd(codec, "SRC.y4m", "OUT", found["q"], opts)[1:])}
    rec.update({k: v for k, v in res.items() if k not in ("ref", "test", "bitstream")})
    if not found["rate_reached"]:
        rec["notes"].append(f"{codec} cannot reach {bpp} bpp within +-{opts.tolerance:.0%}: "
                            f"closest is {res['bpp']:.5f} bpp at {rec['q_kind']} {found['q']}")
    return rec


def list_clips(folder: str | Path, names: list[str] | None = None) -> list[str]:
    """y4m files in folder (sorted), optionally only those whose stem or name is in names."""
    paths = sorted(str(p) for p in Path(folder).glob("*.y4m"))
    if names:
        paths = [p for p in paths if Path(p).stem in names or Path(p).name in names]
    if not paths:
        raise InputError(f"no .y4m clips found in {folder}" + (f" matching {names}" if names else ""))
    return paths


def environment() -> dict:
    """The exact configuration printed beside every number."""
    ver = subprocess.run([_ffmpeg(), "-hide_banner", "-version"], capture_output=True, text=True)
    repo = Path(__file__).resolve().parent.parent
    git = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return {"ffmpeg": ver.stdout.splitlines()[0] if ver.stdout else "?", "git": git.stdout.strip() or "?",
            "python": sys.version.split()[0],
            "machine": platform.machine(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}


def record_key(rec: dict) -> tuple:
    """(clip, codec, target bpp, frames): what makes two baseline records the same point."""
    return rec["clip"], rec["codec"], rec["target_bpp"], rec["frames"]


def write_results(path: Path, records: list[dict], opts: BaselineOptions) -> None:
    out = {"benchmark": "baselines", "command": "python " + " ".join(sys.argv),
           "options": asdict(opts), "environment": environment(), "records": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips-dir", default=str(DEFAULT_CLIPS))
    ap.add_argument("--clips", nargs="*", help="clip names (stem) to run; default all")
    ap.add_argument("--bpp", nargs="+", type=float, default=[0.005, 0.01])
    ap.add_argument("--codecs", nargs="+", default=list(CODECS), choices=CODECS)
    ap.add_argument("--metrics", nargs="+", default=["psnr", "msssim", "vmaf", "cvvdp"])
    ap.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    ap.add_argument("--cvvdp-python", default=None, help="helper Python with pycvvdp "
                    "(default $TGVC_CVVDP_PYTHON)")
    ap.add_argument("--out", default="benchmarks/results/baselines.json")
    ap.add_argument("--resume", action="store_true", help="keep records already in --out, run the rest")
    args = ap.parse_args(argv)
    opts = BaselineOptions()
    out_path = Path(args.out)
    done = {}
    if args.resume and out_path.exists():
        done = {record_key(r): r for r in json.loads(out_path.read_text())["records"]}
    records = []
    with tempfile.TemporaryDirectory(prefix="tgvc_baselines_") as tmp:
        for clip in list_clips(args.clips_dir, args.clips):
            if args.frames:
                clip = trim_y4m(clip, os.path.join(tmp, Path(clip).name), args.frames)
            n = read_y4m_planes(clip).num_frames
            for bpp in args.bpp:
                for codec in args.codecs:
                    key = (Path(clip).stem, codec, bpp, n)
                    if key in done:
                        records.append(done[key])
                        continue
                    rec = run_baseline(codec, clip, bpp, tmp, tuple(args.metrics), opts,
                                       CvvdpOptions(python=args.cvvdp_python))
                    records.append(rec)
                    print(f"{rec['clip']:24s} {codec:6s} target {bpp:.4f} bpp -> {rec['bpp']:.5f} "
                          f"PSNR-Y {rec.get('psnr_y', float('nan')):.2f} "
                          f"VMAF {rec.get('vmaf') or float('nan'):.2f} "
                          f"JOD {rec.get('cvvdp_jod') or float('nan'):.3f} "
                          f"enc {rec['encode_s']:.1f}s", flush=True)
                    for f in Path(tmp).glob(f"{codec}_*"):
                        f.unlink()
                    write_results(out_path, records, opts)  # after every record: resumable
    write_results(out_path, records, opts)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
