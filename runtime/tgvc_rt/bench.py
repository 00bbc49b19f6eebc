"""`tgvc-rt bench`: llama-bench-style timing of encode and decode on one clip.

The list options (``--bpp``, ``--mode``, ``--threads``, ``--device``) take one value or a comma-separated
list; the cross product of the lists is run, one table row per combination (bpp, then mode, then
threads, then device, in the order given). The clip is encoded once per bpp and the stream decoded once per
row: one warm-up, then ``repeat`` timed runs, every number printed as mean ± stdev (milliseconds)
under the configuration that produced it. ``--threads`` is ONNX Runtime's (the interp and diffusion
modes). ``--device`` (cpu, cuda, tensorrt, auto) picks the model backend; each record says what ran
(``backend``: the backend and why better ones were passed over; ``loop``: host or device loop), and the
result names the GPU when one ran. ``--streams N`` adds a throughput measurement: N decodes of the stream
at once (threads, each with its own sessions), total frames per second. The result is written in the
``tgvc_rt.benchrecord`` schema (seconds).

    tgvc-rt bench clip.y4m --bpp 0.003,0.005,0.01 --mode warp,interp --threads 1,2 --json bench.json
    tgvc-rt bench clip.y4m --mode interp --device cpu,cuda --streams 4
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import OptionError

# The decoder's own stages (DecodeStats.seconds), in pipeline order: the table's columns. Other keys
# (the diffusion decoder's inner stages) go to the JSON only.
TABLE_STAGES = ("models", "keyframes", "tracks", "interpolation", "diffusion")
MAX_THREADS = 1024


@dataclass(frozen=True)
class BenchPoint:
    """One row of a sweep."""
    bpp: float
    mode: str
    threads: int | None  # None: ONNX Runtime's default
    device: str = "cpu"  # backend device of the models (backends/select.py)


def parse_list(option: str, text: str, convert: Callable, check: Callable[[object], None],
               kind: str = "value") -> list:
    """Values of a comma-separated list option, converted and checked; OptionError (one line, naming
    the option and the value) for an empty item, a value that does not convert or fails ``check``,
    or a value listed twice."""
    items = [t.strip() for t in str(text).split(",")]
    if any(not t for t in items):
        raise OptionError(f"{option} {text!r}: give one value or a comma-separated list without empty items")
    values = []
    for item in items:
        try:
            value = convert(item)
        except ValueError:
            raise OptionError(f"{option} {item!r}: not a {kind}") from None
        check(value)
        if value in values:
            raise OptionError(f"{option} {text!r}: {item} is listed twice")
        values.append(value)
    return values


def _check_bpp(value: float) -> None:
    from .encoder.ratecontrol import MAX_BPP, MIN_BPP

    if not MIN_BPP <= value <= MAX_BPP:
        raise OptionError(f"--bpp {value}: must be within {MIN_BPP}..{MAX_BPP}")


def _check_mode(value: str) -> None:
    from .decoder.pipeline import MODES

    if value not in MODES:
        raise OptionError(f"--mode {value!r}: choose one of {', '.join(MODES)}")


def _check_threads(value: int) -> None:
    if not 1 <= value <= MAX_THREADS:
        raise OptionError(f"--threads {value}: must be within 1..{MAX_THREADS}")


def _check_device(value: str) -> None:
    from .backends.select import DEVICES

    if value not in DEVICES:
        raise OptionError(f"--device {value!r}: choose one of {', '.join(DEVICES)}")


def parse_sweep(bpp: str, mode: str, threads: str | None, device: str = "cpu") -> list[BenchPoint]:
    """The rows of a sweep: the cross product of the lists, in the order given. A device that no backend
    can serve here is an error before any work (for the modes that run models)."""
    from .backends.select import choose_backend
    from .decoder.pipeline import MODEL_MODES

    bpps = parse_list("--bpp", bpp, float, _check_bpp, "number")
    modes = parse_list("--mode", mode, str, _check_mode)
    thread_counts = ([None] if threads is None
                     else parse_list("--threads", threads, int, _check_threads, "whole number"))
    devices = parse_list("--device", device, str, _check_device)
    if any(m in MODEL_MODES for m in modes):
        for d in devices:
            choose_backend(d)
    return [BenchPoint(b, m, t, d) for b, m, t, d in itertools.product(bpps, modes, thread_counts, devices)]


def _timed(fn: Callable[[], dict], repeat: int) -> list[dict]:
    """One warm-up call of ``fn``, then ``repeat`` timed ones; each returns its stage seconds."""
    fn()
    return [fn() for _ in range(repeat)]


def _stages(runs: list[dict], prefix: str) -> tuple[dict, dict]:
    """Per-stage statistics of timed runs (stage -> seconds dicts), and the call counts (``*_calls``)."""
    from .benchrecord import stage_stats

    keys = list(dict.fromkeys(k for run in runs for k in run))
    stats = {f"{prefix}{k}": stage_stats([run.get(k, 0.0) for run in runs]) for k in keys if not k.endswith("_calls")}
    counts = {f"{prefix}{k}": runs[0].get(k, 0) for k in keys if k.endswith("_calls")}
    return stats, counts


def _encode_runs(video, bpp: float, repeat: int) -> tuple[bytes, list[dict]]:
    from .encoder.pipeline import EncodeOptions, encode_video
    from .encoder.ratecontrol import RateOptions

    out = {}

    def once() -> dict:
        t0 = time.perf_counter()
        result = encode_video(video, EncodeOptions(rate=RateOptions(bpp=bpp), seed=0))
        seconds = time.perf_counter() - t0
        out["data"] = result.data
        return {"": seconds, **{f".{k}": v for k, v in result.seconds.items()}}

    runs = _timed(once, repeat)
    return out["data"], runs


def _decode_options(point: BenchPoint):
    from .decoder.diffusion import DiffusionOptions
    from .decoder.pipeline import DecodeOptions

    options = DecodeOptions(mode=point.mode, threads=point.threads, device=point.device)
    if point.mode == "diffusion":
        options.diffusion = DiffusionOptions(threads=point.threads)
    return options


def _decode_once(data: bytes, point: BenchPoint):
    from .decoder.pipeline import DecodeStats, iter_decoded_frames

    stats = DecodeStats()
    t0 = time.perf_counter()
    for _ in iter_decoded_frames(data, _decode_options(point), stats):
        pass
    return time.perf_counter() - t0, stats


def _decode_runs(data: bytes, point: BenchPoint, repeat: int, seen: dict | None = None) -> list[dict]:
    def once() -> dict:
        seconds, stats = _decode_once(data, point)
        if seen is not None:
            seen.update(backend=stats.backend, loop=stats.loop)
        return {"": seconds, **{f".{k}": v for k, v in stats.seconds.items()}}

    return _timed(once, repeat)


def _throughput(data: bytes, point: BenchPoint, streams: int, frames: int) -> dict:
    """``streams`` decodes of the stream at once (one thread and one set of sessions each), after a warm-up
    round: total frames per second over the wall time of the round."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=streams) as pool:
        list(pool.map(lambda _: _decode_once(data, point), range(streams)))  # warm-up
        t0 = time.perf_counter()
        list(pool.map(lambda _: _decode_once(data, point), range(streams)))
        wall = time.perf_counter() - t0
    return {"streams": streams, "wall_s": wall, "frames_per_s": streams * frames / wall}


