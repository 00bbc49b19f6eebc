"""Error resilience: a damaged group is a one-line error naming it, or with --conceal is decoded from its
keyframes alone while every other frame stays bit-identical to a clean decode."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tgvc_rt.bitstream import SectionType, iter_sections, read_bitstream, write_bitstream
from tgvc_rt.decoder.pipeline import DecodeOptions, DecodeStats, iter_decoded_frames
from tgvc_rt.errors import BitstreamError

DAMAGED = 1  # the group whose section is damaged


def run(*args):
    return subprocess.run([sys.executable, "-m", "tgvc_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def streams(tmp_path_factory, sample_clip):
    """A clean stream of several groups, the same with one byte flipped inside group DAMAGED's payload, and
    the clean stream's warp decode."""
    folder = tmp_path_factory.mktemp("conceal")
    clean = folder / "clean.tgv"
    proc = run("encode", sample_clip, "-o", clean, "--frames", "24", "--effort", "0", "--seed", "1",
               "--max-gap", "7", "-q")
    assert proc.returncode == 0, proc.stderr
    data = clean.read_bytes()
    sec = [s for s in iter_sections(data) if s.kind == SectionType.GROUP][DAMAGED]
    bad = bytearray(data)
    bad[sec.offset + sec.size - 5] ^= 0x5A  # the payload's last byte (the CRC follows)
    damaged = folder / "damaged.tgv"
    damaged.write_bytes(bytes(bad))
    reference = folder / "clean.y4m"
    proc = run("decode", clean, "-o", reference, "--mode", "warp", "-q")
    assert proc.returncode == 0, proc.stderr
    return clean, damaged, reference


def y4m_frames(data: bytes) -> list[bytes]:
    from tgvc_rt.io.y4m import read_header

    f = io.BytesIO(data)
    size = read_header(f, "y4m").frame_size
    frames = []
    while marker := f.readline():
        assert marker == b"FRAME\n"
        frames.append(f.read(size))
    return frames


def test_damaged_group_without_conceal_is_one_line_naming_it(streams, tmp_path):
    _, damaged, _ = streams
    group = read_bitstream(damaged.read_bytes(), tolerate_damaged_groups=True).groups[DAMAGED]
    out = tmp_path / "out.y4m"
    proc = run("decode", damaged, "-o", out, "--mode", "warp")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"tgvc-rt: error: corrupt .tgv stream: group {DAMAGED} "
                                        f"(frames {group.start}..{group.end}): section CRC mismatch"]
    assert list(tmp_path.iterdir()) == []


def test_conceal_decodes_the_rest_bit_identically(streams, tmp_path):
    clean, damaged, reference = streams
    bs = read_bitstream(clean.read_bytes())
    assert len(bs.groups) >= 3
    group = bs.groups[DAMAGED]
    out = tmp_path / "out.y4m"
    proc = run("decode", damaged, "-o", out, "--mode", "warp", "--conceal", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"tgvc-rt: warning: group {DAMAGED} (frames {group.start}..{group.end}) "
                                        f"concealed: section CRC mismatch"]
    report = json.loads((tmp_path / "out.y4m.conceal.json").read_text())
    assert report["frames"] == 24 and report["groups"] == len(bs.groups)
    assert [(c["group"], c["frames"], c["reason"]) for c in report["concealed"]] == [
        (DAMAGED, [group.start, group.end], "section CRC mismatch")]
    assert report["concealed"][0]["concealed_frames"] == list(range(group.start + 1, group.end))
    want, got = y4m_frames(reference.read_bytes()), y4m_frames(out.read_bytes())
    assert len(got) == len(want) == 24
    for i, (a, b) in enumerate(zip(want, got)):
        if not group.start < i < group.end:
            assert a == b, f"frame {i} differs from the clean decode"
    # a clean stream under --conceal: the same frames, an empty report, nothing on stderr
    proc = run("decode", clean, "-o", tmp_path / "c.y4m", "--mode", "warp", "--conceal", "-q")
    assert proc.returncode == 0 and proc.stderr == ""
    assert (tmp_path / "c.y4m").read_bytes() == reference.read_bytes()
    assert json.loads((tmp_path / "c.y4m.conceal.json").read_text())["concealed"] == []


