"""One JSON schema for timing results: ``tgvc-rt bench`` writes it, and so do the scripts in benchmarks/
(through ``benchmarks/harness.py``, which adds the plotting).

A result (``SCHEMA`` = "tgvc-rt-bench/1")::

    {"schema": "tgvc-rt-bench/1",
     "benchmark": "bench",                  # what produced it (the script's name)
     "command": "tgvc-rt bench clip.y4m --bpp 0.005,0.01",
     "date": "2026-05-09T07:35:25Z",        # UTC, when the result was made
     "commit": "a5983a0",                   # git describe --always --dirty of the checkout the code ran
                                            # from ("a5983a0-dirty" with local changes); null outside one
     "machine": {"system": "Linux", "machine": "x86_64", "processor": "...", "cpus": 2,
                 "loadavg": [1.0, 0.8, 0.5]},            # at the start; null where unknown
     "versions": {"python": "3.11.7", "tgvc_rt": "0.1.0", "numpy": "2.4.6", "onnxruntime": "1.32.0",
                  "opencv": "5.1.0", "constriction": "0.5.0", "av": "18.1.0", "scipy": "1.17.1"},
                                            # null for a package that is not installed
     "settings": {...},                     # what every record shares (clip, frames, repeat, ...)
     "records": [{"settings": {...},        # what this record varies (the sweep's values)
                  "stages": {"encode": STATS, "decode": STATS, "decode.interpolation": STATS, ...},
                  ...}],                    # any other numbers of the record (bytes, fps, quality, ...)
     ...}                                   # a benchmark may add top-level keys of its own

    STATS = {"mean_s": 1.23, "stdev_s": 0.01, "min_s": 1.22, "median_s": 1.23, "n": 3,
             "samples_s": [1.22, 1.24, 1.23]}

Times are seconds, measured after a warm-up; ``stdev_s`` is the sample standard deviation (0 for
one sample); on a machine shared with other jobs ``min_s`` and ``median_s`` are the steadier ones.
A stage inside another is named by a dotted path (``decode.interpolation`` is inside ``decode``).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

SCHEMA = "tgvc-rt-bench/1"
STATS_KEYS = ("mean_s", "stdev_s", "min_s", "median_s", "n", "samples_s")

# (key in "versions", distributions that provide it, first found wins)
PACKAGES = (("numpy", ("numpy",)), ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
            ("opencv", ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
                        "opencv-contrib-python")),
            ("constriction", ("constriction",)), ("av", ("av",)), ("scipy", ("scipy",)))


def time_calls(fn, repeat: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``fn()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def stage_stats(samples: list[float]) -> dict:
    """Mean, sample standard deviation, minimum and median of one stage's timings (seconds)."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("a stage needs at least one timing")
    return {"mean_s": statistics.fmean(values), "stdev_s": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min_s": min(values), "median_s": statistics.median(values), "n": len(values), "samples_s": values}


def _distribution_version(names: tuple[str, ...]) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str | None]:
    """Python, tgvc-rt and the versions of the packages that decide the timings (None: not installed)."""
    from . import __version__

    out: dict[str, str | None] = {"python": platform.python_version(),
                                  "tgvc_rt": _distribution_version(("tgvc-rt",)) or __version__}
    for key, names in PACKAGES:
        out[key] = _distribution_version(names)
    return out


def machine() -> dict:
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {"system": platform.system(), "machine": platform.machine(), "processor": _processor(),
            "cpus": os.cpu_count(), "loadavg": load}


def _processor() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit(path: Path | None = None) -> str | None:
    """``git describe --always --dirty`` of the checkout holding ``path`` (default: this package), or None
    when the package does not run from a git checkout (an installed wheel)."""
    here = Path(path).resolve() if path is not None else Path(__file__).resolve().parent
    folder = here if here.is_dir() else here.parent
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        if not git("ls-files", "--", str(here)):  # not tracked: e.g. a virtual environment inside a checkout
            return None
        return git("describe", "--always", "--dirty") or None
    except (OSError, subprocess.SubprocessError):
        return None


def new_result(benchmark: str, command: str, settings: dict | None = None, commit_of: Path | None = None) -> dict:
    """A result with its environment filled in and no records yet."""
    return {"schema": SCHEMA, "benchmark": benchmark, "command": command,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": git_commit(commit_of),
            "machine": machine(), "versions": versions(), "settings": dict(settings or {}), "records": []}


def validate(result: dict) -> None:
    """ValueError naming the first thing in ``result`` that breaks the schema."""
    if result.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} result (schema {result.get('schema')!r})")
    for key, kind in (("benchmark", str), ("command", str), ("date", str), ("machine", dict), ("versions", dict),
                      ("settings", dict), ("records", list)):
        if not isinstance(result.get(key), kind):
            raise ValueError(f"result field {key!r} should be a {kind.__name__}")
    for i, record in enumerate(result["records"]):
        if not isinstance(record.get("settings"), dict) or not isinstance(record.get("stages"), dict):
            raise ValueError(f"record {i} needs 'settings' and 'stages' objects")
        for name, st in record["stages"].items():
            missing = set(STATS_KEYS) - set(st)
            if missing:
                raise ValueError(f"record {i} stage {name!r} lacks {sorted(missing)}")


def dumps(result: dict) -> str:
    validate(result)
    return json.dumps(result, indent=1) + "\n"


def write_result(path: Path, result: dict) -> None:
    """Validate and write ``result`` atomically (a reader never sees half a file)."""
    from .io import write_bytes_atomic

    write_bytes_atomic(Path(path), dumps(result).encode())


def load_result(path: Path) -> dict:
    result = json.loads(Path(path).read_text())
    validate(result)
    return result
