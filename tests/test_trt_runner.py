"""The TensorRT runner: its logic against a fake TensorRT and a fake CUDA binding (always), the real thing on a
GPU (``gpu`` mark: skipped unless TensorRT, cuda-python and a GPU are all present)."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tgvc_rt.backends import trt_runner
from tgvc_rt.backends.cuda import DeviceBuffer
from tgvc_rt.backends.trt import load_or_build, profile_shapes
from tgvc_rt.backends.trt_runner import EngineLoadError, TrtSession, open_trt_session, tensorrt_status
from tgvc_rt.errors import TgvcError

sys.path.insert(0, str(Path(__file__).parent))
from onnx_fixtures import build_tiny_model_set  # noqa: E402

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


# ---- fakes: a CUDA binding over host memory and a TensorRT whose engine computes y = 2 x ---------------------
class FakeApi:
    """kernels.cuda_api's interface over a dict of host byte arrays."""

    def __init__(self):
        self.mem, self.next, self.allocs, self.streams = {}, 4096, 0, []

    def alloc(self, nbytes):
        ptr, self.next = self.next, self.next + max(nbytes, 1) + 256
        self.mem[ptr] = bytearray(max(nbytes, 1))
        self.allocs += 1
        return ptr

    def free(self, ptr):
        del self.mem[ptr]

    def h2d(self, ptr, array, stream=0):
        data = np.ascontiguousarray(array).tobytes()
        self.mem[ptr][:len(data)] = data

    def d2h(self, array, ptr, stream=0):
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(self.mem[ptr][:array.nbytes]), np.uint8)

    def sync(self, stream=0):
        pass

    def stream_create(self):
        self.streams.append(77)
        return 77

    def stream_destroy(self, stream):
        self.streams.remove(stream)


class FakeContext:
    def __init__(self, api, engine):
        self.api, self.engine, self.shapes, self.addr, self.profile, self.runs = api, engine, {}, {}, 0, 0

    def set_optimization_profile_async(self, p, stream):
        self.profile = p
        return True

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.get_tensor_profile_shape(name, self.profile)
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes.get("x", (-1, 4))

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream):
        n = int(np.prod(self.shapes["x"]))
        x = np.frombuffer(bytes(self.api.mem[self.addr["x"]][:2 * n]), np.float16)
        y = (2 * x.astype(np.float32)).astype(np.float16).tobytes()
        self.api.mem[self.addr["y"]][:len(y)] = y
        self.runs += 1
        return True


class FakeEngine:
    """x [N, 4] fp16 -> y [N, 4] fp16; profile 0 takes N in 1..4, profile 1 N in 5..8."""

    num_io_tensors, num_optimization_profiles = 2, 2
    PROFILES = [[(1, 4), (2, 4), (4, 4)], [(5, 4), (8, 4), (8, 4)]]

    def __init__(self, api):
        self.api, self.contexts = api, []

    def get_tensor_name(self, i):
        return ["x", "y"][i]

    def get_tensor_mode(self, name):
        return FakeTrt.TensorIOMode.INPUT if name == "x" else FakeTrt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return SimpleNamespace(name="HALF")

    def get_tensor_profile_shape(self, name, p):
        return self.PROFILES[p]

    def create_execution_context(self):
        self.contexts.append(FakeContext(self.api, self))
        return self.contexts[-1]


class FakeTrt:
    __name__, __version__ = "fake_trt", "0.1"
    TensorIOMode = SimpleNamespace(INPUT="in", OUTPUT="out")
    api = None

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return FakeEngine(FakeTrt.api) if data == b"fake engine" else None


@pytest.fixture
def fake(monkeypatch):
    api = FakeApi()
    monkeypatch.setattr(FakeTrt, "api", api)
    monkeypatch.setattr(trt_runner, "import_tensorrt", lambda: (FakeTrt, "tensorrt"))
    return api


