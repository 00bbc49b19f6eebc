"""End-to-end CLI behaviour: the main job, determinism and every kind of bad input."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import y4m_frames
from tgvc_rt.io import read_video


def run(*args, check=None):
    proc = subprocess.run([sys.executable, "-m", "tgvc_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, sample_clip):
    out = tmp_path_factory.mktemp("enc") / "clip.tgv"
    run("encode", sample_clip, "-o", out, "--bpp", "0.01", "--frames", "24", "--seed", "7", "-q", check=0)
    return out


def assert_one_line_error(proc):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_encode_info_decode(encoded, tmp_path):
    info = run("info", encoded, check=0).stdout
    assert "176x144" in info and "24 frames" in info and "bpp" in info
    out = tmp_path / "out.y4m"
    run("decode", encoded, "-o", out, "-q", check=0)
    video = read_video(out)
    assert video.frames.shape == (24, 144, 176, 3)


def test_encode_is_deterministic(sample_clip, tmp_path):
    """Without --seed the noise seed comes from the coded content: two encodes are byte-identical; --seed
    still sets it."""
    from tgvc_rt.bitstream import read_bitstream

    for name in ("a", "b"):
        run("encode", sample_clip, "-o", tmp_path / f"{name}.tgv", "--frames", "16", "-q", check=0)
    assert (tmp_path / "a.tgv").read_bytes() == (tmp_path / "b.tgv").read_bytes()
    run("encode", sample_clip, "-o", tmp_path / "c.tgv", "--frames", "16", "--seed", "5", "-q", check=0)
    assert read_bitstream((tmp_path / "c.tgv").read_bytes()).header.noise_seed == 5


def test_decode_is_deterministic(encoded, tmp_path):
    run("decode", encoded, "-o", tmp_path / "a.y4m", "-q", check=0)
    run("decode", encoded, "-o", tmp_path / "b.y4m", "-q", check=0)
    assert (tmp_path / "a.y4m").read_bytes() == (tmp_path / "b.y4m").read_bytes()


def test_decode_to_mp4(encoded, tmp_path):
    run("decode", encoded, "-o", tmp_path / "a.mp4", "-q", check=0)
    assert read_video(tmp_path / "a.mp4").frames.shape[0] == 24


@pytest.mark.parametrize("cut", [1, 5, 30, -1, -5, -100])
def test_truncated_stream(encoded, tmp_path, cut):
    data = encoded.read_bytes()
    bad = tmp_path / "bad.tgv"
    bad.write_bytes(data[:cut] if cut > 0 else data[:len(data) + cut])
    out = tmp_path / "out.y4m"
    assert_one_line_error(run("decode", bad, "-o", out))
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    assert_one_line_error(run("info", bad))


def test_corrupted_stream(encoded, tmp_path):
    data = bytearray(encoded.read_bytes())
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.tgv"
    bad.write_bytes(bytes(data))
    assert_one_line_error(run("decode", bad, "-o", tmp_path / "o.y4m"))
    assert not (tmp_path / "o.y4m").exists()


@pytest.mark.parametrize("args", [
    ("encode", "/nonexistent/x.y4m", "-o", "x.tgv"),
    ("encode", "{clip}", "-o", "{tmp}/x.tgv", "--bpp", "-1"),
    ("encode", "{clip}", "-o", "{tmp}/x.tgv", "--bpp", "100"),
    ("encode", "{clip}", "-o", "{tmp}/x.y4m"),
    ("encode", "{clip}", "-o", "{tmp}/x.tgv", "--frames", "0"),
    ("encode", "{clip}", "-o", "{tmp}/x.tgv", "--resize", "banana"),
    ("encode", "{clip}", "-o", "/nonexistent-dir/x.tgv", "--frames", "3"),
    ("decode", "/nonexistent/x.tgv", "-o", "{tmp}/x.y4m"),
    ("decode", "{clip}", "-o", "{tmp}/x.y4m"),
    ("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--mode", "magic"),
    ("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--steps", "0"),
    ("decode", "{tgv}", "-o", "{tmp}/x.txt"),
    ("eval", "/nonexistent/a.y4m", "/nonexistent/b.y4m"),
    ("eval", "{clip}", "{clip}", "--metrics", "psnr", "--json", "/nonexistent-dir/r.json"),
    ("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--models", "/nonexistent", "--mode", "warp"),
    ("bench", "{clip}", "--mode", "foo"),
])
def test_bad_input_is_one_line(args, sample_clip, encoded, tmp_path):
    args = [a.format(clip=sample_clip, tmp=tmp_path, tgv=encoded) for a in args]
    assert_one_line_error(run(*args))
    assert not any(p.suffix in (".y4m", ".tgv", ".txt") for p in tmp_path.iterdir())


@pytest.mark.parametrize("args, says", [
    (("encode", "{y4m}", "-o", "/nonexistent-dir/x.tgv"), "output folder"),
    (("encode", "{y4m}", "-o", "{tmp}/x.tgv", "--keyframe-codec", "foo"), "--keyframe-codec"),
    (("eval", "{y4m}", "{y4m}", "--json", "/nonexistent-dir/r.json"), "output folder"),
    (("bench", "{y4m}", "--mode", "foo"), "--mode"),
    (("bench", "{y4m}", "--json", "/nonexistent-dir/b.json"), "output folder"),
    (("bench", "{y4m}", "--bpp", "0.005,x"), "--bpp"),
    (("bench", "{y4m}", "--mode", "warp,interp,foo"), "--mode"),
    (("bench", "{y4m}", "--threads", "1,0"), "--threads"),
    (("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--models", "/nonexistent", "--mode", "warp"), "model set"),
    (("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--models", "{tmp}", "--mode", "warp"), "model set"),
    (("decode", "{tgv}", "-o", "{tmp}/x.y4m", "--mode", "foo"), "--mode"),
])
def test_option_errors_come_before_the_work(args, says, tmp_path):
    """A bad option or output folder is reported before the input is read: the inputs here are garbage,
    and the one-line message names the option, not the input."""
    (tmp_path / "bad.y4m").write_bytes(b"garbage")
    (tmp_path / "bad.tgv").write_bytes(b"garbage")
    args = [a.format(y4m=tmp_path / "bad.y4m", tgv=tmp_path / "bad.tgv", tmp=tmp_path) for a in args]
    proc = run(*args)
    assert_one_line_error(proc)
    assert proc.returncode == 2 and says in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tgv", "bad.y4m"]


def test_decode_with_named_model_set(encoded, tmp_path):
    run("decode", encoded, "-o", tmp_path / "a.y4m", "--models", "default", "-q", check=0)
    assert read_video(tmp_path / "a.y4m").frames.shape[0] == 24


def test_rate_control_hits_target(tmp_path, sample_clip):
    for bpp in (0.005, 0.02):
        out = tmp_path / f"c{bpp}.tgv"
        run("encode", sample_clip, "-o", out, "--bpp", bpp, "-q", check=0)
        achieved = out.stat().st_size * 8 / (176 * 144 * 48)
        assert abs(achieved / bpp - 1) <= 0.10, (bpp, achieved)


def test_help_exits_zero():
    assert "encode" in run("--help", check=0).stdout
    assert run("encode", "--help").returncode == 0


def test_version():
    """``--version`` prints the installed distribution's version (the package's own in a bare source tree)."""
    import importlib.metadata

    import tgvc_rt

    try:
        want = importlib.metadata.version("tgvc-rt")
    except importlib.metadata.PackageNotFoundError:
        want = tgvc_rt.__version__
    proc = run("--version", check=0)
    assert proc.stdout == f"tgvc-rt {want}\n" and proc.stderr == ""


def test_version_without_installed_metadata(monkeypatch):
    """A source tree without installed metadata reports the package's ``__version__``."""
    import importlib.metadata

    import tgvc_rt
    from tgvc_rt.cli import package_version

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert package_version() == tgvc_rt.__version__


