"""Long fuzz run of the .tgv parser: ``--runs`` mutated streams through ``read_bitstream`` (small caps) and,
for those that parse, the trajectory decoder on every group; no keyframe or warp decoding (that is the
CI test's slower path, tests/test_fuzz.py). Seeded random mutator with CRC fix-up from tests/fuzz_tgv.py.
Writes benchmarks/results/fuzz_tgv.json (command, executions, seconds, findings, versions).

    nice python benchmarks/fuzz_tgv.py --runs 1000000
"""
from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import time
from pathlib import Path

from paths import REPO_ROOT  # benchmarks/paths.py (this folder is on sys.path when run as a script)

sys.path.insert(0, str(REPO_ROOT / "tests"))
import fuzz_tgv  # noqa: E402  tests/fuzz_tgv.py

OUT = REPO_ROOT / "benchmarks" / "results" / "fuzz_tgv.json"


def versions() -> dict[str, str]:
    """Python, numpy and tgvc-rt versions plus the git commit the run used."""
    import subprocess

    import numpy as np

    import tgvc_rt
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"python": platform.python_version(), "numpy": np.__version__,
            "tgvc_rt": getattr(tgvc_rt, "__version__", "0.1.0"), "commit": commit, "machine": platform.machine()}


def run(runs: int, seed: int, chunk: int = 100_000) -> dict:
    """``runs`` executions in chunks (each a fresh seeded loop, progress printed after each)."""
    total = {"executions": 0, "parsed": 0, "seconds": 0.0, "findings": []}
    for i in range(0, runs, chunk):
        res = fuzz_tgv.fuzz(0.0, seed=seed + i, decode=False, max_runs=min(chunk, runs - i))
        total["executions"] += res.executions
        total["parsed"] += res.parsed
        total["seconds"] += res.seconds
        total["findings"] += [{"error": err, "reproducer_base64": base64.b64encode(data).decode()}
                              for err, data in res.findings]
        print(f"{total['executions']} executions, {total['seconds']:.0f} s, "
              f"{len(total['findings'])} findings", flush=True)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    total = run(args.runs, args.seed)
    result = {"command": f"python benchmarks/fuzz_tgv.py --runs {args.runs} --seed {args.seed}",
              "target": "read_bitstream (tests/fuzz_tgv.py caps) + decode_tracks per group",
              **total, "seconds": round(total["seconds"], 1), "wall_seconds": round(time.perf_counter() - t0, 1),
              "executions_per_second": round(total["executions"] / max(total["seconds"], 1e-9)),
              "versions": versions()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.out.name}: {result['executions']} executions in {result['seconds']} s, "
          f"{len(result['findings'])} findings")


if __name__ == "__main__":
    main()