def test_session_reads_the_engine_io(fake):
    s = TrtSession(b"fake engine", api=fake)
    assert s.inputs == ["x"] and s.outputs == ["y"] and s.device == "tensorrt"
    assert s.dtypes == {"x": np.float16, "y": np.float16}
    assert len(s.contexts) == 2 and [c.profile for c in s.contexts] == [0, 1]  # one context per profile
    assert s.output_shapes({"x": (3, 4)}) == {"y": (3, 4)}
    with pytest.raises(TgvcError, match="outside the engine's profiles"):
        s.output_shapes({"x": (9, 4)})
    with pytest.raises(TgvcError, match="missing x"):
        s.output_shapes({"z": (3, 4)})
    s.close()
    assert fake.streams == []


def test_run_converts_dtypes_and_reuses_buffers(fake):
    s = TrtSession(b"fake engine", api=fake, max_shapes=2)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = s.run({"x": x})["y"]
    assert y.dtype == np.float32 and np.array_equal(y, 2 * x)  # fp16 boundary converted both ways
    allocs = fake.allocs
    assert np.array_equal(s.run({"x": x + 1})["y"], 2 * (x + 1)) and fake.allocs == allocs  # same shapes: reused
    big = np.ones((6, 4), np.float32)
    assert np.array_equal(s.run({"x": big})["y"], 2 * big)  # N = 6: the second profile's context
    assert s.contexts[1].runs == 1 and s.contexts[0].runs == 2
    s.run({"x": np.ones((2, 4), np.float32)})  # a third signature: the oldest one's buffers are freed
    assert len(s._buffers) == 2 and len(fake.mem) == 4
    s.close()
    assert fake.mem == {}


def test_run_device_checks_dtypes_and_shapes(fake):
    s = TrtSession(b"fake engine", api=fake)
    x = DeviceBuffer.from_host(fake, np.full((2, 4), 3, np.float16))
    y = DeviceBuffer.empty(fake, (2, 4), np.float16)
    s.run_device({"x": x}, {"y": y}, stream=5)
    assert np.array_equal(y.to_host(), np.full((2, 4), 6, np.float16))
    with pytest.raises(TgvcError, match="x is float32, the engine takes float16"):
        s.run_device({"x": DeviceBuffer.empty(fake, (2, 4), np.float32)}, {"y": y}, stream=5)
    with pytest.raises(TgvcError, match=r"output y buffer is \(3, 4\), the engine gives \(2, 4\)"):
        s.run_device({"x": x}, {"y": DeviceBuffer.empty(fake, (3, 4), np.float16)}, stream=5)
    with pytest.raises(TgvcError, match="outputs must be y"):
        s.run_device({"x": x}, {}, stream=5)
    s.close()


class FakeRuntimeCache:
    def __init__(self):
        self.blob = b""

    def deserialize(self, blob):
        self.blob = bytes(blob)
        return blob.startswith(b"jit")

    def serialize(self):
        return self.blob + b"jit kernels;"


class FakeRtxEngine(FakeEngine):
    """TensorRT-RTX's way to make a context: a runtime config carrying the JIT runtime cache."""

    def create_runtime_config(self):
        config = SimpleNamespace(cache=None, create_runtime_cache=FakeRuntimeCache)
        config.set_runtime_cache = lambda cache: setattr(config, "cache", cache) or True
        return config

    def create_execution_context(self, runtime_config=None):
        assert runtime_config is not None and runtime_config.cache is not None
        self.caches = getattr(self, "caches", []) + [runtime_config.cache]
        return super().create_execution_context()


def test_rtx_jit_cache_is_kept_beside_the_engine(fake, monkeypatch, tmp_path):
    monkeypatch.setattr(trt_runner, "import_tensorrt", lambda: (FakeTrt, "tensorrt_rtx"))
    monkeypatch.setattr(FakeTrt.Runtime, "deserialize_cuda_engine", lambda self, data: FakeRtxEngine(fake))
    jit = tmp_path / "m.jitcache"
    s = TrtSession(b"fake engine", api=fake, runtime_cache=jit)
    assert len(s.engine.caches) == 2 and s.engine.caches[0] is s.engine.caches[1]  # one cache for all profiles
    assert np.array_equal(s.run({"x": np.ones((2, 4), np.float32)})["y"], np.full((2, 4), 2, np.float32))
    s.close()
    assert jit.read_bytes() == b"jit kernels;"
    s = TrtSession(b"fake engine", api=fake, runtime_cache=jit)
    assert s.engine.caches[0].blob == b"jit kernels;"  # read back on the next open
    s.close()
    assert jit.read_bytes() == b"jit kernels;jit kernels;"