def test_no_output_when_no_tty(encoded, tmp_path):
    proc = run("decode", encoded, "-o", tmp_path / "a.y4m", "-q", check=0)
    assert proc.stdout == "" and proc.stderr == ""
    assert np.isfinite(read_video(tmp_path / "a.y4m").frames.mean())


def test_info_models():
    out = run("info", "--models", "default", check=0).stdout
    assert "vae_encoder" in out and "unet" in out and "hash" in out


def test_decode_diffusion(tmp_path, sample_clip):
    """--mode diffusion end to end on a small stream (12 frames: one group with tracks, so the guidance
    runs; one denoising step): the keyframes pass through unchanged, the frames between them are the
    interp frames refined, not replaced."""
    from tgvc_rt.bitstream import read_bitstream

    tgv = tmp_path / "d.tgv"
    run("encode", sample_clip, "-o", tgv, "--frames", "12", "--bpp", "0.01", "--track-share", "0.5", "--seed", "3",
        "-q", check=0)
    assert len(read_bitstream(tgv.read_bytes()).groups[0].tracks) > 1  # K > 0
    for mode, extra in (("diffusion", ("--steps", "1")), ("interp", ())):
        proc = run("decode", tgv, "-o", tmp_path / f"{mode}.y4m", "--mode", mode, *extra, "--threads", "1", "-q",
                   check=0)
        assert proc.stdout == "" and proc.stderr == ""
    diffused = read_video(tmp_path / "diffusion.y4m").frames.astype(np.int16)
    interp = read_video(tmp_path / "interp.y4m").frames.astype(np.int16)
    assert diffused.shape == (12, 144, 176, 3)
    assert np.array_equal(diffused[[0, -1]], interp[[0, -1]])
    change = np.abs(diffused[1:-1] - interp[1:-1]).mean(axis=(1, 2, 3))
    assert (change > 0).all() and (change < 20).all(), change


