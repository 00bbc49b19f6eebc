"""What the benchmark scripts share: the result schema and the plots.

Results follow the ``tgvc_rt.benchrecord`` schema ("tgvc-rt-bench/1", documented in that module; ``tgvc-rt
bench`` writes the same): the command, date, git commit, machine, package versions and settings of the
run, then its records, each with its own settings and per-stage timings (mean, stdev, min, median and
the samples, in seconds). ``script_result`` starts a result for the running script, ``record`` builds a
record from raw timings, ``save`` validates and writes it. Plots (matplotlib, the ``bench`` extra):
``plot_stages`` draws the per-stage timings of a result (mean with a stdev bar), ``plot_curves`` metric
curves such as rate-distortion (one panel per clip, one line per codec or setting).

    python benchmarks/harness.py plot bench.json -o bench.png                  # encode / decode per row
    python benchmarks/harness.py plot bench.json --stages decode.interpolation decode.keyframes
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tgvc_rt.benchrecord import SCHEMA, load_result, new_result, stage_stats, validate, write_result

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent

__all__ = ["SCHEMA", "load_result", "plot_curves", "plot_stages", "record", "save", "script_command",
           "script_result", "stage_stats", "validate"]


def script_command(argv: list[str] | None = None) -> str:
    """The command line of the running script, as run from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else HERE / "?"
    try:
        name = script.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        name = script.name
    return "python " + shlex.join([name, *argv[1:]])


def script_result(benchmark: str, settings: dict | None = None) -> dict:
    """A new result for the running script: its command line, the environment, no records yet."""
    return new_result(benchmark, script_command(), settings, commit_of=HERE)


def record(settings: dict, stages: dict | None = None, **extra) -> dict:
    """A record: its settings, its stages (each a list of timings in seconds, or ready statistics) and any
    other numbers."""
    out = {"settings": dict(settings), "stages": {}}
    for name, value in (stages or {}).items():
        out["stages"][name] = value if isinstance(value, dict) else stage_stats(list(value))
    out.update(extra)
    return out


def save(path: str | Path, result: dict) -> None:
    """Validate ``result`` and write it (atomically), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_result(path, result)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(settings: dict) -> str:
    return ", ".join(f"{k} {'default' if v is None else v}" for k, v in settings.items()) or "-"


def plot_stages(result: dict, path: str | Path, stages: list[str] | None = None, title: str | None = None) -> None:
    """Horizontal bars, one group per record: each stage's mean time with its standard deviation.
    ``stages`` defaults to the top-level ones (no dot in the name: ``encode``, ``decode``)."""
    validate(result)
    plt = _pyplot()
    records = result["records"]
    if stages is None:
        stages = list(dict.fromkeys(s for r in records for s in r["stages"] if "." not in s))
    height = 0.8 / max(len(stages), 1)
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * max(len(records), 1) * max(len(stages), 1) ** 0.5))
    for j, stage in enumerate(stages):
        ys, means, errs = [], [], []
        for i, r in enumerate(records):
            st = r["stages"].get(stage)
            if st is not None:
                ys.append(i + j * height)
                means.append(st["mean_s"])
                errs.append(st["stdev_s"])
        ax.barh(ys, means, height=height, xerr=errs, label=stage, capsize=2)
    ax.set_yticks([i + height * (len(stages) - 1) / 2 for i in range(len(records))])
    ax.set_yticklabels([_label(r["settings"]) for r in records], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (mean ± stdev)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or f"{result['benchmark']} ({result.get('commit') or 'no commit'})", fontsize=9)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_curves(records: list[dict], path: str | Path, x: str, ys: list[tuple[str, str]], series: str,
                panel: str, xlabel: str | None = None) -> None:
    """Line plots of flat records (dicts of numbers): a row of panels per value of ``panel`` (e.g. the clip),
    a column per ``(key, axis label)`` of ``ys``, a line per value of ``series`` (e.g. the codec), points
    sorted by ``x``. Records without ``x`` or a y are left out; nothing is written when none is left."""
    plt = _pyplot()
    ok = [r for r in records if r.get(x) is not None]
    panels = sorted({r[panel] for r in ok})
    names = sorted({r[series] for r in ok})
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), len(ys), figsize=(4.5 * len(ys), 2.6 * len(panels)), squeeze=False)
    markers = dict(zip(names, "osD^vP*X" * (len(names) // 8 + 1)))
    for i, name in enumerate(panels):
        for j, (key, label) in enumerate(ys):
            ax = axes[i, j]
            for s in names:
                pts = sorted((r[x], r[key]) for r in ok
                             if r[panel] == name and r[series] == s and r.get(key) is not None)
                if pts:
                    ax.plot(*zip(*pts), marker=markers[s], label=s)
            ax.set_title(f"{name}", fontsize=9)
            ax.set_xlabel(xlabel or x, fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    handles = {lab: h for ax in axes.ravel() for h, lab in zip(*ax.get_legend_handles_labels())}
    if handles:
        axes[0, 0].legend(handles.values(), handles.keys(), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plot", help="plot the per-stage timings of a result (PNG)")
    p.add_argument("result", type=Path)
    p.add_argument("-o", "--out", type=Path, help="PNG path (default: the result's, .png)")
    p.add_argument("--stages", nargs="+", help="stages to draw (default: the top-level ones)")
    args = ap.parse_args(argv)
    result = load_result(args.result)
    out = args.out or args.result.with_suffix(".png")
    plot_stages(result, out, args.stages)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
