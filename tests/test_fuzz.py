"""Bounded fuzzing of the .tgv parser and the warp decoder (target and mutator: tests/fuzz_tgv.py).

test_fuzz_for_a_bounded_time runs for $TGVC_FUZZ_SECONDS (default 60): coverage-guided with atheris in a
subprocess when atheris is importable (the `test` extra installs it where it has wheels: CPython >= 3.11 on
x86-64 Linux), else the seeded random mutator in-process. Any exception other than a TgvcError fails the test and prints the
input as base64; put it under tests/data/fuzz_seeds/ (every seed runs first) and fix the bug with a
targeted test beside it.
"""
import base64
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_tgv as F
from tgvc_rt.bitstream import iter_sections, read_bitstream

SECONDS = float(os.environ.get("TGVC_FUZZ_SECONDS", "60"))
ENGINE = os.environ.get("TGVC_FUZZ_ENGINE", "atheris" if importlib.util.find_spec("atheris") else "random")
RUNTIME = Path(__file__).resolve().parent.parent / "runtime"


def test_seeds_parse_and_decode():
    seeds = F.load_seeds()
    assert len(seeds) >= 4
    for data in seeds:
        assert F.check_one(data) and F.check_one(data, decode=False)
    tracks = read_bitstream(F.SEEDS_DIR.joinpath("carphone_64x48_tracks.tgv").read_bytes())
    assert all(len(g.tracks) > 1 for g in tracks.groups)  # some seed reaches the trajectory decoder


def test_split_and_join_round_trip_and_mutants_keep_valid_crcs():
    import random
    rng = random.Random(0)
    for data in F.load_seeds():
        assert F.join_stream(F.split_stream(data), data[:6]) == data
        secs = F.split_stream(data)
        secs[1] = (secs[1][0], secs[1][1][:-1] + b"\x00")
        list(iter_sections(F.join_stream(secs)))  # edited payload, fresh CRC: framing still valid
        assert F.mutate(data, rng) != b""
    for group in F.split_stream(F.SEEDS_DIR.joinpath("carphone_64x48_tracks.tgv").read_bytes()):
        if group[0] == 3:
            assert F.fix_track_body_length(group[1]) == group[1]
            assert F.fix_track_body_length(group[1] + b"\x01") != group[1] + b"\x01"


def test_fuzz_for_a_bounded_time(tmp_path):
    if ENGINE == "atheris":
        findings = _run_atheris(tmp_path)
    else:
        result = F.fuzz(SECONDS, seed=20261206)
        print(f"fuzz: {result.executions} inputs in {result.seconds:.1f} s, {result.parsed} parsed, "
              f"corpus {result.corpus}")
        findings = result.findings
    report = "\n".join(f"{err}\n  reproducer (base64): {base64.b64encode(data).decode()}" for err, data in findings)
    assert not findings, f"{len(findings)} fuzz finding(s):\n{report}"


def _run_atheris(tmp_path) -> list[tuple[str, bytes]]:
    """atheris for SECONDS on a copy of the seeds; a crash leaves crash-* files under tmp_path."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, data in enumerate(F.load_seeds()):
        (corpus / f"seed{i}.tgv").write_bytes(data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(RUNTIME), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, F.__file__, f"-max_total_time={max(1, int(SECONDS))}", "-seed=1", "-rss_limit_mb=4096",
           f"-artifact_prefix={tmp_path}/", str(corpus)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SECONDS * 3 + 120)
    print(proc.stderr[-2000:])
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("oom-*")) + sorted(tmp_path.glob("timeout-*"))
    if proc.returncode != 0 and not crashes:
        pytest.fail(f"atheris exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return [(f"{p.name} (atheris)\n{proc.stderr[-3000:]}", p.read_bytes()) for p in crashes]
