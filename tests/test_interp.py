"""Trajectory-guided interpolation with the shipped IFNet (``--mode interp``), without torch."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tgvc_rt.decoder.interpolate import InterpOptions, interpolate_group, track_constraints
from tgvc_rt.errors import ModelSetError
from tgvc_rt.models import load_model_set
from tgvc_rt.types import Tracks

REFERENCE = Path(__file__).parent / "data" / "interpolator_reference.npz"
H, W, F, S = 128, 192, 11, 40  # frame size, group length (long gap: 10 frames), square side
X0, Y0, SWING = 40, 44, 60  # the square's corner at the keys and how far it swings out mid-group


@pytest.fixture(scope="module")
def interpolator():
    return load_model_set("default").session("interpolator")


def test_onnx_reproduces_the_torch_reference(interpolator):
    """The shipped graph gives the output torch gave at export (tests/data, written by the export)."""
    ref = np.load(REFERENCE)
    feeds = {name: ref[name] for name in interpolator.inputs}
    out = interpolator.run(feeds)
    assert np.abs(out["frame"] - ref["frame"]).max() < 2e-3
    assert np.abs(out["flow"] - ref["flow"]).max() < 2e-2
    assert np.abs(out["mask"] - ref["mask"]).max() < 2e-3


def _swing(f: int) -> float:
    """Horizontal offset of the square at frame f: out and back (both keys see it at X0)."""
    return SWING * np.sin(np.pi * f / (F - 1))


def _scene():
    """A red textured square that swings right and back over a static grey texture; its tracks."""
    rng = np.random.default_rng(3)
    bg = cv2.resize(rng.integers(60, 200, (H // 8, W // 8), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    bg = np.repeat(bg[..., None], 3, axis=2)
    fg = np.zeros((S, S, 3), np.uint8)
    fg[..., 0] = cv2.resize(rng.integers(180, 255, (S // 8, S // 8), dtype=np.uint8), (S, S))
    frames = np.empty((F, H, W, 3), np.uint8)
    for f in range(F):
        frames[f] = bg
        x = int(round(X0 + _swing(f)))
        frames[f, Y0:Y0 + S, x:x + S] = fg
    gy, gx = np.meshgrid(np.linspace(4, S - 5, 4), np.linspace(4, S - 5, 4), indexing="ij")
    pts = np.stack([gx.ravel() + X0, gy.ravel() + Y0], -1).astype(np.float32)
    xy = np.stack([pts + [_swing(f), 0.0] for f in range(F)], axis=1)  # [K, F, 2]
    return frames, Tracks(xy, np.ones(xy.shape[:2], bool))


def _red_share(frame: np.ndarray, f: int) -> float:
    """Share of the square's true position at frame f that shows the red square."""
    x = int(round(X0 + _swing(f)))
    box = frame[Y0 + 4:Y0 + S - 4, x + 4:x + S - 4].astype(int)
    return float(np.mean((box[..., 0] > 150) & (box[..., 1] < 100)))


@pytest.mark.parametrize("min_side,max_side", [(0, 0), (200, 0), (0, 100)])  # at 1x, 2x and half size
def test_tracks_fix_a_long_gap_motion_that_rife_alone_gets_wrong(interpolator, min_side, max_side):
    frames, tracks = _scene()
    sizes = dict(min_side=min_side, max_side=max_side)
    guided = interpolate_group(frames[0], frames[-1], tracks, interpolator.run, InterpOptions(**sizes))
    alone = interpolate_group(frames[0], frames[-1], tracks, interpolator.run,
                              InterpOptions(init_flow=False, guidance=0.0, **sizes))
    mid = F // 2
    assert _red_share(alone[mid], mid) < 0.2  # both keys show the square at X0: RIFE keeps it there
    assert _red_share(guided[mid], mid) > 0.8
    for f in range(2, F - 2):
        assert _red_share(guided[f], f) > 0.7, f


def test_endpoints_determinism_and_batch_independence(interpolator):
    frames, tracks = _scene()
    a = interpolate_group(frames[0], frames[-1], tracks, interpolator.run)
    b = interpolate_group(frames[0], frames[-1], tracks, interpolator.run, InterpOptions(batch=3))  # default batch 1
    assert np.array_equal(a[0], frames[0]) and np.array_equal(a[-1], frames[-1])
    assert np.array_equal(a, interpolate_group(frames[0], frames[-1], tracks, interpolator.run))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # batching only reorders float sums


