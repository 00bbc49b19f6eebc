"""Make the inputs of the GPU decode-loop check (``benchmarks/gpu/decode_loop.py``) on a CPU machine.

Encodes a shared clip at the check's size with the default encoder and writes, under ``--out``
(default ``benchmarks/gpu/data``, git-ignored: carry it to the GPU machine):

* ``stream.tgv``: the stream;
* ``keyframes.npz``: its decoded keyframes, in stream order (AV1 decoding is CPU work in every decode
  and needs PyAV, which the GPU check machine lacks; the check times everything after it).

    python benchmarks/gpu/prepare.py ../shared/data/videos/foreman_cif.y4m --size 512x320 --bpp 0.005
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--size", default="512x320")
    ap.add_argument("--bpp", type=float, default=0.005)
    ap.add_argument("--out", type=Path, default=HERE / "data")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stream = args.out / "stream.tgv"
    subprocess.run([sys.executable, "-m", "tgvc_rt", "encode", str(args.clip), "-o", str(stream), "--bpp",
                    str(args.bpp), "--resize", args.size, "-q"], check=True)
    from tgvc_rt.bitstream import read_bitstream
    from tgvc_rt.codec.keyframe_formats import KeyframeReader

    bs = read_bitstream(stream.read_bytes())
    h = bs.header
    reader = KeyframeReader(h.keyframe_codec, h.width, h.height)
    order = bs.keyframe_indices()
    images = np.stack([reader.decode(bs.keyframes[k]) for k in order])
    np.savez_compressed(args.out / "keyframes.npz", frames=np.array(order), images=images,
                        clip=str(args.clip.name), size=args.size, bpp=args.bpp)
    print(f"{stream}: {stream.stat().st_size} bytes, {h.num_frames} frames {h.width}x{h.height}, "
          f"{len(order)} keyframes ({(args.out / 'keyframes.npz').stat().st_size} B npz)")


if __name__ == "__main__":
    main()
