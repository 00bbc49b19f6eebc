import io

import numpy as np
import pytest

from tgvc_rt.data import SAMPLE_CLIP


@pytest.fixture(scope="session")
def sample_clip():
    return SAMPLE_CLIP


def write_y4m(path, frames_yuv, width, height, chroma="420jpeg", fps="30:1"):
    """frames_yuv: list of (y, u, v) uint8 planes."""
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps} Ip A1:1 C{chroma}\n".encode())
        for planes in frames_yuv:
            f.write(b"FRAME\n")
            for p in planes:
                f.write(np.ascontiguousarray(p, np.uint8).tobytes())


@pytest.fixture
def y4m_writer():
    return write_y4m


def y4m_frames(data: bytes) -> list[bytes]:
    """The picture bytes of each frame of a y4m stream (header line and FRAME markers checked, taken out)."""
    from tgvc_rt.io.y4m import read_header

    f = io.BytesIO(data)
    size = read_header(f, "y4m").frame_size
    frames = []
    while marker := f.readline():
        assert marker == b"FRAME\n"
        frames.append(f.read(size))
    return frames