def _cell(stats: dict | None) -> str:
    return "–" if stats is None else f"{stats['mean_s'] * 1e3:.1f} ± {stats['stdev_s'] * 1e3:.1f}"


class _Table:
    """A Markdown table printed row by row (fixed columns, so a row can be printed when it is measured)."""

    def __init__(self, stages: list[str]) -> None:
        self.stages = stages
        self.head = (["bpp", "mode", "threads", "device", "bytes", "real bpp", "encode ms", "decode ms"]
                     + [f"{s} ms" for s in stages] + ["enc fps", "dec fps"])
        self.right = [True, False, True, False, True, True] + [True] * (len(self.head) - 6)
        self.width = [max(len(h), 15 if h.endswith(" ms") else 7) for h in self.head]

    def _line(self, cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w)
                                 for c, w, r in zip(cells, self.width, self.right)) + " |"

    def header(self) -> list[str]:
        rule = "|" + "|".join("-" * (w + 1) + ":" if r else ":" + "-" * (w + 1)
                              for w, r in zip(self.width, self.right)) + "|"
        return [self._line(self.head), rule]

    def row(self, record: dict) -> str:
        s, st = record["settings"], record["stages"]
        cells = [f"{s['bpp']:g}", s["mode"], "default" if s["threads"] is None else str(s["threads"]),
                 s.get("device", "cpu"), str(record["bytes"]), f"{record['bpp']:.5f}", _cell(st.get("encode")), _cell(st.get("decode"))]
        cells += [_cell(st.get(f"decode.{k}")) for k in self.stages]
        cells += [f"{record['encode_fps']:.1f}", f"{record['decode_fps']:.1f}"]
        return self._line(cells)


