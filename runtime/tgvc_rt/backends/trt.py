"""TensorRT engines for a model set: build them into a cache (``engine_for``, ``build_engines``).

Works with NVIDIA's ``tensorrt`` or with ``tensorrt_rtx`` (the `trt` extra), which builds portable
engines ahead of time without a GPU. Engines live outside git, in a cache folder keyed by everything
that makes an engine valid: the ONNX file's sha256, the TensorRT flavour and version, the target GPU
architecture, the precision and the optimisation-profile shapes.

Profiles come from ``engines/profiles.json`` in a source checkout (or ``--profiles``), with the same
rules built in for wheel installs: shapes are expressed in frames F and the largest frame size.
Each engine carries an integrity sidecar (``engine_cache.py``); ``trt_runner.py`` runs them.
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
from .engine_cache import cached_engine, write_engine

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


class TrtBuilder:
    """The default engine builder: this machine's TensorRT (``tensorrt_rtx`` or ``tensorrt``), for
    GPU 0's architecture or ``portable`` (engine_cache.EngineBuilder).

    ``workspace_mb`` caps the builder's workspace pool (default ``$TGVC_TRT_WORKSPACE_MB``, else
    TensorRT's own default): on Jetson the GPU shares the system memory, so a cap keeps a build
    within it. It changes which kernels are chosen, not whether an engine is valid, so it is not
    part of the cache key."""

    def __init__(self, workspace_mb: int | None = None):
        self.trt, self.flavour = import_tensorrt()
        self.version = str(self.trt.__version__)
        self.arch = gpu_arch()
        if workspace_mb is None and os.environ.get("TGVC_TRT_WORKSPACE_MB"):
            try:
                workspace_mb = int(os.environ["TGVC_TRT_WORKSPACE_MB"])
            except ValueError:
                raise OptionError("TGVC_TRT_WORKSPACE_MB must be a whole number of MiB") from None
        if workspace_mb is not None and workspace_mb < 1:
            raise OptionError("the TensorRT workspace must be at least 1 MiB")
        self.workspace_mb = workspace_mb

    def __call__(self, onnx_path: Path, shapes: dict[str, list[tuple[int, ...]]], precision: str) -> bytes:
        trt, flavour = self.trt, self.flavour
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        major = int(self.version.split(".")[0]) if self.version.split(".")[0].isdigit() else 10
        explicit = 0
        if flavour == "tensorrt" and major < 10:  # TensorRT 8.x (JetPack 5): ONNX needs an explicit-batch network
            explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(explicit)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TgvcError(f"{onnx_path.name}: TensorRT cannot parse it: {errors}")
        config = builder.create_builder_config()
        if precision == "fp16" and flavour == "tensorrt" and hasattr(trt.BuilderFlag, "FP16"):
            config.set_flag(trt.BuilderFlag.FP16)  # tensorrt_rtx is strongly typed: precision comes from the ONNX
        if flavour == "tensorrt_rtx" and self.arch != "portable" and hasattr(trt, "ComputeCapability"):
            # a GPU is here (the key says sm_XY): target it, not the default portable set (which leaves out Turing)
            config.num_compute_capabilities = 1
            config.set_compute_capability(trt.ComputeCapability.CURRENT, 0)
        if self.workspace_mb is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.workspace_mb) << 20)
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
        return bytes(serialized)


def build_engine(onnx_path: Path, shapes: dict[str, list[tuple[int, ...]]], precision: str, out: Path) -> Path:
    """Build one engine into ``out`` (atomically, with its integrity sidecar), bypassing the cache."""
    builder = TrtBuilder()
    key = engine_key(onnx_path, shapes, precision, builder)
    return write_engine(out, builder(onnx_path, shapes, precision), key.__dict__)


def profile_shapes(name: str, max_size: tuple[int, int], profiles: Path | dict | None = None
                   ) -> dict[str, list[tuple[int, ...]]]:
    """Input -> [min, opt, max] shapes of model ``name`` for frames up to ``max_size`` (width, height)."""
    rules = profiles if isinstance(profiles, dict) else load_profiles(profiles)
    if name not in rules:
        raise OptionError(f"no engine profile for model {name!r} (profiles: {', '.join(sorted(rules))})")
    return {inp: resolve_shapes(rule, max_size) for inp, rule in rules[name].items()}


def engine_key(onnx_path: Path, shapes: dict, precision: str, builder) -> EngineKey:
    """The cache key of ``onnx_path`` built by ``builder`` at ``shapes`` and ``precision``."""
    shapes = {inp: [[int(d) for d in s] for s in triple] for inp, triple in shapes.items()}
    return EngineKey(sha256_file(Path(onnx_path)), builder.flavour, builder.version, builder.arch, precision,
                     json.dumps(shapes, sort_keys=True))


def trtexec_shape_flags(shapes: dict) -> list[str]:
    """``--minShapes= --optShapes= --maxShapes=`` arguments of trtexec for ``shapes``."""
    return [f"--{flag}=" + ",".join(f"{inp}:" + "x".join(str(int(d)) for d in triple[i])
                                   for inp, triple in sorted(shapes.items()))
            for i, flag in enumerate(("minShapes", "optShapes", "maxShapes"))]


def adopt_engine(engine_file: str | Path, onnx_path: str | Path, name: str, shapes: dict, precision: str,
                 cache_dir: Path | None = None, builder=None) -> Path:
    """Copy an engine built elsewhere on this machine (e.g. by trtexec, from ``onnx_path`` at ``shapes``)
    into the cache under the key this machine's TensorRT would give it, with its sidecar. TensorRT
    checks nothing here: the engine must have been built by this TensorRT for this GPU."""
    engine_file, onnx_path = Path(engine_file), Path(onnx_path)
    if precision not in ("fp16", "fp32"):
        raise OptionError(f"--precision {precision!r}: choose fp16 or fp32")
    try:
        data = engine_file.read_bytes()
    except OSError as err:
        raise TgvcError(f"{engine_file}: cannot read the engine ({err.strerror})") from None
    key = engine_key(onnx_path, shapes, precision, builder if builder is not None else TrtBuilder())
    return write_engine(Path(cache_dir or DEFAULT_CACHE) / key.filename(name), data, key.__dict__)


def load_or_build(onnx_path: str | Path, name: str, shapes: dict, precision: str, cache_dir: Path | None = None,
                  builder=None, rebuild: bool = False) -> tuple[Path, bytes]:
    """``engine_for`` that also returns the verified engine bytes (what a runner deserializes)."""
    if precision not in ("fp16", "fp32"):
        raise OptionError(f"--precision {precision!r}: choose fp16 or fp32")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TgvcError(f"{onnx_path}: no such ONNX file")
    builder = builder if builder is not None else TrtBuilder()
    key = engine_key(onnx_path, shapes, precision, builder)
    out = Path(cache_dir or DEFAULT_CACHE) / key.filename(name)
    return cached_engine(out, key.__dict__, lambda: builder(onnx_path, shapes, precision), rebuild=rebuild)


def engine_for(onnx_path: str | Path, name: str, shapes: dict, precision: str, cache_dir: Path | None = None,
               builder=None, rebuild: bool = False) -> Path:
    """The cached engine of model ``name`` (``onnx_path`` at ``shapes``, ``precision``): reused when
    it verifies against its sidecar, built otherwise (a changed ONNX file is a new key, so a new
    build; a damaged or truncated engine is rebuilt). ``builder``: see engine_cache.EngineBuilder
    (default ``TrtBuilder()``); ``rebuild``: build even over a cached engine that verifies."""
    return load_or_build(onnx_path, name, shapes, precision, cache_dir, builder, rebuild)[0]


def build_engines(models: str = "default", precision: str = "fp16", max_size: tuple[int, int] = (352, 288),
                  cache_dir: Path | None = None, profiles: Path | None = None, builder=None) -> list[Path]:
    """Build (or find in the cache) one engine per model of the set that has a profile."""
    from ..models import load_model_set

    if precision not in ("fp16", "fp32"):
        raise OptionError(f"--precision {precision!r}: choose fp16 or fp32")
    if not (16 <= max_size[0] <= 8192 and 16 <= max_size[1] <= 8192):
        raise OptionError("--width/--height must be within 16..8192")
    builder = builder if builder is not None else TrtBuilder()
    model_set = load_model_set(models)
    rules = load_profiles(profiles)
    built = []
    for name in rules:
        if not model_set.has(name):
            continue
        onnx_path = model_set.model_path(name, precision)
        built.append(engine_for(onnx_path, name, profile_shapes(name, max_size, rules), precision, cache_dir,
                                builder=builder))
    return built
