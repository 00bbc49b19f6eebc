"""`tgvc-rt info`: the structure and bit split of a stream, or a model set's manifest."""
from __future__ import annotations

from pathlib import Path

from .bitstream import read_bitstream
from .codec.keyframe_formats import CODEC_NAMES
from .codec.stream import read_stream_file
from .codec.trajectories import bits_per_track_point, decode_tracks


def describe_stream(path: Path) -> str:
    data = read_stream_file(path)
    bs = read_bitstream(data)
    h = bs.header
    pixels = h.width * h.height * h.num_frames
    codec = CODEC_NAMES.get(h.keyframe_codec, f"id {h.keyframe_codec}")
    kf_bytes = sum(map(len, bs.keyframes.values()))
    tr_bytes = sum(len(g.tracks) for g in bs.groups)
    lines = [
        f"{path}: .tgv {data[4]}.{data[5]}, {len(data)} bytes, {len(data) * 8 / pixels:.5f} bpp, "
        f"{len(data) * 8 * h.fps_num / h.fps_den / h.num_frames / 1000:.2f} kbit/s",
        f"  video      {h.width}x{h.height}, {h.num_frames} frames at {h.fps_num / h.fps_den:.3f} fps",
        f"  model set  {h.model_set_hash.hex()}   noise seed {h.noise_seed}",
        f"  keyframes  {len(bs.keyframes)} ({codec}), {kf_bytes} B payload ({100 * kf_bytes / len(data):.1f}%)",
        f"  tracks     {tr_bytes} B payload ({100 * tr_bytes / len(data):.1f}%)",
        f"  framing    {len(data) - kf_bytes - tr_bytes} B (preamble, header, section heads, CRCs)",
        "  group        frames  keyframe B  tracks  track B  bits/point",
    ]
    for g in bs.groups:
        n = g.end - g.start + 1
        tracks = decode_tracks(g.tracks, n, h.width, h.height)
        bpt = bits_per_track_point(tracks, len(g.tracks))
        lines.append(f"  {g.start:5d}..{g.end:<5d} {n:6d}  {len(bs.keyframes[g.end]):10d}  {tracks.num_tracks:6d}"
                     f"  {len(g.tracks):7d}  {bpt:10.2f}")
    return "\n".join(lines)


def describe_models(name: str) -> str:
    from .models import describe_model_set

    d = describe_model_set(name)
    sched = d["schedule"]
    lines = [f"model set {d['name']}  hash {d['hash']}  ({d['path']})",
             f"  latent channels {d['latent_channels']}, schedule {sched['type']} "
             f"({sched['num_train_timesteps']} steps, {sched['prediction']})"]
    for key, m in d["models"].items():
        lines.append(f"  {key:<12s} {m['file']:<22s} {m['precision']:<5s} {m['bytes'] / 1e6:6.2f} MB  {m['licence']}")
    return "\n".join(lines)