def run_bench(path: Path, points: list[BenchPoint], frames: int | None, repeat: int,
              json_out: Path | None = None, command: str = "tgvc-rt bench",
              emit: Callable[[str], None] = print, streams: int = 0) -> dict:
    """Time every point of the sweep on the clip at ``path``; print the table through ``emit`` row by row
    and write the result (after every row, so an interrupted sweep keeps its rows) to ``json_out``."""
    from .benchrecord import new_result, write_result
    from .io import read_video

    video = read_video(path, max_frames=frames)
    n, meta = len(video), video.meta
    sweep = {"bpp": list(dict.fromkeys(p.bpp for p in points)),
             "mode": list(dict.fromkeys(p.mode for p in points)),
             "threads": list(dict.fromkeys(p.threads for p in points)),
             "device": list(dict.fromkeys(p.device for p in points))}
    result = new_result("bench", command, settings={
        "clip": str(path), "frames": n, "size": f"{meta.width}x{meta.height}", "repeat": repeat, "warmup": 1,
        "seed": 0, "sweep": sweep, "streams": streams})
    if any(p.device != "cpu" for p in points):
        from .backends.select import gpu_info

        result["gpu"] = gpu_info()
    commit = result["commit"] or "unknown commit"
    emit(f"{Path(path).name} {meta.width}x{meta.height}, {n} frames: 1 warm-up + {repeat} timed runs a row, "
         f"{result['machine']['cpus']} CPUs, tgvc-rt {result['versions']['tgvc_rt']} ({commit})")
    table = _Table([s for s in TABLE_STAGES if s != "diffusion" or "diffusion" in sweep["mode"]])
    for line in table.header():
        emit(line)
    encodes: dict[float, tuple[bytes, dict, dict]] = {}
    for point in points:
        if point.bpp not in encodes:
            data, runs = _encode_runs(video, point.bpp, repeat)
            encodes[point.bpp] = (data, *_stages(runs, "encode"))
        data, enc_stats, _ = encodes[point.bpp]
        seen: dict = {}
        dec_stats, counts = _stages(_decode_runs(data, point, repeat, seen), "decode")
        record = {"settings": {"bpp": point.bpp, "mode": point.mode, "threads": point.threads, "device": point.device},
                  "bytes": len(data), "bpp": len(data) * 8 / (meta.width * meta.height * n), "frames": n,
                  "stages": {**enc_stats, **dec_stats},
                  "encode_fps": n / enc_stats["encode"]["mean_s"], "decode_fps": n / dec_stats["decode"]["mean_s"]}
        if counts:
            record["counts"] = counts
        if seen.get("backend"):
            record["backend"], record["loop"] = seen["backend"], seen["loop"]
        if streams > 1:
            record["throughput"] = _throughput(data, point, streams, n)
        result["records"].append(record)
        emit(table.row(record))
        if json_out is not None:
            write_result(json_out, result)
    return result