def test_onnx_tracker_and_bench(tmp_path, sample_clip):
    out = tmp_path / "o.tgv"
    run("encode", sample_clip, "-o", out, "--frames", "12", "--tracker", "onnx", "-q", check=0)
    assert out.stat().st_size > 0
    text = run("bench", sample_clip, "--frames", "8", "--repeat", "1", "--json", tmp_path / "b.json", check=0).stdout
    assert "encode" in text and "decode" in text
    from tgvc_rt.benchrecord import load_result

    result = load_result(tmp_path / "b.json")
    assert result["command"].startswith("tgvc-rt bench ") and len(result["records"]) == 1


def _cli_defaults(command: str) -> dict:
    import inspect

    from tgvc_rt import cli

    return {name: p.default.default for name, p in inspect.signature(getattr(cli, command)).parameters.items()}


NOT_OPTIONS = {"input", "output", "quiet"}  # arguments and the terminal switch: no dataclass behind them


def test_encode_defaults_match_the_api():
    """Every encode option's default is the library's (one source of truth for tuned values); options
    that only shape the input (``--frames``, ``--resize``) default to 'all' / 'as is'."""
    from tgvc_rt.encoder.pipeline import EncodeOptions

    want = EncodeOptions()
    api = {"bpp": want.rate.bpp, "kbps": want.rate.kbps, "track_share": want.rate.track_share,
           "max_gap": want.keyframes.max_gap, "tracker": want.tracking.method,
           "grid_step": want.tracking.grid_step, "track_step": want.trajectories.step,
           "keyframe_codec": want.keyframe_codec, "seed": want.seed, "effort": want.effort,
           "models": want.model_set, "chunk_seconds": want.chunk_seconds, "frames": None, "resize": None}
    cli = _cli_defaults("encode")
    assert set(cli) - NOT_OPTIONS == set(api), "a new encode option needs its API default here"
    for flag, value in api.items():
        assert cli[flag] == value, flag


def test_decode_defaults_match_the_api():
    """Every decode option's default is the options dataclasses' (tuned values live in one place);
    ``--models`` defaults to None, read as DecodeOptions.model_set ("default")."""
    from tgvc_rt.decoder.diffusion import DiffusionOptions
    from tgvc_rt.decoder.pipeline import DecodeOptions

    diffusion, decode = DiffusionOptions(), DecodeOptions()
    api = {"steps": diffusion.steps, "strength": diffusion.strength, "guidance_scale": diffusion.guidance_scale,
           "guidance_impl": diffusion.guidance_impl, "diffusion_output": diffusion.output,
           "residual_blur": diffusion.residual_blur, "mode": decode.mode, "device": decode.device,
           "threads": decode.threads, "init_flow": decode.interp.init_flow,
           "flow_guidance": decode.interp.guidance, "conceal": decode.conceal, "conceal_report": None,
           "models": None}
    cli = _cli_defaults("decode")
    assert set(cli) - NOT_OPTIONS == set(api), "a new decode option needs its API default here"
    for flag, value in api.items():
        assert cli[flag] == value, flag


