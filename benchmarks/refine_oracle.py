"""Where does the diffusion refinement help, and would encoder-chosen on/off flags pay for their bits?

Each clip is encoded once at ``--bpp`` and decoded in warp mode and in diffusion mode (the decoder's
defaults). An *oracle* then keeps, per keyframe group and per ``B x B`` pixel block, whichever of the
two the source says is closer (squared error over the group's in-between frames), the upper bound of
encoder-chosen refinement flags (what VVC does for its adaptive loop filter). ``B = 0`` means one flag
per group. Every output is measured like ``diffusion_sweep.py`` (PSNR-Y, MS-SSIM, VMAF, ColorVideoVDP
JOD, motion-fidelity EPE). Per clip the script also reports

* ``alpha_star``: the least-squares gain of the decoded change, ``<d - w, s - w> / |d - w|^2`` over
  all in-between frames (1 = the change is right as is, 0 = uncorrelated with the true error), and
* ``flag_bytes``: what the flags would cost as one extra section per group (framing + block size +
  packed bits), against the stream's size.

    python benchmarks/refine_oracle.py --clips carphone_qcif foreman_cif mobile_cif \\
        webcamtalk_416x240 flower_416x240 bikes_640x272 --out benchmarks/results/refine_oracle.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paths import VIDEOS_DIR  # noqa: E402
from diffusion_sweep import measure, write_result  # noqa: E402

from tgvc_rt.bitstream import read_bitstream, section_overhead  # noqa: E402
from tgvc_rt.bitstream.varint import pack_uleb  # noqa: E402
from tgvc_rt.decoder.diffusion import DiffusionOptions  # noqa: E402
from tgvc_rt.decoder.pipeline import DecodeOptions, iter_decoded_frames  # noqa: E402
from tgvc_rt.encoder.pipeline import EncodeOptions, encode_video  # noqa: E402
from tgvc_rt.encoder.ratecontrol import RateOptions  # noqa: E402
from tgvc_rt.io import read_video  # noqa: E402
from tgvc_rt.models import default_model_set_hash  # noqa: E402


def block_grid(height: int, width: int, block: int) -> tuple[int, int, int]:
    """``(block px, rows, cols)``; block 0 = one block covering the frame."""
    b = block or max(height, width)
    return b, -(-height // b), -(-width // b)


def oracle_masks(source: np.ndarray, warp: np.ndarray, diff: np.ndarray, groups,
                 block: int) -> tuple[np.ndarray, float]:
    """Per-pixel 0/1 map ``[N, H, W]`` (1 where the group's block is closer to the source refined) and
    the fraction of (group, block) flags that are on."""
    n, height, width = warp.shape[:3]
    b, rows, cols = block_grid(height, width, block)
    pad = ((0, rows * b - height), (0, cols * b - width))
    mask = np.zeros((n, height, width), np.float32)
    flags = []
    for g in groups:
        if g.end - g.start < 2:
            continue
        inner = slice(g.start + 1, g.end)
        src = source[inner].astype(np.float32)
        gain = (((warp[inner] - src) ** 2).sum(axis=(0, 3)) - ((diff[inner] - src) ** 2).sum(axis=(0, 3)))
        per_block = np.pad(gain, pad).reshape(rows, b, cols, b).sum(axis=(1, 3)) > 0
        mask[inner] = np.kron(per_block, np.ones((b, b), np.float32))[:height, :width]
        flags.append(per_block.ravel())
    return mask, float(np.concatenate(flags).mean()) if flags else 0.0


def flag_bytes(groups, height: int, width: int, block: int) -> int:
    _, rows, cols = block_grid(height, width, block)
    payload = len(pack_uleb(block)) + -(-rows * cols // 8)
    return sum(section_overhead(payload) + payload for g in groups if g.end - g.start >= 2)


def run_clip(src: Path, bpp: float, blocks: list[int], metrics: tuple[str, ...], work: Path) -> dict:
    video = read_video(src)
    data = encode_video(video, EncodeOptions(rate=RateOptions(bpp=bpp), seed=0,
                                             model_set_hash=default_model_set_hash())).data
    tgv = work / f"{src.stem}.tgv"
    tgv.write_bytes(data)
    bs = read_bitstream(data)
    warp = np.stack(list(iter_decoded_frames(data, DecodeOptions(mode="warp"))))
    diff = np.stack(list(iter_decoded_frames(data, DecodeOptions(mode="diffusion", diffusion=DiffusionOptions()))))
    source = video.frames[:len(warp)]
    change, error = diff.astype(np.float32) - warp, source.astype(np.float32) - warp
    rec = {"clip": src.stem, "stream_bytes": len(data), "groups": len(bs.groups),
           "alpha_star": float((change * error).sum() / max(float((change * change).sum()), 1e-9)), "rows": []}
    rec["rows"].append(measure(src, warp, data, tgv, "warp", metrics, work))
    rec["rows"].append(measure(src, diff, data, tgv, "diffusion", metrics, work))
    height, width = warp.shape[1:3]
    for block in blocks:
        mask, on = oracle_masks(source, warp, diff, bs.groups, block)
        frames = np.clip(np.rint(warp + mask[..., None] * change), 0, 255).astype(np.uint8)
        cost = flag_bytes(bs.groups, height, width, block)
        rec["rows"].append(measure(src, frames, data, tgv, f"oracle_b{block}", metrics, work, block=block,
                                   on_fraction=on,
                                   flag_bytes=cost, flag_share=cost / len(data)))
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["carphone_qcif", "mobile_cif"])
    ap.add_argument("--clips-dir", default=str(VIDEOS_DIR))
    ap.add_argument("--bpp", type=float, default=0.005)
    ap.add_argument("--blocks", type=int, nargs="+", default=[0, 64, 32], help="flag block sizes (0 = per group)")
    ap.add_argument("--metrics", nargs="+", default=["psnr", "msssim", "vmaf", "cvvdp"])
    ap.add_argument("--out", default="benchmarks/results/refine_oracle.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        records = [run_clip(Path(args.clips_dir) / f"{clip}.y4m", args.bpp, args.blocks, tuple(args.metrics),
                            Path(tmp)) for clip in args.clips]
    write_result("refine_oracle", args, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
