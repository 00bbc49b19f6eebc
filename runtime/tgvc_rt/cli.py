"""`tgvc-rt` command line: parses flags and calls the stages; no codec logic lives here."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from .errors import OptionError, TgvcError
from .signals import Interrupted, catch_stop_signals, ignore_stop_signals, raise_if_stopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Trajectory-guided generative video coding at ultra-low bitrates.")

Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        typer.echo(text, err=True)


def _check_range(name: str, value, lo, hi) -> None:
    if value is not None and not (lo <= value <= hi):
        raise OptionError(f"{name} {value}: must be within {lo}..{hi}")


def _check_mode(mode: str) -> None:
    """--mode names a decoder mode (checked before any work)."""
    from .decoder.pipeline import MODES

    if mode not in MODES:
        raise OptionError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")


def package_version() -> str:
    """The installed distribution's version, else the package's own ``__version__`` (a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tgvc-rt")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def _print_version(value: bool) -> None:
    """``--version``: print ``tgvc-rt <version>`` and exit 0 before any command runs."""
    if value:
        typer.echo(f"tgvc-rt {package_version()}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Options that come before the command."""


@app.command()
def encode(
    input: Path = typer.Argument(..., help="Input video (.y4m, .mp4, .mkv, .webm, .mov, .avi; - reads y4m "
                                           "from stdin)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .tgv stream."),
    bpp: float = typer.Option(0.005, help="Target bits per pixel."),
    kbps: Optional[float] = typer.Option(None, help="Target kbit/s (overrides --bpp)."),
    frames: Optional[int] = typer.Option(None, help="Encode only the first N frames."),
    resize: Optional[str] = typer.Option(None, help="Resize to WIDTHxHEIGHT before coding."),
    max_gap: int = typer.Option(15, help="Largest keyframe distance (16-frame decoding window: 15)."),
    tracker: str = typer.Option("dis", help="Point tracker: dis, lk or onnx."),
    grid_step: int = typer.Option(8, help="Spacing of the tracking query grid in pixels."),
    track_share: float = typer.Option(0.05, help="Largest share of the budget for trajectories."),
    track_step: float = typer.Option(0.5, help="Trajectory quantisation step in pixels."),
    keyframe_codec: str = typer.Option("av1-seq", help="av1-seq, hevc-seq (keyframes as one P-frame stream), "
                                                       "or av1, hevc, avif (independent intra pictures)."),
    seed: Optional[int] = typer.Option(None, help="Decoder noise seed stored in the stream (derived from the "
                                                  "coded content if unset)."),
    effort: int = typer.Option(1, help="0: no model in the loop, faster keyframe coding (fastest); 1: keyframe "
                                       "coding at SVT-AV1 preset 2 and keyframe plans tried with the "
                                       "decoder's interpolator; 2: it also drops the tracks it predicts by itself."),
    models: str = typer.Option("default", help="Model set the stream is made for (its interpolator runs in "
                                               "the loop at --effort 1 and 2)."),
    chunk_seconds: float = typer.Option(10.0, help="Encode in chunks of about this many seconds: memory of one "
                                                   "chunk, a budget and an intra keyframe per chunk (0: all at once)."),
    quiet: bool = Quiet,
) -> None:
    """Encode a video into keyframes + trajectories (.tgv)."""
    from .codec.keyframe_formats import check_codec
    from .encoder.interp_probe import check_effort
    from .encoder.pipeline import EncodeOptions, encode_frames
    from .models import model_set_hash
    from .encoder.ratecontrol import RateOptions
    from .io import check_output_folder, open_frames, parse_size, write_bytes_atomic
    from .progress import progress

    _check_range("--max-gap", max_gap, 1, 1000)
    _check_range("--grid-step", grid_step, 2, 256)
    _check_range("--track-step", track_step, 1 / 16, 8)
    _check_range("--seed", seed, 0, (1 << 32) - 1)
    _check_range("--chunk-seconds", chunk_seconds, 0.0, 86400.0)
    if tracker not in ("dis", "lk", "onnx"):
        raise OptionError(f"--tracker {tracker!r}: choose dis, lk or onnx")
    if output.suffix.lower() != ".tgv":
        raise OptionError(f"{output}: the output of encode must end in .tgv")
    check_codec(keyframe_codec)
    check_effort(effort)
    model_hash = model_set_hash(models)  # a set that cannot be found is an error before the work
    check_output_folder(output)
    meta, source, total = open_frames(input, max_frames=frames, resize=parse_size(resize))
    defaults = EncodeOptions()
    options = replace(defaults, rate=RateOptions(bpp=bpp, kbps=kbps, track_share=track_share), seed=seed,
                      keyframe_codec=keyframe_codec, effort=effort, model_set=models, model_set_hash=model_hash,
                      chunk_seconds=chunk_seconds,
                      keyframes=replace(defaults.keyframes, max_gap=max_gap,
                                        min_gap=min(defaults.keyframes.min_gap, max_gap)),
                      tracking=replace(defaults.tracking, method=tracker, grid_step=grid_step),
                      trajectories=replace(defaults.trajectories, step=track_step))
    t0 = time.perf_counter()
    with progress("encoding", total, quiet) as advance:
        result = encode_frames(source, meta, options, advance)
    write_bytes_atomic(output, result.data)
    dt = time.perf_counter() - t0
    if result.bpp() > 1.1 * result.target_bpp:
        _say(quiet, f"note: {result.target_bpp:.5f} bpp is below what {len(result.keyframes)} keyframes can be "
                    f"coded in at the coarsest setting; the stream is larger than asked")
    _say(quiet, f"{output}: {len(result.data)} bytes, {result.bpp():.5f} bpp (target {result.target_bpp:.5f}), "
                f"{len(result.keyframes)} keyframes {result.keyframe_bytes} B, {result.num_tracks} tracks "
                f"{result.track_bytes} B, {result.frames / dt:.1f} frames/s"
                + (f", {result.chunks} chunks" if result.chunks > 1 else ""))


@app.command()
def decode(
    input: Path = typer.Argument(..., help="Input .tgv stream."),
    output: Path = typer.Option(..., "-o", "--output", help="Output video (.y4m, .mp4, .mkv, .webm; - writes "
                                                            "y4m to stdout, frame by frame)."),
    mode: str = typer.Option("interp", help="interp (pretrained interpolator steered by the tracks), warp (fast, "
                                             "classical, no model) or diffusion (guided latent diffusion on interp)."),
    init_flow: bool = typer.Option(True, help="Interp: start the interpolator from the tracks' dense flows."),
    flow_guidance: float = typer.Option(1.0, help="Interp: strength of the per-block pull of the flow onto the "
                                                  "tracks (0 = off)."),
    steps: int = typer.Option(1, help="Diffusion: guided denoising steps (UNet calls per window)."),
    strength: float = typer.Option(0.2, help="Diffusion: warm-start strength (1 = from pure noise)."),
    guidance_scale: float = typer.Option(30.0, help="Diffusion: trajectory guidance scale s."),
    device: str = typer.Option("cpu", help="Models: cpu, cuda, tensorrt or auto."),
    threads: Optional[int] = typer.Option(None, help="Models: CPU threads for ONNX Runtime."),
    guidance_impl: str = typer.Option("auto", help="Diffusion: guidance on the CPU: auto, native (compiled) or numpy."),
    diffusion_output: str = typer.Option("residual", help="Diffusion: residual (warp + decoded latent change) "
                                                          "or latent (decoded latents alone)."),
    residual_blur: float = typer.Option(4.0, help="Diffusion: Gaussian sigma (px) for the residual change "
                                                  "(0 = off)."),
    models: Optional[str] = typer.Option(None, help="Model set name or folder (the bundled 'default' "
                                                    "if not given)."),
    conceal: bool = typer.Option(False, help="Decode a group whose section is damaged from its two keyframes, "
                                             "and replace a damaged keyframe by its neighbour, instead of "
                                             "failing; each concealed group gets a line on stderr (also with "
                                             "-q) and an entry in the JSON report."),
    conceal_report: Optional[Path] = typer.Option(None, help="With --conceal: the JSON report's path (default "
                                                             "OUTPUT.conceal.json; with -o - none unless given)."),
    quiet: bool = Quiet,
) -> None:
    """Decode a .tgv stream into a video."""
    from .bitstream import read_bitstream
    from .codec.stream import read_stream_file, stream_meta
    from .decoder.pipeline import MODEL_MODES, DecodeOptions, DecodeStats, iter_decoded_frames
    from .io import open_video_writer
    from .models import resolve_model_set
    from .progress import progress

    _check_mode(mode)
    _check_range("--steps", steps, 1, 1000)
    _check_range("--strength", strength, 0.0, 1.0)
    _check_range("--guidance-scale", guidance_scale, 0.0, 1e6)
    _check_range("--threads", threads, 1, 1024)
    _check_range("--residual-blur", residual_blur, 0.0, 1000.0)
    _check_range("--flow-guidance", flow_guidance, 0.0, 100.0)
    report = _conceal_report_path(output, conceal, conceal_report)
    options = DecodeOptions(mode=mode, model_set=models or "default", device=device, threads=threads,
                            conceal=conceal)
    options.interp = replace(options.interp, init_flow=init_flow, guidance=flow_guidance)
    if models is not None or mode in MODEL_MODES:
        resolve_model_set(options.model_set)  # a set that cannot be found is an error even where unused
    from .backends.select import DEVICES, choose_backend

    if mode in MODEL_MODES:
        choose_backend(device)  # a device no backend can serve is an error before the work
    elif device not in DEVICES:
        raise OptionError(f"--device {device!r}: choose one of {', '.join(DEVICES)}")
    if mode == "diffusion":
        from .decoder.diffusion import DiffusionOptions

        options.diffusion = DiffusionOptions(steps=steps, strength=strength, guidance_scale=guidance_scale,
                                             threads=threads, guidance_impl=guidance_impl,
                                             output=diffusion_output, residual_blur=residual_blur)
        options.diffusion.validate()
    bs = read_bitstream(read_stream_file(input), tolerate_damaged_groups=conceal, tolerate_damaged_keyframes=conceal)
    stats = DecodeStats()
    t0 = time.perf_counter()
    with progress("decoding", bs.header.num_frames, quiet) as advance, \
            open_video_writer(output, stream_meta(bs)) as writer:
        for frame in iter_decoded_frames(bs, options, stats):
            writer.write(frame)
            advance(1)
    dt = time.perf_counter() - t0
    for entry in stats.concealed:
        first, last = entry["frames"]
        typer.echo(f"tgvc-rt: warning: group {entry['group']} (frames {first}..{last}) concealed: "
                   f"{entry['reason']}", err=True)
    if report is not None:
        _write_conceal_report(report, input, output, len(bs.groups), stats)
    if stats.backend:
        _say(quiet, f"{stats.backend}; interpolation loop: {stats.loop}")
    _say(quiet, f"{output}: {stats.frames} frames, {mode}, {stats.frames / dt:.1f} frames/s")


def _conceal_report_path(output: Path, conceal: bool, given: Optional[Path]) -> Optional[Path]:
    """Where decode --conceal writes its JSON report (checked before the work): --conceal-report, else
    OUTPUT.conceal.json beside the output; none for -o - without --conceal-report."""
    from .io import check_output_folder, is_stdio

    if given is not None and not conceal:
        raise OptionError("--conceal-report needs --conceal")
    if given is not None and is_stdio(given):
        raise OptionError("--conceal-report: give a file, not -")
    if not conceal or (given is None and is_stdio(output)):
        return None
    path = given if given is not None else output.with_name(output.name + ".conceal.json")
    check_output_folder(path)
    return path


def _write_conceal_report(path: Path, input: Path, output: Path, groups: int, stats) -> None:
    """The JSON report of decode --conceal, written atomically: which groups and frames were concealed, and why."""
    import json

    from .io import write_bytes_atomic

    report = {"input": str(input), "output": str(output), "frames": stats.frames, "groups": groups,
              "concealed": stats.concealed, "concealed_keyframes": stats.concealed_keyframes}
    write_bytes_atomic(path, (json.dumps(report, indent=2) + "\n").encode())


@app.command()
def info(
    input: Optional[Path] = typer.Argument(None, help="A .tgv stream (omit with --models)."),
    models: Optional[str] = typer.Option(None, help="Describe a model set (name or folder) instead."),
    backends: bool = typer.Option(False, "--backends", help="Which model backends can run here, and why not; "
                                                            "what each --device resolves to."),
) -> None:
    """Print a stream's structure and bit split, a model set, or the backends this machine can run."""
    from .info import describe_models, describe_stream

    if backends:
        from .backends.select import describe_backends

        typer.echo(describe_backends())
    elif models is not None:
        typer.echo(describe_models(models))
    elif input is not None:
        typer.echo(describe_stream(input))
    else:
        raise OptionError("give a .tgv file, --models NAME or --backends")


@app.command("eval")
def eval_(
    reference: Path = typer.Argument(..., help="Reference video (.y4m)."),
    test: Path = typer.Argument(..., help="Decoded video (.y4m)."),
    tgv: Optional[Path] = typer.Option(None, help="The .tgv stream, to report bpp."),
    metrics: str = typer.Option("psnr,msssim,vmaf,cvvdp", help="Comma-separated metrics."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
) -> None:
    """Measure PSNR-Y, MS-SSIM, VMAF and ColorVideoVDP (JOD) of a decoded video."""
    import json

    from .io import check_output_folder, write_bytes_atomic
    from .metrics.evaluate import evaluate, format_report

    if json_out is not None:
        check_output_folder(json_out)
    result = evaluate(reference, test, tgv_path=tgv, metrics=tuple(m.strip() for m in metrics.split(",") if m))
    typer.echo(format_report(result))
    if json_out is not None:
        write_bytes_atomic(json_out, json.dumps(result, indent=2).encode())


@app.command()
def export(
    set_name: str = typer.Option("default", "--set", help="Model set to regenerate from checkpoints."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the package's model folder)."),
) -> None:
    """Regenerate a model set's ONNX files from checkpoints (needs the `export` extra: torch)."""
    from .exporting import run_export

    run_export(set_name, out)


@app.command("build-engines")
def build_engines(
    models: str = typer.Option("default", help="Model set name or folder."),
    precision: str = typer.Option("fp16", help="fp16 or fp32."),
    width: int = typer.Option(352, help="Largest frame width the engines must take."),
    height: int = typer.Option(288, help="Largest frame height the engines must take."),
    cache: Optional[Path] = typer.Option(None, help="Engine cache folder (default ~/.cache/tgvc-rt/engines)."),
) -> None:
    """Build TensorRT engines for a model set (needs the `trt` extra)."""
    from .backends.trt import build_engines as build

    for path in build(models, precision=precision, max_size=(width, height), cache_dir=cache):
        typer.echo(str(path))


@app.command()
def bench(
    input: Path = typer.Argument(..., help="Clip to measure on (.y4m)."),
    bpp: str = typer.Option("0.005", help="Target bits per pixel; a comma-separated list sweeps them."),
    mode: str = typer.Option("interp", help="Decoder mode(s): interp (the decode default), warp, diffusion; "
                                              "comma-separated to sweep."),
    threads: Optional[str] = typer.Option(None, help="Models: CPU threads for ONNX Runtime; comma-separated to "
                                                     "sweep (default: its own)."),
    device: str = typer.Option("cpu", help="Models: cpu, cuda, tensorrt or auto; comma-separated to sweep."),
    streams: int = typer.Option(1, help="Also measure throughput: this many decodes at once (total frames/s)."),
    frames: Optional[int] = typer.Option(None, help="Only the first N frames."),
    repeat: int = typer.Option(3, help="Timed repetitions after one warm-up."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON (benchrecord schema)."),
) -> None:
    """Time encode and decode stages over the cross product of the list options (one table row each:
    mean ± stdev after a warm-up, frames/s)."""
    import shlex

    from .bench import parse_sweep, run_bench
    from .io import check_output_folder

    points = parse_sweep(bpp, mode, threads, device)
    _check_range("--repeat", repeat, 1, 1000)
    _check_range("--streams", streams, 1, 256)
    _check_range("--frames", frames, 1, 10_000_000)
    if json_out is not None:
        check_output_folder(json_out)
    run_bench(input, points, frames=frames, repeat=repeat, json_out=json_out,
              command=shlex.join(["tgvc-rt", *sys.argv[1:]]), emit=typer.echo, streams=streams)


def _interrupted(status: int) -> int:
    typer.echo("tgvc-rt: interrupted", err=True)
    return status


def _report(e: Exception) -> int:
    """Print one line on stderr for an error that ended the run; its exit status."""
    if isinstance(e, TgvcError):
        typer.echo(f"tgvc-rt: error: {e}", err=True)
        return 2
    if isinstance(e, OSError):
        where = f" ({e.filename})" if e.filename else ""
        typer.echo(f"tgvc-rt: error: {e.strerror or e}{where}", err=True)
        return 2
    if isinstance(e, typer.Abort):
        return 130
    if hasattr(e, "exit_code"):  # click's Exit and usage errors (typer may vendor click)
        if hasattr(e, "show"):
            e.show()
        return e.exit_code
    if os.environ.get("TGVC_DEBUG"):
        raise e
    typer.echo(f"tgvc-rt: internal error: {type(e).__name__}: {e} (set TGVC_DEBUG=1 for details)", err=True)
    return 1


def _run() -> int:
    """Run the command line; the exit status (user errors print one line on stderr)."""
    try:
        status = app(standalone_mode=False)
    except KeyboardInterrupt:
        return _interrupted(130)
    except Exception as e:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        raise_if_stopped()  # an error that a stop signal caused is reported as the interruption
        return _report(e)
    if status == 130:  # typer turns a KeyboardInterrupt into the return value 130
        return _interrupted(130)
    return status if isinstance(status, int) else 0


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit; SIGINT/SIGTERM end the run
    with ``tgvc-rt: interrupted`` and status 130/143, leaving no output behind."""
    catch_stop_signals()
    try:
        status = _run()
        ignore_stop_signals()
        raise_if_stopped()  # a stop signal whose exception a library swallowed
    except Interrupted as e:
        status = _interrupted(e.status)
    sys.exit(status)
