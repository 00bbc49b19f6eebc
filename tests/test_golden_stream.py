"""tests/data/golden_v1.tgv pins the version-1 layout: it must keep parsing and decoding (the C++
reader checks the same file in ctest). Regenerate only with a deliberate format version change."""
from pathlib import Path

from tgvc_rt.bitstream import read_bitstream
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames

GOLDEN = Path(__file__).parent / "data" / "golden_v1.tgv"


def test_golden_stream_parses_and_decodes():
    data = GOLDEN.read_bytes()
    bs = read_bitstream(data)
    h = bs.header
    assert (h.width, h.height, h.num_frames, h.noise_seed, h.keyframe_codec) == (176, 144, 17, 1, 1)
    assert bs.keyframe_indices() == [0, 7, 16]
    # warp: the mode that needs no model set (the file carries the all-zero model-set hash)
    frames = list(iter_decoded_frames(data, DecodeOptions(mode="warp")))
    assert len(frames) == 17 and frames[0].shape == (144, 176, 3)
