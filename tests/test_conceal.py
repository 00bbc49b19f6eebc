"""Error resilience: a damaged group is a one-line error naming it, or with --conceal is decoded from its
keyframes alone while every other frame stays bit-identical to a clean decode."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tgvc_rt.bitstream import SectionType, iter_sections, read_bitstream, write_bitstream
from tgvc_rt.decoder.pipeline import DecodeOptions, DecodeStats, iter_decoded_frames
from conftest import y4m_frames
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


# Damaged keyframes. The sequence stream is coded with an intra keyframe every 2 keyframes, so that a clip of
# 24 frames has several segments: keyframes at frames 0, 7, 14, 18, 23 in segments [0], [7, 14], [18, 23].


def damage_keyframe(data: bytes, number: int) -> bytes:
    """``data`` with one byte flipped inside the payload of its ``number``-th KEYFRAME section."""
    sec = [s for s in iter_sections(data) if s.kind == SectionType.KEYFRAME][number]
    bad = bytearray(data)
    bad[sec.offset + sec.size - 5] ^= 0x5A  # the payload's last byte (the CRC follows)
    return bytes(bad)


@pytest.fixture(scope="module")
def keyframe_streams(tmp_path_factory, sample_clip):
    """Clean streams of a sequence keyframe codec (short segments) and of an image one, with their warp decodes."""
    from typer.testing import CliRunner

    from tgvc_rt import cli
    from tgvc_rt.codec.keyframe_sequence import KeyframeStreamOptions
    from tgvc_rt.encoder import keyframe_rate

    folder = tmp_path_factory.mktemp("conceal_keyframes")
    original = keyframe_rate.encode_keyframe_sequence
    out = {}
    for name, codec in (("seq", "av1-seq"), ("image", "av1")):
        path = folder / f"{name}.tgv"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(keyframe_rate, "encode_keyframe_sequence", lambda images, budget, codec, *_: original(
                images, budget, codec, KeyframeStreamOptions(intra_period=2)))
            result = CliRunner().invoke(cli.app, ["encode", str(sample_clip), "-o", str(path), "--frames", "24",
                                                  "--effort", "0", "--seed", "1", "--max-gap", "7", "-q",
                                                  "--keyframe-codec", codec])
        assert result.exit_code == 0, result.output
        reference = folder / f"{name}.y4m"
        proc = run("decode", path, "-o", reference, "--mode", "warp", "-q")
        assert proc.returncode == 0, proc.stderr
        out[name] = (path, reference)
    return folder, out


def conceal_keyframe(keyframe_streams, name: str, number: int, tmp_path):
    """Decode stream ``name`` with its ``number``-th keyframe damaged under --conceal: the parsed clean stream,
    the decoded frames, the clean decode's frames, the report and stderr."""
    _, streams = keyframe_streams
    clean, reference = streams[name]
    damaged = tmp_path / "damaged.tgv"
    damaged.write_bytes(damage_keyframe(clean.read_bytes(), number))
    out = tmp_path / "out.y4m"
    proc = run("decode", damaged, "-o", out, "--mode", "warp", "--conceal", "-q")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out.y4m.conceal.json").read_text())
    return (read_bitstream(clean.read_bytes()), y4m_frames(out.read_bytes()), y4m_frames(reference.read_bytes()),
            report, proc.stderr.splitlines())


def test_keyframe_stream_layout(keyframe_streams):
    """The tests below rely on this layout (segments [0], [7, 14], [18, 23] of the sequence stream)."""
    from tgvc_rt.codec.keyframe_sequence import is_intra_payload

    _, streams = keyframe_streams
    bs = read_bitstream(streams["seq"][0].read_bytes())
    assert [(k, is_intra_payload(p)) for k, p in sorted(bs.keyframes.items())] == [
        (0, True), (7, True), (14, False), (18, True), (23, False)]
    assert [(g.start, g.end) for g in bs.groups] == [(0, 7), (7, 14), (14, 18), (18, 23)]
    bs = read_bitstream(streams["image"][0].read_bytes())
    assert sorted(bs.keyframes) == [0, 7, 14, 18, 23]


@pytest.mark.parametrize("name", ["seq", "image"])
def test_damaged_keyframe_without_conceal_is_one_line_naming_it(keyframe_streams, name, tmp_path):
    _, streams = keyframe_streams
    damaged = tmp_path / "damaged.tgv"
    damaged.write_bytes(damage_keyframe(streams[name][0].read_bytes(), 2))
    proc = run("decode", damaged, "-o", tmp_path / "out.y4m", "--mode", "warp")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == ["tgvc-rt: error: corrupt .tgv stream: keyframe 2 (frame 14): "
                                        "section CRC mismatch"]
    assert list(tmp_path.iterdir()) == [damaged]
    with pytest.raises(BitstreamError, match=r"^corrupt .tgv stream: keyframe 2 \(frame 14\): section CRC mismatch$"):
        read_bitstream(damaged.read_bytes(), tolerate_damaged_groups=True)
    tolerant = read_bitstream(damaged.read_bytes(), tolerate_damaged_keyframes=True)
    assert tolerant.damaged_keyframes == {14: "section CRC mismatch"} and tolerant.keyframes[14] == b""
    with pytest.raises(BitstreamError, match=r"keyframe 2 \(frame 14\): section CRC"):
        next(iter_decoded_frames(tolerant, DecodeOptions(mode="warp")))


