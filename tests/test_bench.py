"""`tgvc-rt bench` sweeps (tgvc_rt.bench) and the benchmark result schema (tgvc_rt.benchrecord)."""
import json

import pytest

from tgvc_rt import benchrecord
from tgvc_rt.bench import BenchPoint, parse_list, parse_sweep, run_bench
from tgvc_rt.errors import OptionError


def test_single_values_are_a_one_row_sweep():
    assert parse_sweep("0.005", "warp", None) == [BenchPoint(0.005, "warp", None)]


def test_lists_give_the_cross_product_in_the_order_given():
    points = parse_sweep("0.01, 0.003", "warp,interp", "2,1")
    assert [(p.bpp, p.mode, p.threads) for p in points] == [
        (0.01, "warp", 2), (0.01, "warp", 1), (0.01, "interp", 2), (0.01, "interp", 1),
        (0.003, "warp", 2), (0.003, "warp", 1), (0.003, "interp", 2), (0.003, "interp", 1)]


@pytest.mark.parametrize("bpp, mode, threads, says", [
    ("0.005,,0.01", "warp", None, "--bpp '0.005,,0.01': give one value or a comma-separated list"),
    ("", "warp", None, "--bpp '': give one value"),
    ("0.005,abc", "warp", None, "--bpp 'abc': not a number"),
    ("0.005,-1", "warp", None, "--bpp -1.0: must be within"),
    ("nan", "warp", None, "--bpp nan: must be within"),
    ("0.005", "warp,foo", None, "--mode 'foo': choose one of interp, warp, diffusion"),
    ("0.005", "warp,", None, "--mode 'warp,': give one value"),
    ("0.005", "warp,warp", None, "--mode 'warp,warp': warp is listed twice"),
    ("0.005", "warp", "1,0", "--threads 0: must be within 1..1024"),
    ("0.005", "warp", "1.5", "--threads '1.5': not a whole number"),
    ("0.01,0.010", "warp", None, "--bpp '0.01,0.010': 0.010 is listed twice"),
])
def test_bad_lists_are_one_line_errors(bpp, mode, threads, says):
    with pytest.raises(OptionError) as err:
        parse_sweep(bpp, mode, threads)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_parse_list_converts_and_checks():
    seen = []
    assert parse_list("--x", " 3 ,4", int, seen.append) == [3, 4] and seen == [3, 4]


def test_bench_defaults_match_the_api():
    """The bench's single-value defaults are the encoder's and the decoder's (one source of truth)."""
    import inspect

    from tgvc_rt import cli
    from tgvc_rt.decoder.pipeline import DecodeOptions
    from tgvc_rt.encoder.ratecontrol import RateOptions

    params = inspect.signature(cli.bench).parameters
    (point,) = parse_sweep(params["bpp"].default.default, params["mode"].default.default,
                           params["threads"].default.default, params["device"].default.default)
    assert point == BenchPoint(RateOptions().bpp, DecodeOptions().mode, None, "cpu")


def test_device_sweep_and_unavailable_devices(monkeypatch):
    from tgvc_rt.backends import select
    from tgvc_rt.backends.select import BackendProbe

    monkeypatch.setattr(select, "probe", lambda name: BackendProbe(name, name in ("cpu", "ort-cuda"),
                                                                    "" if name in ("cpu", "ort-cuda") else "absent"))
    points = parse_sweep("0.005", "interp", None, "cpu,cuda")
    assert [p.device for p in points] == ["cpu", "cuda"]
    with pytest.raises(OptionError, match="--device tensorrt: no backend"):
        parse_sweep("0.005", "interp", None, "cpu,tensorrt")
    assert parse_sweep("0.005", "warp", None, "tensorrt")[0].device == "tensorrt"  # warp runs no model
    with pytest.raises(OptionError, match="--device 'tpu'"):
        parse_sweep("0.005", "warp", None, "tpu")


def test_throughput_streams(sample_clip):
    result = run_bench(sample_clip, parse_sweep("0.02", "warp", None), frames=4, repeat=1, emit=lambda _: None,
                       streams=2)
    (rec,) = result["records"]
    assert rec["throughput"]["streams"] == 2 and rec["throughput"]["frames_per_s"] > 0
    assert result["settings"]["streams"] == 2 and "gpu" not in result


