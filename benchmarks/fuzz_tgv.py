"""Long fuzz run of the .tgv parser: ``--runs`` mutated streams through ``read_bitstream`` (small caps) and,
for those that parse, the trajectory decoder on every group; no keyframe or warp decoding (that is the
CI test's slower path, tests/test_fuzz.py). Seeded random mutator with CRC fix-up from tests/fuzz_tgv.py.
Writes benchmarks/results/fuzz_tgv.json (the harness schema: command, commit, versions; one record with
the executions, the fuzzing time as its stage, the findings).

    nice python benchmarks/fuzz_tgv.py --runs 1000000
"""
from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

from harness import record, save, script_result  # benchmarks/ (on sys.path when run as a script)
from paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
import fuzz_tgv  # noqa: E402  tests/fuzz_tgv.py

OUT = REPO_ROOT / "benchmarks" / "results" / "fuzz_tgv.json"


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
    result = script_result("fuzz_tgv", {"runs": args.runs, "seed": args.seed,
                                        "target": "read_bitstream (tests/fuzz_tgv.py caps) + decode_tracks per group"})
    result["records"].append(record(
        {"runs": args.runs, "seed": args.seed}, {"fuzz": [total["seconds"]]}, executions=total["executions"],
        parsed=total["parsed"], wall_seconds=round(time.perf_counter() - t0, 1),
        executions_per_second=round(total["executions"] / max(total["seconds"], 1e-9)), findings=total["findings"]))
    save(args.out, result)
    print(f"{args.out.name}: {total['executions']} executions in {total['seconds']:.1f} s, "
          f"{len(total['findings'])} findings")


if __name__ == "__main__":
    main()