def test_damaged_sequence_keyframe_conceals_its_segment(keyframe_streams, tmp_path):
    """Keyframe 1 (frame 7, intra) damaged: it and the inter keyframe 2 (frame 14) that references it are
    replaced by keyframe 0; decoding resumes at the intra keyframe 3 (frame 18), bit-identically. The groups
    that end at either (frames 0..18) are interpolated from the replacements; frame 0 and frames 18.. are
    as in a clean decode."""
    bs, got, want, report, stderr = conceal_keyframe(keyframe_streams, "seq", 1, tmp_path)
    assert len(got) == len(want) == 24
    for i, (a, b) in enumerate(zip(want, got)):
        if not 0 < i < 18:
            assert a == b, f"frame {i} differs from the clean decode"
    assert got[7] == got[14] == want[0] != want[7]  # the concealed keyframes show keyframe 0
    lost = "keyframe 2 (frame 14): inter keyframe after damaged keyframe 1 (frame 7) in its segment"
    assert [(c["keyframe"], c["frame"], c["source"]) for c in report["concealed_keyframes"]] == [
        (1, 7, 0), (2, 14, 0)]
    assert [(c["group"], c["frames"], c["reason"], c["concealed_frames"]) for c in report["concealed"]] == [
        (0, [0, 7], "keyframe 1 (frame 7): section CRC mismatch", list(range(1, 8))),
        (1, [7, 14], f"keyframe 1 (frame 7): section CRC mismatch; {lost}", list(range(8, 15))),
        (2, [14, 18], lost, [15, 16, 17])]
    assert stderr == [f"tgvc-rt: warning: group {c['group']} (frames {c['frames'][0]}..{c['frames'][1]}) "
                      f"concealed: {c['reason']}" for c in report["concealed"]]
    assert report["groups"] == len(bs.groups) and report["frames"] == 24


def test_damaged_first_keyframe_is_concealed_from_the_next_good_one(keyframe_streams, tmp_path):
    _, got, want, report, stderr = conceal_keyframe(keyframe_streams, "seq", 0, tmp_path)
    assert got[0] == want[7] != want[0]
    assert got[7:] == want[7:]
    assert [(c["keyframe"], c["frame"], c["reason"], c["source"]) for c in report["concealed_keyframes"]] == [
        (0, 0, "section CRC mismatch", 7)]
    assert [(c["group"], c["concealed_frames"]) for c in report["concealed"]] == [(0, list(range(0, 7)))]
    assert len(stderr) == 1


def test_damaged_image_keyframe_conceals_it_alone(keyframe_streams, tmp_path):
    """Image keyframe codecs code independent pictures: only the damaged keyframe 2 (frame 14) is replaced."""
    _, got, want, report, _ = conceal_keyframe(keyframe_streams, "image", 2, tmp_path)
    for i, (a, b) in enumerate(zip(want, got)):
        if not 7 < i < 18:
            assert a == b, f"frame {i} differs from the clean decode"
    assert got[14] == want[7] != want[14]
    assert [(c["frame"], c["source"]) for c in report["concealed_keyframes"]] == [(14, 7)]
    assert [(c["group"], c["concealed_frames"]) for c in report["concealed"]] == [
        (1, list(range(8, 15))), (2, [15, 16, 17])]


def test_keyframe_payload_that_does_not_decode_is_named_or_concealed(keyframe_streams):
    """A keyframe whose section CRC holds but whose payload does not decode (API level)."""
    _, streams = keyframe_streams
    clean = streams["seq"][0].read_bytes()
    bs = read_bitstream(clean)
    bs.keyframes[14] = b"\x12\x00\x0a"  # an inter payload the decoder refuses
    data = write_bitstream(bs)
    with pytest.raises(BitstreamError, match=r"^corrupt .tgv stream: keyframe 2 \(frame 14\): keyframe stream"):
        list(iter_decoded_frames(data, DecodeOptions(mode="warp")))
    stats = DecodeStats()
    frames = list(iter_decoded_frames(data, DecodeOptions(mode="warp", conceal=True), stats))
    want = list(iter_decoded_frames(clean, DecodeOptions(mode="warp")))
    assert len(frames) == 24
    assert all((a == b).all() for a, b in zip(frames[:8] + frames[18:], want[:8] + want[18:]))
    assert [(c["frame"], c["source"]) for c in stats.concealed_keyframes] == [(14, 7)]
    assert "keyframe stream" in stats.concealed_keyframes[0]["reason"]
    assert [c["group"] for c in stats.concealed] == [1, 2]
