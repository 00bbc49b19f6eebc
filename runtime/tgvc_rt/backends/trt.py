"""TensorRT engines for a model set: build (cached) and run.

Works with NVIDIA's ``tensorrt`` or with ``tensorrt_rtx`` (the `trt` extra), which builds portable
engines ahead of time without a GPU. Engines live outside git, in a cache folder keyed by everything
that makes an engine valid: the ONNX file's sha256, the TensorRT flavour and version, the target GPU
architecture, the precision and the optimisation-profile shapes.

Profiles come from ``engines/profiles.json`` in a source checkout (or ``--profiles``), with the same
rules built in for wheel installs: shapes are expressed in frames F and the largest frame size.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, TgvcError
from ..models import sha256_file

DEFAULT_CACHE = Path(os.environ.get("TGVC_CACHE", Path.home() / ".cache" / "tgvc-rt")) / "engines"
# name -> input -> [min, opt, max] shapes; symbols: F (frames), H, W (pixels), h, w (latent = /8),
# PH, PW (pixels rounded up to the interpolator's 64)
_FRAME = [[1, 3, 64, 64], [4, 3, "PH", "PW"], [4, 3, "PH", "PW"]]
BUILTIN_PROFILES = {
    "interpolator": {"img0": _FRAME, "img1": _FRAME, "timestep": [[1], [4], [4]],
                     "flow_init": [[1, 4, 64, 64], [4, 4, "PH", "PW"], [4, 4, "PH", "PW"]],
                     "init_weight": [[1, 1, 64, 64], [4, 1, "PH", "PW"], [4, 1, "PH", "PW"]],
                     "track_xy": [[1, 1, 2], [4, 48, 2], [4, 512, 2]],
                     "track_flow": [[1, 1, 4], [4, 48, 4], [4, 512, 4]],
                     "track_weight": [[1, 1, 2], [4, 48, 2], [4, 512, 2]], "guide": [[3], [3], [3]]},
    "vae_encoder": {"image": [[1, 3, 64, 64], [16, 3, "H", "W"], [16, 3, "H", "W"]]},
    "vae_decoder": {"latent": [[1, 32, 8, 8], [16, 32, "h", "w"], [16, 32, "h", "w"]]},
    # the UNet's engine is built per frame size (TensorRT-RTX 1.7 fails shape inference of its internal
    # pad/resize with a dynamic size); frames stay dynamic
    "unet": {"sample": [[1, 2, 32, "h", "w"], [1, 16, 32, "h", "w"], [1, 16, 32, "h", "w"]],
             "timestep": [[1], [1], [1]],
             "cond": [[1, 2, 65, "h", "w"], [1, 16, 65, "h", "w"], [1, 16, 65, "h", "w"]]},
}


def import_tensorrt():
    """(module, flavour) for tensorrt_rtx or tensorrt; a clear error when neither is installed."""
    for name in ("tensorrt_rtx", "tensorrt"):
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    raise TgvcError("TensorRT is not installed: pip install 'tgvc-rt[trt]' (tensorrt-rtx) or NVIDIA's tensorrt")


def gpu_arch() -> str:
    """'sm_XY' of GPU 0 through cuda-python, or 'portable' when no GPU/driver is reachable."""
    try:
        from cuda.bindings import driver  # type: ignore
    except ImportError:
        return "portable"
    try:
        if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
            return "portable"
        major = driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0)
        minor = driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0)
        return f"sm_{major[1]}{minor[1]}"
    except Exception:  # noqa: BLE001 - any driver trouble means "no GPU to specialise for"
        return "portable"


def load_profiles(path: Path | None = None) -> dict:
    if path is None:
        candidate = Path(__file__).resolve().parents[3] / "engines" / "profiles.json"
        path = candidate if candidate.is_file() else None
    if path is None:
        return BUILTIN_PROFILES
    try:
        return json.loads(Path(path).read_text())["profiles"]
    except (OSError, ValueError, KeyError) as e:
        raise OptionError(f"{path}: not a valid engine profile file ({e})") from None


def resolve_shapes(rule: list, max_size: tuple[int, int]) -> list[tuple[int, ...]]:
    w, h = max_size
    symbols = {"W": -(-w // 8) * 8, "H": -(-h // 8) * 8, "w": -(-w // 8), "h": -(-h // 8),
               "PW": -(-w // 64) * 64, "PH": -(-h // 64) * 64}
    lo, opt, hi = (tuple(symbols[d] if isinstance(d, str) else int(d) for d in shape) for shape in rule)
    # a small largest size must not fall below the rule's fixed minimum: MIN <= OPT <= MAX
    lo = tuple(min(a, b) for a, b in zip(lo, hi))
    return [lo, tuple(min(max(a, b), c) for a, b, c in zip(opt, lo, hi)), hi]


@dataclass(frozen=True)
class EngineKey:
    model_sha256: str
    flavour: str
    trt_version: str
    arch: str
    precision: str
    shapes: str

    def filename(self, name: str) -> str:
        digest = hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:20]
        return f"{name}-{self.arch}-{self.precision}-{digest}.engine"


def build_engine(onnx_path: Path, shapes: dict[str, list[tuple[int, ...]]], precision: str, out: Path) -> Path:
    trt, flavour = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TgvcError(f"{onnx_path.name}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16" and flavour == "tensorrt" and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)  # tensorrt_rtx is strongly typed: precision comes from the ONNX
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in shapes:
            raise TgvcError(f"{onnx_path.name}: no engine profile for input {name!r}")
        profile.set_shape(name, *shapes[name])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TgvcError(f"{onnx_path.name}: TensorRT engine build failed")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, out)
    return out


def build_engines(models: str = "default", precision: str = "fp16", max_size: tuple[int, int] = (352, 288),
                  cache_dir: Path | None = None, profiles: Path | None = None) -> list[Path]:
    """Build (or find in the cache) one engine per model of the set that has a profile."""
    from ..models import load_model_set

    if precision not in ("fp16", "fp32"):
        raise OptionError(f"--precision {precision!r}: choose fp16 or fp32")
    if not (16 <= max_size[0] <= 8192 and 16 <= max_size[1] <= 8192):
        raise OptionError("--width/--height must be within 16..8192")
    trt, flavour = import_tensorrt()
    model_set = load_model_set(models)
    arch = gpu_arch()
    rules = load_profiles(profiles)
    built = []
    for name, rule in rules.items():
        if not model_set.has(name):
            continue
        onnx_path = model_set.model_path(name, precision)
        shapes = {inp: resolve_shapes(r, max_size) for inp, r in rule.items()}
        key = EngineKey(sha256_file(onnx_path), flavour, trt.__version__, arch, precision,
                        json.dumps(shapes, sort_keys=True))
        out = (cache_dir or DEFAULT_CACHE) / key.filename(name)
        built.append(out if out.is_file() else build_engine(onnx_path, shapes, precision, out))
    return built