def test_tiny_sweep(sample_clip, tmp_path):
    """Two rates x two modes on four frames: a table row per combination, printed as it is measured,
    and a JSON result in the benchrecord schema (rewritten after every row)."""
    lines = []
    out = tmp_path / "bench.json"
    points = parse_sweep("0.01,0.02", "warp,interp", "1")
    result = run_bench(sample_clip, points, frames=4, repeat=1, json_out=out, command="tgvc-rt bench test",
                       emit=lines.append)
    assert lines[0].startswith("carphone_qcif_48f.y4m 176x144, 4 frames: 1 warm-up + 1 timed runs a row")
    head = [c.strip() for c in lines[1].strip("|").split("|")]
    assert head[:8] == ["bpp", "mode", "threads", "device", "bytes", "real bpp", "encode ms", "decode ms"]
    assert "interpolation ms" in head and "diffusion ms" not in head and head[-2:] == ["enc fps", "dec fps"]
    assert set(lines[2]) <= set("|-: ") and len(lines) == 3 + len(points)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("0.01", "warp", "1"), ("0.01", "interp", "1"),
                                                ("0.02", "warp", "1"), ("0.02", "interp", "1")]
    assert all(" ± " in r[6] and " ± " in r[7] and float(r[-1]) > 0 for r in rows)

    saved = benchrecord.load_result(out)
    assert saved == json.loads(json.dumps(result))
    assert saved["benchmark"] == "bench" and saved["command"] == "tgvc-rt bench test"
    assert saved["settings"]["frames"] == 4 and saved["settings"]["sweep"]["mode"] == ["warp", "interp"]
    assert set(saved["versions"]) >= {"python", "tgvc_rt", "numpy", "onnxruntime", "opencv", "constriction"}
    recs = saved["records"]
    assert [r["settings"] for r in recs] == [{"bpp": p.bpp, "mode": p.mode, "threads": p.threads, "device": "cpu"}
                                             for p in points]
    assert all(r["backend"].startswith("models on cpu") and r["loop"] == "host" for r in recs if r["settings"]["mode"] == "interp")
    for r in recs:
        assert {"encode", "decode", "decode.keyframes", "decode.interpolation"} <= set(r["stages"])
        assert r["stages"]["decode"]["n"] == 1 and r["bytes"] > 0 and r["decode_fps"] > 0
    assert recs[0]["stages"]["encode"] == recs[1]["stages"]["encode"]  # one encode per rate
    assert recs[0]["bytes"] < recs[2]["bytes"]


def test_stage_stats():
    st = benchrecord.stage_stats([3.0, 1.0, 2.0])
    assert st == {"mean_s": 2.0, "stdev_s": 1.0, "min_s": 1.0, "median_s": 2.0, "n": 3, "samples_s": [3.0, 1.0, 2.0]}
    assert benchrecord.stage_stats([0.5])["stdev_s"] == 0.0
    with pytest.raises(ValueError):
        benchrecord.stage_stats([])


def test_result_schema_round_trip_and_validation(tmp_path):
    result = benchrecord.new_result("unit", "python x.py", {"clip": "a"})
    result["records"].append({"settings": {"k": 1}, "stages": {"run": benchrecord.stage_stats([1.0, 2.0])},
                              "extra": 3})
    path = tmp_path / "r.json"
    benchrecord.write_result(path, result)
    assert benchrecord.load_result(path) == result
    assert result["date"].endswith("Z") and result["machine"]["cpus"] >= 1
    for broken, says in ((dict(result, schema="other"), "not a tgvc-rt-bench/1"),
                         (dict(result, records=[{"stages": {}}]), "record 0 needs"),
                         (dict(result, records=[{"settings": {}, "stages": {"run": {"mean_s": 1}}}]), "lacks"),
                         ({k: v for k, v in result.items() if k != "machine"}, "'machine'")):
        with pytest.raises(ValueError, match=says):
            benchrecord.validate(broken)


def test_git_commit(tmp_path):
    """None outside a checkout (an installed package); a short hash in this repository's checkout."""
    assert benchrecord.git_commit(tmp_path) is None
    commit = benchrecord.git_commit()
    assert commit is None or len(commit.split("-")[0]) >= 7


def test_harness_record_save_and_plot(tmp_path, monkeypatch):
    """benchmarks/harness.py: a script's result in the schema, and its per-stage plot (needs matplotlib,
    the `bench` extra)."""
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import harness

    monkeypatch.setattr(sys, "argv", [str(Path(harness.__file__)), "--runs", "2"])
    result = harness.script_result("unit", {"clip": "x"})
    assert result["command"] == "python benchmarks/harness.py --runs 2"
    stages = {"decode": [1.0, 1.2], "decode.tracks": [0.1]}
    result["records"] += [harness.record({"mode": "warp", "threads": None}, stages, bytes=3),
                          harness.record({"mode": "interp", "threads": 2}, {"decode": [2.0]})]
    path = tmp_path / "r.json"
    harness.save(path, result)
    assert harness.load_result(path)["records"][0]["stages"]["decode"]["mean_s"] == pytest.approx(1.1)
    pytest.importorskip("matplotlib")
    harness.plot_stages(result, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert harness.main(["plot", str(path), "--stages", "decode", "decode.tracks"]) == 0
    assert path.with_suffix(".png").is_file()