def test_conceal_to_stdout_writes_a_report_only_where_asked(streams, tmp_path):
    _, damaged, _ = streams
    proc = subprocess.run([sys.executable, "-m", "tgvc_rt", "decode", str(damaged), "-o", "-", "--mode", "warp",
                           "--conceal", "-q", "--conceal-report", str(tmp_path / "r.json")],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0 and len(y4m_frames(proc.stdout)) == 24
    assert len(proc.stderr.decode().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"] and not Path("-.conceal.json").exists()
    assert json.loads((tmp_path / "r.json").read_text())["concealed"][0]["group"] == DAMAGED
    proc = run("decode", damaged, "-o", tmp_path / "x.y4m", "--mode", "warp", "--conceal-report", tmp_path / "s.json")
    assert proc.returncode == 2 and proc.stderr.splitlines() == ["tgvc-rt: error: --conceal-report needs --conceal"]


def test_bad_track_payload_is_named_or_concealed(streams):
    """A group whose section CRC holds but whose track payload does not decode: without conceal an error naming
    the group, with conceal that group alone is concealed (API level)."""
    clean, _, _ = streams
    bs = read_bitstream(clean.read_bytes())
    bs.groups[DAMAGED].tracks = b"\x05"  # five tracks promised, nothing follows
    data = write_bitstream(bs)
    group = bs.groups[DAMAGED]
    with pytest.raises(BitstreamError, match=rf"group {DAMAGED} \(frames {group.start}\.\.{group.end}\): track"):
        list(iter_decoded_frames(data, DecodeOptions(mode="warp")))
    stats = DecodeStats()
    frames = list(iter_decoded_frames(data, DecodeOptions(mode="warp", conceal=True), stats))
    assert len(frames) == 24
    assert [(c["group"], c["frames"]) for c in stats.concealed] == [(DAMAGED, [group.start, group.end])]
    assert "track payload" in stats.concealed[0]["reason"]


def test_decode_parses_the_stream_once(streams, tmp_path, monkeypatch):
    """The CLI's decode parses the stream once and hands the parsed stream on; the decoder decodes a parsed
    stream as it does the bytes, and refuses a tolerant parse with a damaged group unless it conceals."""
    from typer.testing import CliRunner

    import tgvc_rt.bitstream
    import tgvc_rt.decoder.pipeline
    from tgvc_rt import cli

    clean, damaged, reference = streams
    parsed = []

    def counting(data, *args, **kwargs):
        parsed.append(len(data))
        return read_bitstream(data, *args, **kwargs)

    monkeypatch.setattr(tgvc_rt.bitstream, "read_bitstream", counting)
    monkeypatch.setattr(tgvc_rt.decoder.pipeline, "read_bitstream", counting)
    out = tmp_path / "a.y4m"
    result = CliRunner().invoke(cli.app, ["decode", str(clean), "-o", str(out), "--mode", "warp", "-q"])
    assert result.exit_code == 0, result.output
    assert parsed == [clean.stat().st_size]
    assert out.read_bytes() == reference.read_bytes()

    tolerant = read_bitstream(damaged.read_bytes(), tolerate_damaged_groups=True)
    group = tolerant.groups[DAMAGED]
    with pytest.raises(BitstreamError, match=rf"group {DAMAGED} \(frames {group.start}\.\.{group.end}\): section CRC"):
        next(iter_decoded_frames(tolerant, DecodeOptions(mode="warp")))
    stats = DecodeStats()
    assert len(list(iter_decoded_frames(tolerant, DecodeOptions(mode="warp", conceal=True), stats))) == 24
    assert [c["group"] for c in stats.concealed] == [DAMAGED]
