"""manifest.json of a model set (docs/models.md): file hashes, tensor shapes, licences, training."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .train_unet import SCHEDULE

# symbolic shapes of the graph boundary, per model (docs/models.md)
INTERFACES = {
    "vae_encoder": ({"image": ["B", 3, "H", "W"]}, {"latent": ["B", 32, "h", "w"]}),
    "vae_decoder": ({"latent": ["B", 32, "h", "w"]}, {"image": ["B", 3, "H", "W"]}),
    "unet": ({"sample": ["B", "F", 32, "h", "w"], "timestep": ["B"], "cond": ["B", "F", 65, "h", "w"]},
             {"eps": ["B", "F", 32, "h", "w"]}),
    "tracker": ({"frames": [1, "T", 1, "H", "W"], "queries": [1, "K", 2]},
                {"tracks": [1, "T", "K", 2], "visibility": [1, "T", "K"]}),
    "interpolator": ({"img0": ["B", 3, "H", "W"], "img1": ["B", 3, "H", "W"], "timestep": ["B"],
                      "flow_init": ["B", 4, "H", "W"], "init_weight": ["B", 1, "H", "W"], "track_xy": ["B", "K", 2],
                      "track_flow": ["B", "K", 4], "track_weight": ["B", "K", 2], "guide": [3]},
                     {"frame": ["B", 3, "H", "W"], "flow": ["B", 4, "H", "W"], "mask": ["B", 1, "H", "W"]}),
}
TAESD_LICENCE = "MIT (TAEF2, madebyollin/taesd), see LICENSE-taesd.txt"
OWN_LICENCE = "MIT (tgvc-rt)"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_entry(name: str, folder: Path, file: str, precision: str, licence: str,
                extra: dict | None = None) -> dict:
    """Manifest entry of one ONNX file in folder (plus its external data file, if any)."""
    inputs, outputs = INTERFACES[name]
    entry = {"file": file, "sha256": sha256_file(folder / file), "precision": precision,
             "inputs": inputs, "outputs": outputs, "licence": licence}
    data = folder / (file + ".data")
    if data.exists():
        entry["external_data"] = {"file": data.name, "sha256": sha256_file(data)}
    entry.update(extra or {})
    return entry


def build_manifest(name: str, models: dict[str, dict], latent_mean: list[float], latent_std: list[float],
                   training: dict) -> dict:
    return {"format": 1, "name": name, "latent_channels": 32,
            "latent_mean": [round(float(v), 6) for v in latent_mean],
            "latent_std": [round(float(v), 6) for v in latent_std],
            "schedule": dict(SCHEDULE), "models": models, "training": training}


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def model_set_hash(folder: Path) -> bytes:
    """First 16 bytes of the SHA-256 of manifest.json (written into every bitstream)."""
    return hashlib.sha256((folder / "manifest.json").read_bytes()).digest()[:16]
