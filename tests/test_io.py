import io
import os
import stat

import numpy as np
import pytest

from tgvc_rt.errors import InputError, OptionError
from tgvc_rt.io import open_video_writer, parse_size, read_video, rgb_to_i420
from tgvc_rt.types import VideoMeta


def random_frames(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    import cv2

    return np.stack([np.roll(cv2.resize(base, (w, h)), i, axis=1) for i in range(n)])


@pytest.mark.parametrize("w,h", [(64, 48), (33, 17)])
def test_y4m_round_trip_any_size(tmp_path, w, h):
    frames = random_frames(3, h, w)
    with open_video_writer(tmp_path / "a.y4m", VideoMeta(w, h, 25, 1)) as wr:
        for f in frames:
            wr.write(f)
    v = read_video(tmp_path / "a.y4m")
    assert v.frames.shape == (3, h, w, 3) and v.meta.fps_num == 25
    luma_in = np.stack([rgb_to_i420(f)[0] for f in frames]).astype(int)
    luma_out = np.stack([rgb_to_i420(f)[0] for f in v.frames]).astype(int)
    assert np.abs(luma_out - luma_in).mean() < 2  # 4:2:0 chroma subsampling loss only


def test_reads_444_and_422(tmp_path, y4m_writer):
    y = np.full((16, 32), 120, np.uint8)
    y4m_writer(tmp_path / "a.y4m", [(y, np.full((16, 32), 128), np.full((16, 32), 128))], 32, 16, "444")
    y4m_writer(tmp_path / "b.y4m", [(y, np.full((16, 16), 128), np.full((16, 16), 128))], 32, 16, "422")
    for name in ("a.y4m", "b.y4m"):
        v = read_video(tmp_path / name)
        assert v.frames.shape == (1, 16, 32, 3)
        assert np.all(np.abs(v.frames.astype(int) - 121) <= 2)  # grey stays grey


def test_refuses_10_bit(tmp_path):
    (tmp_path / "a.y4m").write_bytes(b"YUV4MPEG2 W16 H16 F30:1 C420p10\nFRAME\n" + bytes(16 * 16 * 3))
    with pytest.raises(InputError, match="10-bit|not supported"):
        read_video(tmp_path / "a.y4m")


def test_truncated_and_bad_files(tmp_path, y4m_writer):
    y4m_writer(tmp_path / "a.y4m", [(np.zeros((16, 16)), np.zeros((8, 8)), np.zeros((8, 8)))] * 2, 16, 16)
    data = (tmp_path / "a.y4m").read_bytes()
    (tmp_path / "t.y4m").write_bytes(data[:-10])
    with pytest.raises(InputError, match="truncated"):
        read_video(tmp_path / "t.y4m")
    (tmp_path / "g.y4m").write_bytes(b"garbage")
    with pytest.raises(InputError):
        read_video(tmp_path / "g.y4m")
    with pytest.raises(InputError, match="no such file"):
        read_video(tmp_path / "missing.y4m")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unsupported"):
        read_video(tmp_path / "x.txt")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError):
        read_video(tmp_path / "bad.mp4")


def test_y4m_planes_are_the_files_own(sample_clip, tmp_path, y4m_writer):
    """read_y4m_planes gives a 4:2:0 file's planes as stored (the RGB reader's input), first N frames; other
    layouts, truncated and empty files are InputErrors."""
    from tgvc_rt.io.y4m import read_header, read_y4m_planes

    clip = read_y4m_planes(sample_clip, max_frames=3)
    with open(sample_clip, "rb") as f:
        size = read_header(f, sample_clip).frame_size
        frames = [f.readline() and f.read(size) for _ in range(3)]
    assert clip.num_frames == 3 and clip.size == (176, 144) and clip.fps == 30.0
    for i, raw in enumerate(frames):
        assert raw == clip.y[i].tobytes() + clip.u[i].tobytes() + clip.v[i].tobytes()
    y4m_writer(tmp_path / "a.y4m", [(np.zeros((16, 16)),) * 3], 16, 16, "444")
    with pytest.raises(InputError, match="C444 is not 8-bit 4:2:0"):
        read_y4m_planes(tmp_path / "a.y4m")
    y4m_writer(tmp_path / "empty.y4m", [], 16, 16)
    with pytest.raises(InputError, match="no frames"):
        read_y4m_planes(tmp_path / "empty.y4m")
    (tmp_path / "cut.y4m").write_bytes(sample_clip.read_bytes()[:100_000])
    with pytest.raises(InputError, match="truncated"):
        read_y4m_planes(tmp_path / "cut.y4m")


class Trickle(io.RawIOBase):
    """A raw binary stream that returns at most ``chunk`` bytes a read, like a pipe fed slowly."""

    def __init__(self, data: bytes, chunk: int):
        self.data, self.pos, self.chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.chunk, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_y4m_from_a_file_object(sample_clip):
    """The one y4m reader takes an open binary stream (stdin, a pipe) as well as a path: short reads are
    completed, the stream is read in order and left where the last frame ends, errors name the stream."""
    from tgvc_rt.io.y4m import iter_y4m

    data = sample_clip.read_bytes()
    want = [f for _, f in iter_y4m(sample_clip, 4)]
    stream = Trickle(data, 1000)
    got = [f for _, f in iter_y4m(stream, 4)]
    assert len(got) == 4 and all(np.array_equal(a, b) for a, b in zip(want, got))
    assert not stream.closed and data[stream.pos:].startswith(b"FRAME")
    cut = io.BytesIO(data[:len(data) // 2])
    cut.name = "<stdin>"
    with pytest.raises(InputError, match="<stdin>: truncated y4m"):
        list(iter_y4m(cut))


def test_frames_and_resize(sample_clip):
    v = read_video(sample_clip, max_frames=5, resize=(96, 64))
    assert v.frames.shape == (5, 64, 96, 3)
    with pytest.raises(OptionError):
        parse_size("abc")
    with pytest.raises(OptionError):
        read_video(sample_clip, max_frames=0)


def test_mp4_round_trip(tmp_path):
    frames = random_frames(4, 48, 64)
    with open_video_writer(tmp_path / "a.mp4", VideoMeta(64, 48, 30, 1)) as wr:
        for f in frames:
            wr.write(f)
    v = read_video(tmp_path / "a.mp4")
    assert v.frames.shape == (4, 48, 64, 3)
    assert np.abs(v.frames.astype(int) - frames).mean() < 12


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with open_video_writer(tmp_path / "out.y4m", VideoMeta(16, 16)) as wr:
            wr.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_new_output_honours_the_umask(tmp_path):
    from tgvc_rt.io import write_bytes_atomic

    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "a.tgv", b"x")
        with open_video_writer(tmp_path / "a.y4m", VideoMeta(16, 16)) as wr:
            wr.write(np.zeros((16, 16, 3), np.uint8))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.tgv").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "a.y4m").stat().st_mode) == 0o640


def test_replaced_output_keeps_its_mode(tmp_path):
    from tgvc_rt.io import write_bytes_atomic

    target = tmp_path / "a.tgv"
    target.write_bytes(b"old")
    target.chmod(0o604)
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o604
