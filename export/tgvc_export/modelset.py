"""Write a whole model set: VAE encoder/decoder, UNet, tracker, interpolator (ONNX), LICENSE-taesd.txt, manifest."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from .export_onnx import TAESD_NOTICE, ExportSpec, export, max_abs_error
from .interpolator_export import export_interpolator
from .latents import CACHE_DIR
from .manifest import OWN_LICENCE, TAESD_LICENCE, build_manifest, model_entry, write_manifest
from .specs import unet_spec, vae_specs
from .taef2 import WEIGHTS_DIR
from .tracker import build_tracker
from .tracker_onnx import export_tracker
from .train_unet import CHECKPOINT_DIR, load_trained
from .unet import build_unet, count_params

REPO = Path(__file__).resolve().parents[2]
EXTERNAL_DATA_PARAMS = 50_000_000  # UNets above this many parameters use ONNX external data


def default_out(set_name: str) -> Path:
    if set_name == "default":
        return REPO / "runtime" / "tgvc_rt" / "models" / "default"
    return CACHE_DIR / "sets" / set_name  # large sets are not shipped (git-ignored)


def _errors(spec: ExportSpec, path: Path, alt: dict[str, torch.Tensor]) -> float:
    return max(max_abs_error(spec, path), max_abs_error(spec, path, alt))


def _alt_inputs(spec: ExportSpec) -> dict[str, torch.Tensor]:
    """A second input set of other sizes, to check the dynamic axes."""
    g = torch.Generator().manual_seed(7)
    if spec.name == "vae_encoder":
        return {"image": torch.rand(1, 3, 40, 56, generator=g)}
    if spec.name == "vae_decoder":
        return {"latent": torch.randn(1, 32, 5, 9, generator=g)}
    return {"sample": torch.randn(1, 4, 32, 7, 13, generator=g), "timestep": torch.tensor([321.0]),
            "cond": torch.randn(1, 4, 65, 7, 13, generator=g)}


def _tracker_error(path: Path) -> float:
    """Max |ORT - torch| tracker positions on a small moving random texture."""
    from .export_onnx import ort_session

    g = torch.Generator().manual_seed(3)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 80, 96, generator=g), 3, 1, 1)
    frames = torch.stack([torch.roll(base, (t, 2 * t), (2, 3)) for t in range(4)], dim=1)  # [1,4,1,80,96]
    queries = torch.rand(1, 9, 2, generator=g) * torch.tensor([60.0, 50.0]) + 15
    with torch.no_grad():
        ref = build_tracker()(frames, queries)
    got = ort_session(path).run(None, {"frames": frames.numpy(), "queries": queries.numpy()})
    return max(float(np.abs(got[i] - ref[i].numpy()).max()) for i in range(2))


def _load_unet(set_name: str, checkpoint: Path | None) -> tuple[torch.nn.Module, dict]:
    ckpt = checkpoint or (CHECKPOINT_DIR / f"unet_{set_name}.pt")
    if ckpt.exists():
        return load_trained(ckpt)
    if set_name == "default":
        raise FileNotFoundError(f"{ckpt}: train first (python -m tgvc_export train-unet)")
    torch.manual_seed(0)
    stats = load_trained(CHECKPOINT_DIR / "unet_default.pt")[1]
    record = {"config": set_name, "params": None, "trained": False, "note": "random weights (not trained)",
              "latent_mean": stats["latent_mean"], "latent_std": stats["latent_std"]}
    return build_unet(set_name).eval(), record


def export_model_set(set_name: str = "default", out: Path | None = None, checkpoint: Path | None = None,
                     fp16: bool = True) -> dict:
    """Export every model of the set into ``out``; returns the manifest (also written)."""
    out = out or default_out(set_name)
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {}

    for spec in vae_specs():
        entry = _export_one(spec, out, fp16, licence=TAESD_LICENCE)
        models[spec.name] = entry

    unet, record = _load_unet(set_name, checkpoint)
    params = count_params(unet)
    external = params > EXTERNAL_DATA_PARAMS
    spec = unet_spec(unet) if not external else unet_spec(unet, frames=3, h=8, w=8)
    models["unet"] = _export_one(spec, out, fp16 and not external, licence=OWN_LICENCE,
                                 external=external, extra={"params": params, "config": set_name,
                                        "warp_residual": bool(unet.cfg.warp_residual)})

    tracker_path = export_tracker(out / "tracker.onnx")
    models["tracker"] = model_entry("tracker", out, "tracker.onnx", "fp32", OWN_LICENCE,
                                    {"max_abs_error_vs_torch": _tracker_error(tracker_path),
                                     "algorithm": "pyramidal Lucas-Kanade, 4 levels, 11x11 window, 8 iterations"})
    models["interpolator"] = export_interpolator(out, fp16=fp16)
    shutil.copyfile(WEIGHTS_DIR / "LICENSE-taesd.txt", out / "LICENSE-taesd.txt")

    training = {k: v for k, v in record.items() if k not in ("latent_mean", "latent_std", "history")}
    tc = record.get("train_config", {})
    training["command"] = (f"cd export && nice python -m tgvc_export train-unet --config {set_name} "
                           f"--steps {tc.get('steps', record.get('steps'))} --batch {tc.get('batch', 2)}"
                           + (" --warp-residual" if tc.get("warp_residual") else "")
                           + (f" --min-snr {tc['min_snr']:g}" if tc.get("min_snr") else "")
                           + (f" --max-minutes {tc['max_minutes']:g}" if tc.get("max_minutes") else "")
                           if record.get("steps") else "none (random weights)")
    if "finetune_config" in record:  # fine-tuned on the real warp decoder output (train_warp.py)
        fc = record["finetune_config"]
        base = record.get("base") or {}
        btc = base.get("train_config") or {}
        training["base_command"] = (f"cd export && nice python -m tgvc_export train-unet --config {set_name} "
                                    f"--steps {btc.get('steps')} --batch {btc.get('batch')} --warp-residual "
                                    f"--min-snr {btc.get('min_snr', 0):g} --max-minutes {btc.get('max_minutes', 0):g}")
        training["command"] = (f"cd export && nice python -m tgvc_export make-warp-data && nice python -m "
                               f"tgvc_export finetune-unet --steps {fc['steps']} --batch {fc['batch']} "
                               f"--lr {fc['lr']:g} --warp-start-prob {fc.get('warp_start_prob', 0.5):g}" + (f" --max-minutes {fc['max_minutes']:g}" if fc.get("max_minutes") else ""))
        training["warp_data"] = record["data"]
        training["val_history"] = record.get("history", [])
    else:
        training["warp_proxy"] = ("channels 33..64 trained on lam*degraded(truth) + (1-lam)*crossfade(keyframes): "
                                  "degraded = random shift + smooth displacement field, blur, noise "
                                  "(export/tgvc_export/windows.py); the real warp decoder output was not available")
        training["val_history"] = [{k: round(v, 4) for k, v in h.items()} for h in record.get("history", [])]
    manifest = build_manifest(set_name, models, record["latent_mean"], record["latent_std"], training)
    write_manifest(out, manifest)
    return manifest


def _export_one(spec: ExportSpec, out: Path, fp16: bool, licence: str, external: bool = False,
                extra: dict | None = None) -> dict:
    alt = _alt_inputs(spec)
    path = export(spec, out / f"{spec.name}.onnx", external_data=external)
    info = dict(extra or {})
    info["max_abs_error_vs_torch"] = _errors(spec, path, alt)
    if fp16:
        path16 = export(spec, out / f"{spec.name}_fp16.onnx", fp16=True)
        variant = model_entry(spec.name, out, path16.name, "fp16", licence,
                              {"max_abs_error_vs_torch_fp32": _errors(spec, path16, alt)})
        for key in ("inputs", "outputs", "licence"):
            variant.pop(key)
        info["variants"] = {"fp16": variant}
    if licence == TAESD_LICENCE:
        info["notice"] = TAESD_NOTICE
    return model_entry(spec.name, out, path.name, "fp32", licence, info)


def restamp_model_set(folder: Path) -> dict:
    """Strip the exporter's stack traces from every ONNX file of a set (graphs unchanged) and rewrite
    the manifest's sha256 entries; returns the manifest."""
    import json

    import onnx

    from .export_onnx import strip_stack_traces
    from .manifest import sha256_file

    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["models"].values():
        for item in [entry, *entry.get("variants", {}).values()]:
            path = folder / item["file"]
            model = onnx.load(str(path))
            onnx.save_model(strip_stack_traces(model), str(path))
            item["sha256"] = sha256_file(path)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
