"""Model sets: a folder with ``manifest.json`` and ONNX files (docs/models.md).

``load_model_set("default" | name | path, device)`` reads the manifest, checks every listed file's
SHA-256 and returns a ``ModelSet`` whose sessions open lazily on first use. The *model-set hash*
written into bitstreams is ``model_set_hash(path)``: the first 16 bytes of SHA-256 of the
manifest bytes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgvc_rt.errors import ModelSetError

MODELS_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
HASH_BYTES = 16
REQUIRED_FOR_DIFFUSION = ("vae_encoder", "vae_decoder", "unet")


def resolve_model_set(name_or_path: str | Path = "default") -> Path:
    """A bundled set's name (``runtime/tgvc_rt/models/<name>``) or a folder path -> its folder."""
    p = Path(name_or_path)
    candidates = [p] if (p.is_absolute() or len(p.parts) > 1 or p.exists()) else []
    candidates.append(MODELS_DIR / str(name_or_path))
    for c in candidates:
        if (c / MANIFEST).is_file():
            return c
    raise ModelSetError(f"model set {str(name_or_path)!r} not found (no {MANIFEST} in "
                        f"{' or '.join(str(c) for c in candidates)})")


def model_set_hash(path: str | Path) -> bytes:
    """First 16 bytes of SHA-256 of the set's ``manifest.json`` bytes (``path``: folder or name)."""
    folder = resolve_model_set(path)
    return hashlib.sha256((folder / MANIFEST).read_bytes()).digest()[:HASH_BYTES]


