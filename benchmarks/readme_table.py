"""The README's rate-distortion table, generated from ``benchmarks/results/codec_rd.json``.

One table per target bpp: a row per clip, a column per codec row (``--rows``), each cell
``JOD / VMAF / PSNR-Y / MS-SSIM``, and the mean over the clips. ``--write README.md`` replaces the
text between the ``<!-- rd-table:start -->`` and ``<!-- rd-table:end -->`` markers; without it the
tables are printed.

    python benchmarks/readme_table.py --write README.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

START, END = "<!-- rd-table:start -->", "<!-- rd-table:end -->"
ROWS = {"tgvc-interp": "tgvc-rt interp (default)", "tgvc-rife": "RIFE alone (tracks ignored)",
        "tgvc-warp": "tgvc-rt warp", "vvenc": "VVenC"}
METRICS = (("cvvdp_jod", "{:.2f}"), ("vmaf", "{:.1f}"), ("psnr_y", "{:.2f}"), ("msssim_y", "{:.3f}"))

def cell(values: list) -> str:
    return " / ".join("–" if v is None else fmt.format(v) for v, (_, fmt) in zip(values, METRICS))


def tables(records: list[dict], rows: dict[str, str]) -> str:
    ok = [r for r in records if "error" not in r]
    out = []
    for bpp in sorted({r["target_bpp"] for r in ok}):
        clips = sorted({r["clip"] for r in ok if r["target_bpp"] == bpp})
        codecs = [c for c in rows if any(r["codec"] == c and r["target_bpp"] == bpp for r in ok)]
        head = f"| clip, {bpp} bpp | " + " | ".join(rows[c] for c in codecs) + " |"
        lines = [head, "|---" * (len(codecs) + 1) + "|"]
        means = {c: [] for c in codecs}
        for clip in clips:
            cells = []
            for c in codecs:
                rec = next((r for r in ok if r["clip"] == clip and r["codec"] == c and r["target_bpp"] == bpp), None)
                vals = [rec.get(k) if rec else None for k, _ in METRICS]
                flag = " ⚑" if rec is not None and not rec.get("rate_reached", True) else ""
                means[c].append(vals)
                cells.append(cell(vals) + flag)
            lines.append(f"| {clip} | " + " | ".join(cells) + " |")
        mean_cells = []
        for c in codecs:
            arr = np.array([[np.nan if v is None else v for v in vals] for vals in means[c]], float)
            mean_cells.append(cell([None if np.isnan(m) else float(m) for m in np.nanmean(arr, axis=0)]))
        lines.append("| **mean** | " + " | ".join(mean_cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/results/codec_rd.json")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help="codec rows, in column order")
    ap.add_argument("--write", default=None, help="file whose marked section is replaced")
    args = ap.parse_args(argv)
    records = json.loads(Path(args.json).read_text())["records"]
    text = tables(records, {c: ROWS.get(c, c) for c in args.rows})
    if args.write is None:
        print(text)
        return 0
    path = Path(args.write)
    doc = path.read_text()
    if START not in doc or END not in doc:
        print(f"{path}: no {START} ... {END} section", file=sys.stderr)
        return 2
    head, rest = doc.split(START, 1)
    path.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
