"""Rate-distortion table: tgvc-rt (interp / RIFE alone / warp / diffusion decoders) against x265 and VVenC at equal bpp.

For every clip and target bpp: our codec through the CLI (``tgvc-rt encode clip.y4m -o x.tgv --bpp B``,
then ``tgvc-rt decode x.tgv -o out.y4m`` once per decoder row of ``--modes``, each timed), and the classical baselines
(benchmarks/baselines.py, rate-searched to the same bpp), all measured with
tgvc_rt.metrics.evaluate. Writes <out>/codec_rd.json, codec_rd.md and codec_rd.png.

    python benchmarks/codec_rd.py                                   # full run (~25 min on 2 cores)
    python benchmarks/codec_rd.py --clips foreman_cif --frames 32   # quick look
    python benchmarks/codec_rd.py --reuse-baselines benchmarks/results/baselines.json
    python benchmarks/codec_rd.py --report-only benchmarks/results/codec_rd.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import (CODECS as BASELINE_CODECS, DEFAULT_CLIPS, BaselineOptions,  # noqa: E402
                       environment, list_clips, run_baseline, trim_y4m)
from tgvc_rt.io.y4m import read_y4m_planes  # noqa: E402
from harness import plot_curves  # noqa: E402
from tgvc_rt.metrics.cvvdp import CvvdpOptions  # noqa: E402
from tgvc_rt.metrics.evaluate import evaluate  # noqa: E402

OURS = "tgvc"
# decoder rows of our codec: name -> `tgvc-rt decode` flags ("rife": the interpolator with the tracks
# ignored, a reference row on the same stream)
MODE_ARGS = {"interp": ["--mode", "interp"], "warp": ["--mode", "warp"], "diffusion": ["--mode", "diffusion"],
             "rife": ["--mode", "interp", "--no-init-flow", "--flow-guidance", "0"]}
MODES = tuple(MODE_ARGS)
TIMEOUT_S = 1800.0  # give up one CLI call after this long


def cli_cmd() -> list[str]:
    """How to call our CLI: the same interpreter's ``-m tgvc_rt`` (works without the entry point)."""
    return [sys.executable, "-m", "tgvc_rt"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"`{' '.join(cmd[2:4])}` failed (rc {proc.returncode}): {last}")
    return time.perf_counter() - t0


def run_ours(clip_path: str, bpp: float, modes: list[str], workdir: str, metrics: tuple[str, ...],
             cvvdp_opts: CvvdpOptions, extra_encode: list[str] = (), extra_decode: list[str] = ()) -> list[dict]:
    """Encode once with our CLI, decode once per mode; one record per mode (errors recorded)."""
    clip = read_y4m_planes(clip_path)
    n = clip.num_frames
    tgv = os.path.join(workdir, "ours.tgv")
    base = {"clip": Path(clip_path).stem, "target_bpp": bpp, "notes": []}
    try:
        enc_s = _timed(cli_cmd() + ["encode", clip_path, "-o", tgv, "--bpp", repr(bpp), *extra_encode])
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return [{**base, "codec": f"{OURS}-{m}", "error": f"encode: {exc}"} for m in modes]
    records = []
    for mode in modes:
        rec = {**base, "codec": f"{OURS}-{mode}", "notes": [], "encode_s": enc_s, "encode_fps": n / enc_s,
               "command": f"tgvc-rt encode SRC.y4m -o x.tgv --bpp {bpp} {' '.join(extra_encode)}; "
                          f"tgvc-rt decode x.tgv -o out.y4m {' '.join(MODE_ARGS[mode])} "
                          f"{' '.join(extra_decode)}".strip()}
        out = os.path.join(workdir, f"ours_{mode}.y4m")
        try:
            dec_s = _timed(cli_cmd() + ["decode", tgv, "-o", out, *MODE_ARGS[mode], *extra_decode])
            rec.update(decode_s=dec_s, decode_fps=n / dec_s)
            res = evaluate(clip_path, out, tgv_path=tgv, metrics=metrics, cvvdp_opts=cvvdp_opts)
            rec.update({k: v for k, v in res.items() if k not in ("ref", "test", "bitstream", "notes")})
            rec["notes"] += res["notes"]
            if abs(res["bpp"] / bpp - 1) > 0.10:
                rec["notes"].append(f"achieved {res['bpp']:.5f} bpp is not within 10% of {bpp}")
        except (RuntimeError, subprocess.TimeoutExpired, Exception) as exc:  # keep the table going
            rec["error"] = f"decode/measure: {exc}"
        records.append(rec)
    return records


