"""Train the keyframe restoration net (tgvc_export/keyframe_restore.py) on the pairs of
keyframe_restore_data.py; CPU, one thread, a wall-clock budget with a cosine learning rate over it.

    python -m tgvc_export.train_keyframe_restore --pairs export/cache/kfr/pairs --minutes 60 \
        --out export/cache/kfr/kfr.pt --onnx export/cache/kfr/kfr.onnx

Loss: MSE of BT.601 luma + 0.25 MSE of RGB (the metric is PSNR-Y; the RGB term keeps chroma sane).
Patches: 96x96 at even offsets, horizontal flips. Pairs whose name ends in 0 mod 20 are kept out as a
validation set (monitoring only; the held-out clips are never part of the pairs). The pair folder is
re-read every ``--rescan`` steps, so training may start while the data script is still writing.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .keyframe_restore import Y_WEIGHTS, build_model


class Pairs:
    def __init__(self, folder: str, sources: str = "all"):
        self.folder, self.seen, self.sources = folder, set(), sources
        self.train: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.val: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.scan()

    def scan(self) -> None:
        for path in sorted(glob.glob(f"{self.folder}/*.npz")):
            if path in self.seen:
                continue
            try:
                z = np.load(path)
                src, dec, scale = z["src"], z["dec"], float(z["scale"])
                name = json.loads(str(z["meta"]))["name"]
            except (OSError, ValueError, KeyError, EOFError):  # still being written
                continue
            self.seen.add(path)
            is_still = name.startswith("usr/")
            if (self.sources == "stills" and not is_still) or (self.sources == "clips" and is_still):
                continue
            idx = int(Path(path).stem.split("_")[-1])
            target = self.val if idx % 20 == 0 else self.train
            for s, d in zip(src, dec):
                if min(s.shape[:2]) >= 96:
                    target.append((s, d, scale))

    def batch(self, rng, n: int, size: int = 96):
        areas = np.array([s.shape[0] * s.shape[1] for s, _, _ in self.train], np.float64)
        picks = rng.choice(len(self.train), n, p=areas / areas.sum())
        xs, ys, ss = [], [], []
        for i in picks:
            s, d, scale = self.train[i]
            h, w = s.shape[:2]
            y0 = 2 * int(rng.integers(0, (h - size) // 2 + 1))
            x0 = 2 * int(rng.integers(0, (w - size) // 2 + 1))
            a, b = s[y0:y0 + size, x0:x0 + size], d[y0:y0 + size, x0:x0 + size]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            ys.append(a), xs.append(b), ss.append(scale)
        t = lambda v: torch.from_numpy(np.ascontiguousarray(np.stack(v))).permute(0, 3, 1, 2).float() / 255.0
        return t(xs), t(ys), torch.tensor(ss, dtype=torch.float32)


def y_of(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(Y_WEIGHTS, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1)


def loss_fn(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (y_of(out) - y_of(ref)).pow(2).mean() + 0.25 * (out - ref).pow(2).mean()


@torch.no_grad()
def validate(model, pairs: Pairs) -> dict:
    """Mean luma PSNR (on [0,1] * 219-scaled luma; the offset cancels) before/after over the val pictures."""
    before, after = [], []
    for s, d, scale in pairs.val[:60]:
        h, w = (s.shape[0] // 4) * 4, (s.shape[1] // 4) * 4
        x = torch.from_numpy(np.ascontiguousarray(d[:h, :w])).permute(2, 0, 1)[None].float() / 255
        r = torch.from_numpy(np.ascontiguousarray(s[:h, :w])).permute(2, 0, 1)[None].float() / 255
        out = model(x, torch.tensor([scale])).clamp(0, 1)
        for lst, v in ((before, x), (after, out)):
            mse = float((y_of(v) - y_of(r)).pow(2).mean()) * 255 ** 2
            lst.append(10 * math.log10(255 ** 2 / max(mse, 1e-6)))
    return {"val_psnr_y_before": float(np.mean(before)), "val_psnr_y_after": float(np.mean(after)),
            "val_pictures": len(before)}


def export_onnx(model, path: str) -> None:
    model.eval()
    torch.onnx.export(model, (torch.rand(1, 3, 288, 352), torch.tensor([0.5])), path,
                      input_names=["image", "scale"], output_names=["restored"], opset_version=17,
                      dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scale": {0: "n"},
                                    "restored": {0: "n", 2: "h", 3: "w"}}, dynamo=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="export/cache/kfr/pairs")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--unshuffle", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sources", default="all", choices=("all", "stills", "clips"),
                    help="train on the pairs from wallpapers, from the training clips, or both")
    ap.add_argument("--rescan", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="export/cache/kfr/kfr.pt")
    ap.add_argument("--onnx", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    pairs = Pairs(args.pairs, args.sources)
    model = build_model(args.channels, args.blocks, args.unshuffle)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget = args.minutes * 60
    t0, step, log = time.time(), 0, []
    running = None
    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        if step % args.rescan == 0 and step:
            pairs.scan()
        x, y, s = pairs.batch(rng, args.batch)
        loss = loss_fn(model(x, s), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        step += 1
        if step % 250 == 0:
            v = validate(model, pairs)
            rec = dict(step=step, minutes=(time.time() - t0) / 60, loss=running,
                       train_pictures=len(pairs.train), **v)
            log.append(rec)
            print(json.dumps(rec), flush=True)
            torch.save({"state": model.state_dict(), "channels": args.channels, "blocks": args.blocks,
                        "unshuffle": args.unshuffle, "step": step, "log": log}, args.out)
    v = validate(model, pairs)
    log.append(dict(step=step, minutes=(time.time() - t0) / 60, loss=running, train_pictures=len(pairs.train), **v))
    print(json.dumps(log[-1]), flush=True)
    torch.save({"state": model.state_dict(), "channels": args.channels, "blocks": args.blocks,
                "unshuffle": args.unshuffle, "step": step, "log": log, "args": vars(args)}, args.out)
    if args.onnx:
        export_onnx(model, args.onnx)


if __name__ == "__main__":
    main()
