"""Peak memory of the real decoder CLI on a long stream: does it stay flat as the stream gets longer?

For each ``--minutes`` (default 1 and 10) a source of that length is made from a clip's frames played
forth and back (ping-pong: foreman_cif has 96 frames, so frame i is frame i mod 190 mirrored) at
``--fps`` (default 15, so 10 minutes are 9000 frames) and encoded with the CLI
(``python -m tgvc_rt encode - -o x.tgv``, the y4m sent on standard input, default options); then

    python -m tgvc_rt decode x.tgv -o x.y4m -q     (--mode interp, the default, unless --mode)

runs as a child process, niced like this script, alone. Recorded per stream: the child's peak RSS
(``ru_maxrss`` of that child, from ``os.wait4``), wall time and frames per second, and the RSS and
output size sampled every ``--sample-seconds`` (the RSS should level off after the first groups and
stay flat), plus the same peak RSS / wall time for the encode (which holds one chunk of about 10 s of
frames at a time, ``--chunk-seconds``: its peak should not grow with the stream either). The decoded y4m is checked for its frame count and deleted.

    nice -n 19 python benchmarks/long_stream_memory.py            # 1 and 10 minutes at 15 fps
    nice -n 19 python benchmarks/long_stream_memory.py --minutes 0.2 --mode warp --out /tmp/lsm.json  # quick

Writes ``benchmarks/results/long_stream_memory.json`` (command, machine, versions, settings, results),
rewritten after every stream.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from paths import REPO_ROOT, VIDEOS_DIR  # benchmarks/paths.py (this folder is on sys.path when run as a script)

OUT = REPO_ROOT / "benchmarks" / "results" / "long_stream_memory.json"
RUNTIME = REPO_ROOT / "runtime"


def versions() -> dict[str, str]:
    import cv2
    import onnxruntime

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__, "commit": commit}


def machine() -> dict:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": model, "cpus": os.cpu_count(),
            "memory": mem, "nice": os.nice(0)}


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")


def pingpong_index(i: int, n: int) -> int:
    """Source frame of output frame ``i`` when ``n`` frames play forth and back (period 2n - 2)."""
    k = i % (2 * n - 2)
    return k if k < n else 2 * n - 2 - k


def write_pingpong_y4m(clip: Path, frames: int, fps: int, sink) -> None:
    """The clip's frames played forth and back as ``frames`` frames of a y4m at ``fps``, into ``sink`` (the
    clip's frames as they are, its header with the frame rate replaced)."""
    from tgvc_rt.io.y4m import read_header

    with open(clip, "rb") as f:
        line = f.readline()
        f.seek(0)
        size = read_header(f, clip).frame_size
        raw = []
        while marker := f.readline():
            if not marker.startswith(b"FRAME"):
                raise RuntimeError(f"{clip}: a frame header expected")
            raw.append(f.read(size))
    fields = [t if not t.startswith(b"F") else b"F%d:1" % fps for t in line.split()]
    sink.write(b" ".join(fields) + b"\n")
    for i in range(frames):
        sink.write(b"FRAME\n")
        sink.write(raw[pingpong_index(i, len(raw))])


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_child(cmd: list[str], env: dict, stdin_writer=None, watch: Path | None = None,
              sample_seconds: float = 10.0) -> dict:
    """Run ``cmd``; its peak RSS (MB, ``ru_maxrss`` of this child alone), wall seconds and RSS samples
    ``[seconds, MB, bytes of watch]`` taken every ``sample_seconds``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if stdin_writer else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    samples: list[list[float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(sample_seconds):
            rss = _rss_kb(proc.pid)
            if rss is None:
                continue
            size = 0
            if watch is not None:  # the writer's temporary file beside the output
                size = sum(p.stat().st_size for p in watch.parent.glob(f".{watch.name}*") if p.is_file())
                size = size or (watch.stat().st_size if watch.exists() else 0)
            samples.append([round(time.perf_counter() - t0, 1), round(rss / 1024, 1), size])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: out_chunks.__setitem__(k, f.read()), daemon=True)
               for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for r in readers:
        r.start()
    if stdin_writer is not None:
        try:
            stdin_writer(proc.stdin)
        finally:
            proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{out_chunks.get('stderr', b'').decode(errors='replace')[-2000:]}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "samples": samples,
            "stdout": out_chunks.get("stdout", b"").decode(errors="replace").strip()[-500:]}


def y4m_frame_count(path: Path) -> int:
    from tgvc_rt.io.y4m import read_header

    with open(path, "rb") as f:
        size = read_header(f, path).frame_size
        start = f.tell()
    total = path.stat().st_size - start
    count, rest = divmod(total, size + len(b"FRAME\n"))
    if rest:
        raise RuntimeError(f"{path}: {rest} stray bytes after {count} frames")
    return count


def thin(samples: list, keep: int = 120) -> list:
    """At most ``keep`` samples, evenly spread (first and last kept)."""
    if len(samples) <= keep:
        return samples
    idx = np.unique(np.linspace(0, len(samples) - 1, keep).round().astype(int))
    return [samples[i] for i in idx]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=VIDEOS_DIR / "foreman_cif.y4m")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--mode", default="interp", help="decode --mode (default interp, the CLI's default)")
    ap.add_argument("--encode-args", default="", help="extra encode flags (default none)")
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--work-dir", type=Path, default=None, help="where streams and outputs go (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from tgvc_rt.bitstream import read_bitstream

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(RUNTIME), os.environ.get("PYTHONPATH")])))
    py = sys.executable
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:] if argv is None else
                                        ["benchmarks/long_stream_memory.py", *argv]),
        "machine": machine(), "versions": versions(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "settings": {"clip": args.clip.name, "fps": args.fps, "mode": args.mode, "encode_args": args.encode_args,
                     "source": "the clip's frames played forth and back (ping-pong) to the stream's length",
                     "sample_seconds": args.sample_seconds},
        "results": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        for minutes in args.minutes:
            frames = int(round(minutes * 60 * args.fps))
            stream, decoded = tmp / f"long_{frames}.tgv", tmp / f"long_{frames}.y4m"
            enc_cmd = [py, "-m", "tgvc_rt", "encode", "-", "-o", str(stream), "-q", *args.encode_args.split()]
            print(f"{minutes} min, {frames} frames: encoding", flush=True)
            enc = run_child(enc_cmd, env, stdin_writer=lambda f: write_pingpong_y4m(args.clip, frames, args.fps, f),
                            sample_seconds=args.sample_seconds)
            bs = read_bitstream(stream.read_bytes())
            sizes = [g.end - g.start + 1 for g in bs.groups]
            dec_cmd = [py, "-m", "tgvc_rt", "decode", str(stream), "-o", str(decoded), "-q", "--mode", args.mode]
            print(f"{minutes} min: decoding ({len(bs.groups)} groups)", flush=True)
            load_before = loadavg()
            dec = run_child(dec_cmd, env, watch=decoded, sample_seconds=args.sample_seconds)
            count = y4m_frame_count(decoded)
            decoded.unlink()
            rss = [s[1] for s in dec["samples"]]
            half = rss[len(rss) // 2:]
            record = {
                "minutes": minutes, "frames": frames, "fps": args.fps,
                "width": bs.header.width, "height": bs.header.height,
                "stream_bytes": stream.stat().st_size, "groups": len(bs.groups),
                "group_frames": {"min": min(sizes), "max": max(sizes), "mean": round(float(np.mean(sizes)), 2)},
                "decode": {"command": " ".join(["python", "-m", "tgvc_rt", "decode", stream.name, "-o", decoded.name,
                                                "-q", "--mode", args.mode]),
                           "peak_rss_mb": dec["peak_rss_mb"], "wall_s": dec["wall_s"], "cpu_s": dec["cpu_s"],
                           "frames_per_s": round(count / dec["wall_s"], 2), "frames_written": count,
                           "rss_mb_first_sample": rss[0] if rss else None,
                           "rss_mb_max_second_half": max(half) if half else None,
                           "loadavg_before": load_before, "loadavg_after": loadavg(),
                           "rss_samples": thin(dec["samples"])},
                "encode": {"command": " ".join(["python", "-m", "tgvc_rt", "encode", "-", "-o", stream.name, "-q",
                                                *args.encode_args.split()]) + "  (ping-pong y4m on stdin)",
                           "peak_rss_mb": enc["peak_rss_mb"], "wall_s": enc["wall_s"]},
            }
            assert count == frames, (count, frames)
            result["results"].append(record)
            print(f"{minutes} min: decode peak RSS {dec['peak_rss_mb']} MB, {dec['wall_s']} s "
                  f"({record['decode']['frames_per_s']} frames/s); encode peak RSS {enc['peak_rss_mb']} MB", flush=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
