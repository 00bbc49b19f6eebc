"""House rules for the project's text: no machine paths, no talk of work sessions.

Scanned: every text file under runtime/, export/, benchmarks/ (recorded results in
benchmarks/results/ excepted) and docs/ -- the git-tracked and untracked-but-not-ignored files when
the repository is a git checkout, else every file below those folders (caches skipped).
"""
from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("runtime", "export", "benchmarks", "docs")
EXCLUDED = ("benchmarks/results/",)  # recorded outputs keep the commands they ran
SKIP_DIRS = {"__pycache__", ".pytest_cache", "cache", "build"}
BINARY_SUFFIXES = {".onnx", ".data", ".pt", ".pth", ".npy", ".npz", ".y4m", ".tgv", ".png", ".so"}

MACHINE_PATH = re.compile(r"/work/")
# Work sessions, issue numbers and the machine they ran on; ONNX Runtime / backend sessions
# ("InferenceSession", "open_session", "a backend session's run", "one encoder session") never match.
SESSION_TALK = re.compile(
    r"\b(?:this|that|the first|the second|the third|second|third|earlier|previous|last|next|later)"
    r" (?:work )?session\b"
    r"|\bsessions? ago\b"
    r"|\b(?:until|since|in|before|after) session \d"
    r"|\bsession \d+\b"
    r"|\bissue ?#?\d+"
    r"|\bthe shared 2[- ]core"
    r"|\bother engineers\b",
    re.IGNORECASE,
)

# Files other people own (not edited here); each entry is one exact line text the scan tolerates.
# Stale entries only warn, so fixing those files never breaks this test.
KNOWN: set[tuple[str, str]] = set()  # (file, stripped line) allowed to match; none today


def _listed_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *FOLDERS], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return [line for line in out.splitlines() if line]
    except (OSError, subprocess.SubprocessError):
        files = []
        for folder in FOLDERS:
            for path in (ROOT / folder).rglob("*"):
                rel = path.relative_to(ROOT)
                if path.is_file() and not SKIP_DIRS.intersection(rel.parts[:-1]):
                    files.append(rel.as_posix())
        return files


def _text_files() -> list[tuple[str, str]]:
    out = []
    for rel in sorted(set(_listed_files())):
        if rel.startswith(EXCLUDED):
            continue
        path = ROOT / rel
        try:
            data = path.read_bytes()
        except OSError:  # listed by git but deleted in the work tree
            continue
        if path.suffix in BINARY_SUFFIXES or b"\0" in data:  # ONNX, weights, clips, images
            continue
        out.append((rel, data.decode("utf-8", errors="replace")))
    return out


FILES = _text_files()


def _hits(pattern: re.Pattern) -> tuple[list[str], set]:
    hits, seen = [], set()
    for rel, text in FILES:
        for n, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                if (rel, line.strip()) in KNOWN:
                    seen.add((rel, line.strip()))
                else:
                    hits.append(f"{rel}:{n}: {line.strip()}")
    return hits, seen


def _warn_stale(pattern: re.Pattern, seen: set) -> None:
    stale = {k for k in KNOWN if pattern.search(k[1])} - seen
    if stale:
        warnings.warn(f"tests/test_house.py KNOWN entries no longer found (remove them): {sorted(stale)}")


def test_scan_sees_the_project():
    names = {rel for rel, _ in FILES}
    assert "runtime/tgvc_rt/__init__.py" in names and "benchmarks/README.md" in names
    assert not any(rel.startswith("benchmarks/results/") for rel in names)


def test_no_machine_paths():
    hits, seen = _hits(MACHINE_PATH)
    _warn_stale(MACHINE_PATH, seen)
    assert not hits, "absolute machine paths (use $TGVC_DATA / benchmarks/paths.py / placeholders):\n" + "\n".join(hits)


def test_no_work_session_talk():
    hits, seen = _hits(SESSION_TALK)
    _warn_stale(SESSION_TALK, seen)
    assert not hits, "text speaks of work sessions / issues; describe the thing itself:\n" + "\n".join(hits)


@pytest.mark.parametrize("text", [
    "measured in this session", "the first session's machine", "On the second session's machine",
    "an earlier session found", "(until session 3)", "see issue 6", "issue #12", "on the shared 2-core machine",
])
def test_session_pattern_catches(text):
    assert SESSION_TALK.search(text)


@pytest.mark.parametrize("text", [
    "ort.InferenceSession(path, providers=providers)", "session = open_session(path, device)",
    "a backend session's ``run``", "One segment is one encoder session:", "self._sessions[key]",
    "the ModelSet opens the sessions", "class OrtSession(Session):", "sessions open lazily",
    "an issue with the tracker", "on a 2-core CPU machine",
])
def test_session_pattern_spares_onnx_runtime(text):
    assert not SESSION_TALK.search(text)