def test_undeserializable_engine(fake):
    with pytest.raises(EngineLoadError, match="could not deserialize"):
        TrtSession(b"junk", api=fake, label="m.engine")


class CountingBuilder:
    flavour, version, arch = "fake", "0.1", "portable"

    def __init__(self):
        self.calls = 0

    def __call__(self, onnx_path, shapes, precision):
        self.calls += 1
        return b"engine %d" % self.calls


def test_open_rebuilds_once_when_the_engine_does_not_load(tmp_path, monkeypatch):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx")
    loads = []

    class Session:
        def __init__(self, data, api=None, runtime_cache=None, label=None):
            loads.append(data)
            if data == b"engine 1":
                raise EngineLoadError(f"{label}: TensorRT could not deserialize the engine")

    monkeypatch.setattr(trt_runner, "TrtSession", Session)
    builder = CountingBuilder()
    shapes = {"x": [(1, 4), (2, 4), (4, 4)]}
    open_trt_session(onnx, "m", shapes, "fp32", tmp_path / "cache", builder=builder, api=FakeApi())
    assert loads == [b"engine 1", b"engine 2"] and builder.calls == 2
    open_trt_session(onnx, "m", shapes, "fp32", tmp_path / "cache", builder=builder, api=FakeApi())
    assert loads[-1] == b"engine 2" and builder.calls == 2  # the rebuilt engine is cached

    monkeypatch.setattr(builder, "calls", 0)
    onnx.write_bytes(b"other onnx")
    monkeypatch.setattr(CountingBuilder, "__call__", lambda self, *a: b"engine 1")  # never loads
    with pytest.raises(TgvcError, match="even after a rebuild"):
        open_trt_session(onnx, "m", shapes, "fp32", tmp_path / "cache", builder=builder, api=FakeApi())


def test_open_takes_the_profile_shapes_for_max_size(tmp_path, monkeypatch):
    models = build_tiny_model_set(tmp_path / "tiny")
    seen = {}

    class Builder(CountingBuilder):
        def __call__(self, onnx_path, shapes, precision):
            seen.update(shapes)
            return b"engine"

    monkeypatch.setattr(trt_runner, "TrtSession", lambda data, **kw: kw["runtime_cache"])
    jit = open_trt_session(models / "vae_decoder.onnx", "vae_decoder", precision="fp32", cache_dir=tmp_path / "c",
                           max_size=(64, 48), builder=Builder(), api=FakeApi())
    assert seen == profile_shapes("vae_decoder", (64, 48))
    assert jit.suffix == ".jitcache" and jit.parent == tmp_path / "c"