def _load_reuse(path: str | None) -> dict:
    """(clip, codec, bpp, frames) -> record, for the error-free records of an earlier JSON."""
    if not path:
        return {}
    recs = json.loads(Path(path).read_text())["records"]
    return {(r["clip"], r["codec"], r["target_bpp"], r["frames"]): r for r in recs if "error" not in r}


# ---------------------------------------------------------------------------------------------
# report: markdown table and RD plot

COLUMNS = ("clip", "codec", "target bpp", "achieved bpp", "PSNR-Y", "MS-SSIM", "VMAF", "JOD",
           "encode s", "decode s", "encode fps", "decode fps")


def _cell(rec: dict, key: str, spec: str) -> str:
    v = rec.get(key)
    return "–" if v is None else f"{v:{spec}}"


def markdown_table(records: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['clip']} | {r['codec']} | {r['target_bpp']} | error: "
                         f"{r['error'][:80]} |" + " |" * (len(COLUMNS) - 4))
            continue
        flag = "" if r.get("rate_reached", True) else " ⚑"
        lines.append("| " + " | ".join([
            r["clip"], r["codec"], f"{r['target_bpp']}", _cell(r, "bpp", ".5f") + flag,
            _cell(r, "psnr_y", ".2f"), _cell(r, "msssim_y", ".4f"), _cell(r, "vmaf", ".2f"),
            _cell(r, "cvvdp_jod", ".3f"), _cell(r, "encode_s", ".2f"), _cell(r, "decode_s", ".2f"),
            _cell(r, "encode_fps", ".1f"), _cell(r, "decode_fps", ".1f")]) + " |")
    return "\n".join(lines)


def write_markdown(result: dict, path: Path) -> None:
    recs = result["records"]
    flagged = [r for r in recs if not r.get("rate_reached", True)]
    text = [f"# Rate-distortion: {result['benchmark']}", "",
            f"Command: `{result.get('command', '?')}`  ",
            f"Environment: {json.dumps(result.get('environment', {}))}", "",
            markdown_table(recs), "",
            "PSNR-Y and MS-SSIM on the Y plane (MS-SSIM with fewer scales on QCIF, weights renormalised); "
            "VMAF v0.6.1 pooled mean; JOD = ColorVideoVDP (standard_4k display, 10 = identical). "
            "Baselines are rate-searched (x265 CRF, VVenC QP) to within ±10% of the target bpp."]
    if flagged:
        text.append("⚑ = the codec cannot reach the target rate even at its coarsest setting "
                    "(the lowest rate it reached is shown).")
    path.write_text("\n".join(text) + "\n")


def write_plot(records: list[dict], path: Path) -> None:
    """JOD vs bpp and VMAF vs bpp, a row of panels per clip, a line per codec row."""
    ok = [r for r in records if "error" not in r and r.get("bpp")]
    plot_curves(ok, path, x="bpp", ys=[("cvvdp_jod", "JOD (ColorVideoVDP)"), ("vmaf", "VMAF")], series="codec",
                panel="clip")