def test_no_tracks_and_odd_sizes(interpolator):
    rng = np.random.default_rng(0)
    key_a = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
    key_b = np.roll(key_a, 3, axis=1)
    out = interpolate_group(key_a, key_b, Tracks.empty(5), interpolator.run)
    assert out.shape == (5, 70, 90, 3)
    assert np.array_equal(out[0], key_a) and np.array_equal(out[-1], key_b)
    for n in (1, 2):
        assert interpolate_group(key_a, key_b, Tracks.empty(n), interpolator.run).shape[0] == n


def test_track_constraints_weights():
    xy = np.zeros((2, 5, 2), np.float32)
    xy[:, :, 0] = np.arange(5)
    vis = np.ones((2, 5), bool)
    vis[1, 0] = False  # hidden in key A: says nothing about the flow to A
    pos, disp, weight = track_constraints(Tracks(xy, vis), 2)
    assert np.allclose(pos[:, 0], 2) and np.allclose(disp[:, 0], -2) and np.allclose(disp[:, 2], 2)
    assert weight.tolist() == [[1, 1], [0, 1]]
    pos, disp, weight = track_constraints(Tracks.empty(5), 2)
    assert pos.shape == (1, 2) and not weight.any()


def test_model_set_without_interpolator_is_a_clear_error(tmp_path):
    import json
    import shutil

    from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames
    from tgvc_rt.models import resolve_model_set

    src = resolve_model_set("default")
    dst = tmp_path / "noninterp"
    dst.mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    del manifest["models"]["interpolator"]
    manifest["models"] = {k: v for k, v in manifest["models"].items() if k == "tracker"}
    shutil.copy(src / "tracker.onnx", dst / "tracker.onnx")
    (dst / "manifest.json").write_text(json.dumps(manifest))
    golden = (Path(__file__).parent / "data" / "golden_v1.tgv").read_bytes()
    with pytest.raises(ModelSetError, match="no interpolator"):
        list(iter_decoded_frames(golden, DecodeOptions(mode="interp", model_set=str(dst), check_model_set=False)))


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_bad_interpolator_file_is_one_line_error(tmp_path, damage):
    """A set whose interpolator file is missing, or is not ONNX (sha256 updated so that only loading
    can tell), fails the default encode (keyframe trial) and decode with one clean line and no output."""
    import hashlib
    import json
    import subprocess
    import sys

    from tgvc_rt.models import resolve_model_set

    src = resolve_model_set("default")
    dst = tmp_path / "set"
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in ("manifest.json", "interpolator.onnx"):
            (dst / f.name).symlink_to(f)
    manifest = json.loads((src / "manifest.json").read_text())
    if damage == "garbage":
        (dst / "interpolator.onnx").write_bytes(b"not an onnx file")
        manifest["models"]["interpolator"]["sha256"] = hashlib.sha256(b"not an onnx file").hexdigest()
    (dst / "manifest.json").write_text(json.dumps(manifest))
    from tgvc_rt.data import SAMPLE_CLIP

    tgv, out = tmp_path / "clip.tgv", tmp_path / "out.y4m"
    cli = [sys.executable, "-m", "tgvc_rt"]
    encode = [*cli, "encode", str(SAMPLE_CLIP), "-o", str(tgv), "--frames", "8", "--bpp", "0.01", "-q",
              "--models", str(dst)]
    want = {"missing": "interpolator file 'interpolator.onnx' is missing",
            "garbage": "cannot load model interpolator.onnx"}[damage]
    proc = subprocess.run(encode, capture_output=True, text=True, timeout=120)  # the default effort needs it too
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and want in lines[0], proc.stderr
    assert not tgv.exists()
    subprocess.run([*encode, "--effort", "0"], check=True, timeout=120)  # a stream made for this set
    proc = subprocess.run([*cli, "decode", str(tgv), "-o", str(out), "--models", str(dst)],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and want in lines[0], proc.stderr
    assert not out.exists()