# ---- status and imports --------------------------------------------------------------------------------------
def test_import_needs_neither_tensorrt_nor_cuda():
    code = ("import sys\n"
            "for m in ('tensorrt', 'tensorrt_rtx', 'cuda', 'pycuda'): sys.modules[m] = None  # importing them fails\n"
            "import tgvc_rt.backends.trt_runner as r\n"
            "ok, why = r.tensorrt_status()\n"
            "assert ok is False and why.startswith('TensorRT is not installed'), why\n"
            "print('fine')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=RUNTIME,
                         env={"PYTHONPATH": str(RUNTIME), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "fine" in out.stdout, out.stderr


def test_status_never_raises_and_says_why(monkeypatch):
    ok, why = tensorrt_status()
    assert isinstance(ok, bool) and isinstance(why, str) and why
    monkeypatch.setattr(trt_runner, "import_tensorrt", lambda: (SimpleNamespace(__version__="9"), "tensorrt"))
    from tgvc_rt.kernels import cuda_api

    def driver(init=0, count=1):
        return SimpleNamespace(cuInit=lambda flags: (init,), cuDeviceGetCount=lambda: (0, count))
    monkeypatch.setattr(cuda_api, "import_driver", lambda: driver(init=100))
    assert tensorrt_status() == (False, "no usable CUDA driver (100)")
    monkeypatch.setattr(cuda_api, "import_driver", lambda: driver(count=0))
    assert tensorrt_status() == (False, "no NVIDIA GPU found")
    monkeypatch.setattr(cuda_api, "import_driver", lambda: driver())
    assert tensorrt_status() == (True, "tensorrt 9, 1 GPU(s)")

    def broken():
        raise cuda_api.CudaUnavailable("cuda-python is not installed")
    monkeypatch.setattr(cuda_api, "import_driver", broken)
    assert tensorrt_status()[0] is False and "cuda-python" in tensorrt_status()[1]


def _cuda_opens() -> bool:
    try:
        from tgvc_rt.kernels.cuda_api import open_api

        open_api()
        return True
    except TgvcError:
        return False


@pytest.mark.skipif(_cuda_opens(), reason="a CUDA binding and GPU are here")
def test_open_without_gpu_fails_clearly_before_building(tmp_path):
    """No GPU (this project's CI): a one-line error, and no engine built for nothing."""
    models = build_tiny_model_set(tmp_path / "tiny")
    with pytest.raises(TgvcError) as err:
        open_trt_session(models / "vae_encoder.onnx", "vae_encoder", precision="fp32", cache_dir=tmp_path / "c",
                         max_size=(64, 48), builder=CountingBuilder())
    assert "\n" not in str(err.value) and not (tmp_path / "c").exists()


# ---- the real runner on a GPU ---------------------------------------------------------------------------------
def _feeds(name, rng):
    if name == "vae_encoder":
        return {"image": rng.random((2, 3, 48, 64), dtype=np.float32)}
    if name == "vae_decoder":
        return {"latent": rng.standard_normal((2, 32, 6, 8)).astype(np.float32)}
    return {"sample": rng.standard_normal((1, 3, 32, 6, 8)).astype(np.float32), "timestep": np.array([500], np.float32),
            "cond": rng.standard_normal((1, 3, 65, 6, 8)).astype(np.float32)}


@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_status()[0], reason=f"TensorRT runner unusable here: {tensorrt_status()[1]}")
@pytest.mark.parametrize("name", ["vae_encoder", "vae_decoder", "unet"])
def test_trt_session_matches_onnxruntime_cpu(tmp_path, name):
    from tgvc_rt.backends.ort import OrtSession

    models = build_tiny_model_set(tmp_path / "tiny")
    onnx = models / f"{name}.onnx"
    feeds = _feeds(name, np.random.default_rng(3))
    want = OrtSession(onnx, device="cpu").run(feeds)
    with open_trt_session(onnx, name, precision="fp32", cache_dir=tmp_path / "c", max_size=(64, 48)) as s:
        got = s.run(feeds)
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-3, rtol=0)
        again = s.run(feeds)  # reused buffers, same answer
        for k in want:
            np.testing.assert_allclose(again[k], want[k], atol=1e-3, rtol=0)
        # zero copy: our device buffers, our stream
        ins = {k: DeviceBuffer.from_host(s.api, v) for k, v in feeds.items()}
        outs = {k: DeviceBuffer.empty(s.api, shape, s.dtypes[k])
                for k, shape in s.output_shapes({k: v.shape for k, v in feeds.items()}).items()}
        stream = s.api.stream_create()
        s.run_device(ins, outs, stream)
        s.api.sync(stream)
        for k in want:
            np.testing.assert_allclose(outs[k].to_host(), want[k], atol=1e-3, rtol=0)
        s.api.stream_destroy(stream)
        for buf in (*ins.values(), *outs.values()):
            buf.free()
    path, _ = load_or_build(onnx, name, profile_shapes(name, (64, 48)), "fp32", tmp_path / "c")
    assert path.is_file()  # cached: the second open is a hit