def wait_until(condition, proc, timeout=60.0) -> bool:
    """Poll ``condition`` until it holds (True), ``proc`` ends or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def catches_sigterm(pid: int) -> bool:
    """True once process ``pid`` has a SIGTERM handler (the SigCgt mask of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches the child through /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_signal_ends_run_and_leaves_no_file(command, sig, sample_clip, encoded, tmp_path):
    """SIGINT/SIGTERM mid-run: one stderr line, status 128 + signal, no output and no temporary file.
    The decode (diffusion: seconds long) is signalled once its hidden temporary output exists; the encode
    (which writes only at its end) once the CLI has its SIGTERM handler, plus a moment into the work."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if command == "encode":
        args = ["encode", sample_clip, "-o", out_dir / "x.tgv", "--resize", "352x288", "-q"]
    else:
        args = ["decode", encoded, "-o", out_dir / "x.y4m", "--mode", "diffusion", "--threads", "1", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "tgvc_rt", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = (lambda: catches_sigterm(proc.pid)) if command == "encode" else (lambda: any(out_dir.iterdir()))
        assert wait_until(ready, proc), "the run ended before it could be signalled"
        if command == "encode":
            time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig, err
    assert err.splitlines() == ["tgvc-rt: interrupted"]
    assert list(out_dir.iterdir()) == []


def test_error_caused_by_a_stop_signal_is_the_interruption(monkeypatch):
    """A library can turn ``Interrupted`` into another error (an extension module initialising when the
    signal comes raises ImportError): once a stop signal has arrived, the CLI reports the interruption."""
    from tgvc_rt import cli, signals

    def app(**_):
        raise ImportError("import numpy failed")

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(signals, "_received", [signal.SIGTERM])
    with pytest.raises(signals.Interrupted) as stopped:
        cli._run()
    assert stopped.value.status == 143


def test_no_output_is_committed_after_a_stop_signal(monkeypatch, tmp_path):
    """Even where a library swallowed the exception, an output is not renamed into place after a stop signal."""
    from tgvc_rt import signals
    from tgvc_rt.io import write_bytes_atomic

    monkeypatch.setattr(signals, "_received", [signal.SIGINT])
    with pytest.raises(signals.Interrupted):
        write_bytes_atomic(tmp_path / "a.tgv", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cap", ["frames_per_group", "pixels_per_group", "tracks_per_group", "track_points_per_group"])
def test_stream_over_a_cap_is_one_line(cap, tmp_path):
    """A crafted stream over a cap (valid CRCs): `decode` and `info` give one line naming the cap, exit 2."""
    from test_bitstream import CAP_CASES, crafted

    bad = tmp_path / "big.tgv"
    bad.write_bytes(crafted(**CAP_CASES[cap]))
    for args in (("decode", bad, "-o", tmp_path / "o.y4m", "--mode", "warp"), ("info", bad)):
        proc = run(*args)
        assert_one_line_error(proc)
        assert proc.returncode == 2 and proc.stderr.startswith("tgvc-rt: error: .tgv stream exceeds a cap: ")
        assert f"over {cap} = " in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == [bad]


CLI = [sys.executable, "-m", "tgvc_rt"]


def ffmpeg_exe() -> str:
    return pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()


def y4m_planes(data: bytes) -> bytes:
    """The picture bytes of a y4m stream: its header line and FRAME markers taken out."""
    return b"".join(y4m_frames(data))


def test_encode_reads_y4m_from_a_pipe(sample_clip, tmp_path):
    """`ffmpeg -i clip -f yuv4mpegpipe - | tgvc-rt encode - -o x.tgv` gives the very stream that encoding the
    file gives; with --frames the encoder stops reading the pipe early and still ends (ffmpeg then gets
    a broken pipe, its business)."""
    options = ["--frames", "12", "--seed", "1", "--effort", "0", "-q"]
    run("encode", sample_clip, "-o", tmp_path / "file.tgv", *options, check=0)
    ffmpeg = subprocess.Popen([ffmpeg_exe(), "-v", "quiet", "-i", str(sample_clip), "-f", "yuv4mpegpipe", "-"],
                              stdout=subprocess.PIPE)
    encode = subprocess.Popen([*CLI, "encode", "-", "-o", str(tmp_path / "pipe.tgv"), *options],
                              stdin=ffmpeg.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ffmpeg.stdout.close()  # the encoder holds the only read end: ffmpeg learns when it stops reading
    out, err = encode.communicate(timeout=300)
    ffmpeg.wait(timeout=60)
    assert encode.returncode == 0 and out == b"" and err == b"", err
    assert (tmp_path / "pipe.tgv").read_bytes() == (tmp_path / "file.tgv").read_bytes()


def test_decode_writes_y4m_to_a_pipe(encoded, tmp_path):
    """`decode -o -` puts on stdout exactly the bytes `decode -o file.y4m` writes and nothing else (the
    summary is one line on stderr, none with -q), and a real ffmpeg reading y4m from the pipe gets every
    frame, pixel for pixel."""
    run("decode", encoded, "-o", tmp_path / "file.y4m", "--mode", "warp", "-q", check=0)
    want = (tmp_path / "file.y4m").read_bytes()
    for quiet in ([], ["-q"]):
        proc = subprocess.run([*CLI, "decode", str(encoded), "-o", "-", "--mode", "warp", *quiet],
                              capture_output=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout == want, proc.stderr
        lines = proc.stderr.decode().splitlines()
        assert lines == [] if quiet else (len(lines) == 1 and lines[0].startswith("-: 24 frames, warp"))
    decode = subprocess.Popen([*CLI, "decode", str(encoded), "-o", "-", "--mode", "warp", "-q"],
                              stdout=subprocess.PIPE)
    ffmpeg = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "yuv4mpegpipe", "-i", "-", "-f", "rawvideo",
                             str(tmp_path / "ffmpeg.yuv")], stdin=decode.stdout, capture_output=True, timeout=300)
    decode.stdout.close()
    assert decode.wait(timeout=60) == 0 and ffmpeg.returncode == 0, ffmpeg.stderr
    assert (tmp_path / "ffmpeg.yuv").read_bytes() == y4m_planes(want)


def test_decode_into_a_pipe_closed_early_ends_quietly(encoded):
    """The reader stops after 1000 bytes and closes the pipe (`| head -c 1000`): the decoder ends with a
    non-zero status and says nothing (no traceback, no 'Exception ignored' at exit)."""
    decode = subprocess.Popen([*CLI, "decode", str(encoded), "-o", "-", "--mode", "warp"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = decode.stdout.read(1000)
    decode.stdout.close()
    err = decode.stderr.read()
    assert decode.wait(timeout=300) != 0 and err == b"" and head.startswith(b"YUV4MPEG2 W176 H144 ")


def test_pipe_errors_are_one_line(encoded, tmp_path):
    """A stream that fails to parse puts nothing on stdout; a terminal is refused as the y4m input of
    encode and as the output of decode, before any work."""
    import pty

    bad = tmp_path / "bad.tgv"
    bad.write_bytes(encoded.read_bytes()[:-3])
    proc = subprocess.run([*CLI, "decode", str(bad), "-o", "-", "--mode", "warp"], capture_output=True, timeout=300)
    assert proc.stdout == b"" and proc.returncode == 2
    assert_one_line_error(subprocess.CompletedProcess(proc.args, 2, "", proc.stderr.decode()))
    leader, follower = pty.openpty()
    try:
        procs = [subprocess.run([*CLI, "encode", "-", "-o", str(tmp_path / "x.tgv")], stdin=follower,
                                capture_output=True, text=True, timeout=300),
                 subprocess.run([*CLI, "decode", str(encoded), "-o", "-", "--mode", "warp"], stdout=follower,
                                stderr=subprocess.PIPE, text=True, timeout=300)]
    finally:
        os.close(leader)
        os.close(follower)
    for proc, says in zip(procs, ("<stdin> is a terminal", "standard output is a terminal")):
        assert_one_line_error(proc)
        assert proc.returncode == 2 and says in proc.stderr
    assert list(tmp_path.iterdir()) == [bad]
