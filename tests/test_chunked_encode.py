"""Encoding in chunks (encoder/pipeline.py): bounded memory for long inputs, one budget and one intra keyframe
per chunk, and the same stream as a one-piece encode for clips no longer than a chunk and a half."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tgvc_rt.bitstream import read_bitstream
from tgvc_rt.codec.keyframe_sequence import is_intra_payload
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames
from tgvc_rt.encoder.pipeline import EncodeOptions, _chunks, encode_frames, encode_video
from tgvc_rt.io import read_video


def test_chunks_share_their_boundary_frame_and_absorb_a_short_tail():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(30)]
    got = [(chunk[:, 0, 0, 0].tolist(), offset) for chunk, offset in _chunks(iter(frames), 10)]
    assert [offset for _, offset in got] == [0, 9, 18]
    assert got[0][0] == list(range(0, 10)) and got[1][0] == list(range(9, 19))
    assert got[2][0] == list(range(18, 30))  # 12 frames left: under 1.5 chunks, one last chunk
    assert [offset for _, offset in _chunks(iter(frames[:14]), 10)] == [0]  # a chunk and a half: one piece
    assert [len(c) for c, _ in _chunks(iter(frames), 0)] == [30]


@pytest.fixture(scope="module")
def clip(sample_clip):
    return read_video(sample_clip)


def test_a_clip_within_one_chunk_is_encoded_as_before(clip):
    options = EncodeOptions(effort=0, seed=1)
    whole = encode_video(clip, replace(options, chunk_seconds=0))
    assert encode_video(clip, options).data == whole.data  # 48 frames < 1.5 x 10 s


def test_chunks_have_their_budget_and_an_intra_keyframe(clip):
    fps = clip.meta.fps
    options = EncodeOptions(effort=0, seed=1, chunk_seconds=16 / fps)  # 16-frame chunks: 0..15, 15..30, 30..47
    result = encode_video(clip, options)
    assert result.chunks == 3 and result.frames == len(clip)
    assert {0, 15, 30, 47} <= set(result.keyframes)
    bs = read_bitstream(result.data)
    keys = bs.keyframe_indices()
    firsts = [0] + [min(k for k in keys if k > start) for start in (15, 30)]  # each chunk's first new keyframe
    assert all(is_intra_payload(bs.keyframes[k]) for k in firsts)
    assert 0.7 < result.bpp() / result.target_bpp < 1.3
    frames = list(iter_decoded_frames(result.data, DecodeOptions(mode="warp")))
    assert len(frames) == len(clip) and frames[0].shape == clip.frames[0].shape


def test_the_encoder_does_not_hold_a_long_input(clip):
    """200 frames fed one by one through 20-frame chunks: the frames alive at once stay near 1.5 chunks."""
    alive, most = set(), [0]

    class Frame(np.ndarray):
        def __del__(self):
            alive.discard(id(self))

    def source():
        for i in range(200):
            frame = clip.frames[i % len(clip)].copy().view(Frame)
            alive.add(id(frame))
            most[0] = max(most[0], len(alive))
            yield frame

    options = EncodeOptions(effort=0, seed=1, chunk_seconds=20 / clip.meta.fps)
    result = encode_frames(source(), clip.meta, options)
    assert result.frames == 200 and result.chunks >= 9
    assert most[0] <= 20 + 10 + 2