def default_model_set_hash() -> bytes:
    """The default set's hash, or 16 zero bytes while no default set is installed."""
    try:
        return model_set_hash("default")
    except ModelSetError:
        return bytes(HASH_BYTES)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ModelSetError(f"cannot read {folder / MANIFEST}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != 1 or not isinstance(manifest.get("models"), dict):
        raise ModelSetError(f"{folder / MANIFEST} is not a format-1 model-set manifest")
    return manifest


def verify_model_set(folder: Path, manifest: dict) -> None:
    """Every listed file exists and matches its sha256 (ModelSetError otherwise)."""
    for key, model in manifest["models"].items():
        for entry in [model, *model.get("variants", {}).values()]:
            f = folder / entry.get("file", "")
            if not f.is_file():
                raise ModelSetError(f"model set {folder.name}: {key} file {f.name!r} is missing")
            if sha256_file(f) != str(entry.get("sha256", "")).lower():
                raise ModelSetError(f"model set {folder.name}: {f.name} does not match its sha256 in {MANIFEST}")


@dataclass
class ModelSet:
    """A verified model set; ``session(key)``, ``denoiser``, ``autoencoder`` open models lazily."""

    path: Path
    manifest: dict
    device: str = "cpu"
    threads: int | None = None
    precision: str = "auto"   # fp32 | fp16 | auto (fp16 variants on GPUs where the set has them)
    max_size: tuple[int, int] = (352, 288)  # largest frame (width, height) the GPU engines' profiles take
    engine_cache: Path | None = None        # TensorRT engine cache (None: backends.trt.DEFAULT_CACHE)
    stream: int = 0                         # CUstream the GPU sessions enqueue on (0: their own)
    _sessions: dict = field(default_factory=dict, repr=False)
    _failed: dict = field(default_factory=dict, repr=False)  # backend -> why it failed to start a model

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def hash(self) -> bytes:
        return hashlib.sha256((self.path / MANIFEST).read_bytes()).digest()[:HASH_BYTES]

    @property
    def latent_channels(self) -> int:
        return int(self.manifest.get("latent_channels", 32))

    @property
    def latent_mean(self) -> np.ndarray:
        return np.asarray(self.manifest.get("latent_mean", [0.0] * self.latent_channels), np.float32)

    @property
    def latent_std(self) -> np.ndarray:
        return np.asarray(self.manifest.get("latent_std", [1.0] * self.latent_channels), np.float32)

    def has(self, key: str) -> bool:
        return key in self.manifest["models"]

    @property
    def backend(self):
        """The ``BackendChoice`` of ``device`` (backends/select.py): which runtime runs the models here."""
        from tgvc_rt.backends.select import choose_backend

        return choose_backend(self.device, self._failed)

    @property
    def runs_on_cpu(self) -> bool:
        """Whether the sessions will run on the CPU: device "cpu", or "auto" where no GPU backend can run
        (then "auto" must give the same FP32 models, and output, as "cpu")."""
        return self.device == "cpu" or not self.backend.on_gpu

    def model_path(self, key: str, precision: str | None = None) -> Path:
        """File of model ``key`` in ``precision`` (fp32/fp16/auto); falls back to the main file."""
        if not self.has(key):
            raise ModelSetError(f"model set {self.name} has no {key} model")
        precision = precision or self.precision
        if precision == "auto":
            precision = "fp32" if self.runs_on_cpu else "fp16"
        entry = self.manifest["models"][key]
        variant = entry.get("variants", {}).get(precision) if entry.get("precision") != precision else None
        return self.path / (variant or entry)["file"]

    def session(self, key: str):
        """The backend session of model ``key`` (opened on first use, then cached) on ``backend``: our
        TensorRT engine runner, or ONNX Runtime on its TensorRT/CUDA provider or the CPU."""
        if key not in self._sessions:
            from tgvc_rt.backends import open_model_session
            from tgvc_rt.errors import TgvcError

            while True:
                backend = self.backend.backend
                try:
                    self._sessions[key] = open_model_session(self, key)
                    break
                except TgvcError as err:
                    # "auto" (or "tensorrt", with two TensorRT backends) goes on down its chain while no
                    # model is open yet (all of a set's models run on one backend)
                    if self.device in ("cpu", "cuda") or backend == "cpu" or self._sessions:
                        raise
                    self._failed[backend] = f"could not start {key}: {err}"
        return self._sessions[key]

    def alphas_cumprod(self) -> np.ndarray:
        from tgvc_rt.diffusion.schedules import alphas_cumprod_from_manifest

        return alphas_cumprod_from_manifest(self.manifest.get("schedule", {}))

    def denoiser(self):
        from tgvc_rt.backends import Denoiser

        return Denoiser(self.session("unet"))

    def autoencoder(self, batch: int = 4):
        from tgvc_rt.backends import Autoencoder

        return Autoencoder(self.session("vae_encoder"), self.session("vae_decoder"),
                           self.latent_mean, self.latent_std, batch=batch)


def load_model_set(name_or_path: str | Path = "default", device: str = "cpu", threads: int | None = None,
                   verify: bool = True) -> ModelSet:
    """Find, read and (by default) sha256-verify a model set; sessions open lazily."""
    folder = resolve_model_set(name_or_path)
    manifest = read_manifest(folder)
    if verify:
        verify_model_set(folder, manifest)
    return ModelSet(folder, manifest, device=device, threads=threads)


def list_model_sets() -> list[str]:
    """Names of the model sets bundled in the package (folders with a manifest)."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / MANIFEST).is_file())


def describe_model_set(name_or_path: str | Path = "default") -> dict:
    """A JSON-able summary for ``tgvc-rt info --models`` (no verification, no sessions)."""
    folder = resolve_model_set(name_or_path)
    m = read_manifest(folder)
    return {"name": m.get("name", folder.name), "path": str(folder),
            "hash": hashlib.sha256((folder / MANIFEST).read_bytes()).digest()[:HASH_BYTES].hex(),
            "latent_channels": m.get("latent_channels"), "schedule": m.get("schedule"),
            "models": {k: {"file": e.get("file"), "precision": e.get("precision"),
                           "bytes": (folder / e["file"]).stat().st_size if (folder / e.get("file", "")).is_file() else None,
                           "licence": e.get("licence")} for k, e in m["models"].items()}}