def write_outputs(result: dict, out_dir: Path, stem: str = "codec_rd") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, out_dir / f"{stem}.md")
    write_plot(result["records"], out_dir / f"{stem}.png")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips-dir", default=str(DEFAULT_CLIPS))
    ap.add_argument("--clips", nargs="*", help="clip names (stem) to run; default all")
    ap.add_argument("--bpp", nargs="+", type=float, default=[0.005, 0.01])
    ap.add_argument("--codecs", nargs="+", default=[OURS, *BASELINE_CODECS], choices=[OURS, *BASELINE_CODECS])
    ap.add_argument("--modes", nargs="+", default=["warp"], choices=MODES, help="our decoder modes")
    ap.add_argument("--metrics", nargs="+", default=["psnr", "msssim", "vmaf", "cvvdp"])
    ap.add_argument("--frames", type=int, default=None, help="use only the first N frames of each clip")
    ap.add_argument("--jobs", type=int, default=1, choices=[1], help="parallel jobs (only 1 for now)")
    ap.add_argument("--cvvdp-python", default=None, help="helper Python with pycvvdp "
                    "(default $TGVC_CVVDP_PYTHON)")
    ap.add_argument("--reuse-baselines", default=None,
                    help="baselines JSON whose records (same clip, codec, bpp, frames) are reused")
    ap.add_argument("--encode-args", default="", help="extra flags for `tgvc-rt encode` (one string)")
    ap.add_argument("--decode-args", default="", help="extra flags for `tgvc-rt decode` (one string)")
    ap.add_argument("--report-only", nargs="+", default=None,
                    help="re-render <stem>.md/png from one JSON, or merge several into codec_rd.* and stop")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--resume", action="store_true", help="reuse error-free records of <out>/codec_rd.json")
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    if args.report_only:
        parts = [json.loads(Path(p).read_text()) for p in args.report_only]
        result = parts[0] if len(parts) == 1 else {
            "benchmark": "codec_rd", "command": " | ".join(p.get("command", "?") for p in parts),
            "environment": parts[0].get("environment", {}), "merged_from": args.report_only,
            "records": [r for p in parts for r in p["records"]]}
        result["records"].sort(key=lambda r: (r["clip"], r["target_bpp"], r["codec"]))
        write_outputs(result, out_dir, Path(args.report_only[0]).stem if len(parts) == 1 else "codec_rd")
        print(markdown_table(result["records"]))
        return 0
    cv = CvvdpOptions(python=args.cvvdp_python)
    reuse = _load_reuse(args.reuse_baselines)
    if args.resume and (out_dir / "codec_rd.json").exists():  # earlier results of this run
        reuse.update(_load_reuse(str(out_dir / "codec_rd.json")))
    metrics = tuple(args.metrics)
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tgvc_rd_") as tmp:
        for clip in list_clips(args.clips_dir, args.clips):
            if args.frames:
                clip = trim_y4m(clip, os.path.join(tmp, Path(clip).name), args.frames)
            n = read_y4m_planes(clip).num_frames
            for bpp in args.bpp:
                new: list[dict] = []
                stem = Path(clip).stem
                todo = [m for m in args.modes if (stem, f"{OURS}-{m}", bpp, n) not in reuse]
                new += [dict(reuse[(stem, f"{OURS}-{m}", bpp, n)], reused=True)
                        for m in args.modes if m not in todo] if OURS in args.codecs else []
                if OURS in args.codecs and todo:
                    new += run_ours(clip, bpp, todo, tmp, metrics, cv,
                                    args.encode_args.split(), args.decode_args.split())
                for codec in (c for c in args.codecs if c in BASELINE_CODECS):
                    key = (Path(clip).stem, codec, bpp, n)
                    rec = dict(reuse[key]) if key in reuse else run_baseline(
                        codec, clip, bpp, tmp, metrics, BaselineOptions(), cv)
                    rec["reused"] = key in reuse
                    new.append(rec)
                for r in new:
                    print(f"{r['clip']:24s} {r['codec']:16s} {bpp:.4f} -> "
                          + (f"ERROR {r['error']}" if "error" in r else
                             f"{r.get('bpp', 0):.5f} bpp PSNR-Y {_cell(r, 'psnr_y', '.2f')} "
                             f"VMAF {_cell(r, 'vmaf', '.2f')} JOD {_cell(r, 'cvvdp_jod', '.3f')}"), flush=True)
                records += new
                # rewrite after every clip/bpp so a cut-off run still leaves a table
                write_outputs({"benchmark": "codec_rd", "command": " ".join(sys.argv),
                               "baseline_options": asdict(BaselineOptions()),
                               "environment": environment(), "records": records}, out_dir)
    print(markdown_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
