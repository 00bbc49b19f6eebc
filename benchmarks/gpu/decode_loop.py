"""GPU check of the decode on the device-resident loop: frames vs the CPU decode, and timings.

Runs the whole decode of a prepared stream (``benchmarks/gpu/prepare.py``) in each of ``--modes``
(default: interp, the default mode, and diffusion with one step) on the same machine:

* the CPU reference: ONNX Runtime on the CPU, the host loop (what ``tgvc-rt decode`` does by default);
* the device loop (``decoder/device_loop.py`` and ``decoder/device_diffusion.py`` on
  ``backends/cuda_device.CudaDevice``: our frame, diffusion and guidance kernels via NVRTC, one CUDA
  stream), its model calls served by the TEST-ONLY torch stand-in (``benchmarks/gpu/torch_standin.py``:
  the exported FP32 ONNX graphs through onnx2torch on the GPU's torch), in FP32 and in FP16 (the same
  graphs cast to half precision by the stand-in: the set's FP16 ONNX variants stay behind when the tree
  is trimmed for the transfer, ``trim.sh``).

For each: frames/s of the whole decode after a warm-up (``--repeat`` timed runs), a profiled run with the
stream synchronised around every stage (host track inputs, uploads, each kernel, the model, the download),
and the frames' difference from the CPU reference (max / mean absolute, PSNR, share within 1 LSB). The
tolerances the result is judged by are in the JSON (``tolerance``). Keyframes come decoded from the
prepared ``keyframes.npz`` (AV1 decoding is CPU work the GPU does not change).

    python benchmarks/gpu/decode_loop.py --data benchmarks/gpu/data --out $OUT
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "runtime"))

try:  # keyframes come decoded: PyAV is not needed (nor, maybe, installed)
    import av  # noqa: F401 - only whether it imports
except ImportError:
    sys.modules["av"] = types.ModuleType("av")

TOLERANCE = {"fp32": {"psnr_db_min": 50.0, "within_1_lsb_min": 0.999},
             "fp16": {"psnr_db_min": 40.0, "within_1_lsb_min": 0.95}}


class CarriedKeyframes:
    """``KeyframeReader``'s interface over keyframes decoded ahead (in stream order)."""

    images: list = []
    sequence = False

    def __init__(self, codec_id, width, height):
        self.next = 0

    def decode(self, payload):
        image = CarriedKeyframes.images[self.next]
        self.next += 1
        return image

    def reset(self):
        pass


def compare(test: np.ndarray, ref: np.ndarray) -> dict:
    d = np.abs(test.astype(np.int16) - ref.astype(np.int16))
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return {"max_abs": int(d.max()), "mean_abs": float(d.mean()), "within_1_lsb": float(np.mean(d <= 1)),
            "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))}


class Profiler:
    """Wraps a device's methods and a model's ``run`` with stream-synchronised timers."""

    def __init__(self, sync):
        self.sync, self.seconds, self.calls = sync, {}, {}

    @contextlib.contextmanager
    def stage(self, name):
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, obj, name, stage):
        plain = getattr(obj, name)

        def timed(*a, **k):
            with self.stage(stage):
                return plain(*a, **k)

        setattr(obj, name, timed)


def run_decode(data: bytes, options, pipeline) -> tuple[np.ndarray, float, object]:
    stats = pipeline.DecodeStats()
    t0 = time.perf_counter()
    frames = np.stack(list(pipeline.iter_decoded_frames(data, options, stats)))
    return frames, time.perf_counter() - t0, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--modes", default="interp,diffusion")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from tgvc_rt import benchrecord
    from tgvc_rt.backends.cuda_device import CudaDevice
    from tgvc_rt.decoder import device_loop, pipeline
    from tgvc_rt.models import load_model_set
    from torch_standin import TorchStandinModel

    import tgvc_rt.models as model_sets

    def verify_present(folder, manifest):  # the trimmed tree lacks the FP16 variants: verify what is there
        present = {k: m for k, m in manifest["models"].items() if (folder / m["file"]).is_file()}
        plain_verify(folder, {"models": {k: {**m, "variants": {v: e for v, e in m.get("variants", {}).items()
                                                               if (folder / e["file"]).is_file()}}
                                         for k, m in present.items()}})

    plain_verify = model_sets.verify_model_set
    model_sets.verify_model_set = verify_present
    carried = np.load(args.data / "keyframes.npz")
    CarriedKeyframes.images = list(carried["images"])
    pipeline.KeyframeReader = CarriedKeyframes
    data = (args.data / "stream.tgv").read_bytes()
    models = load_model_set("default", verify=False)
    result = benchrecord.new_result("gpu_decode_loop", shlex.join(["python", *sys.argv]), settings={
        "clip": str(carried["clip"]), "size": str(carried["size"]), "bpp": float(carried["bpp"]),
        "stream_bytes": len(data), "repeat": args.repeat, "warmup": 1, "cpu_threads": args.threads,
        "model_runtime": "torch-standin (onnx2torch over the exported ONNX graphs; test-only, not the product's "
                         "TensorRT/ONNX Runtime GPU backends)"})
    result["gpu"] = ({"name": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
                      "capability": list(torch.cuda.get_device_capability(0))} if torch.cuda.is_available() else None)
    result["tolerance"] = TOLERANCE

    def emit():
        benchrecord.write_result(args.out / "gpu_decode_loop.json", result)

    for mode in [m for m in args.modes.split(",") if m]:
        check_mode(mode, data, models, args, result, emit, pipeline, device_loop, TorchStandinModel, CudaDevice, torch)


def check_mode(mode, data, models, args, result, emit, pipeline, device_loop, TorchStandinModel, CudaDevice, torch):
    from tgvc_rt import benchrecord
    from tgvc_rt.decoder.diffusion import DiffusionOptions

    def options(**kw):
        opts = pipeline.DecodeOptions(mode=mode, threads=args.threads, **kw)
        if mode == "diffusion":
            opts.diffusion = DiffusionOptions(steps=1, threads=args.threads)
        return opts

    # --- CPU reference (ONNX Runtime CPU, host loop)
    ref_opts = options(device_loop="off")
    run_decode(data, ref_opts, pipeline)  # warm-up
    ref, cpu_s, cpu_stats = run_decode(data, ref_opts, pipeline)
    n = len(ref)
    result["records"].append({"settings": {"mode": mode, "loop": "host", "runtime": "onnxruntime-cpu",
                                           "precision": "fp32"},
                              "frames": n, "fps": n / cpu_s,
                              "stages": {"decode": benchrecord.stage_stats([cpu_s]),
                                         **{f"decode.{k}": benchrecord.stage_stats([v])
                                            for k, v in cpu_stats.seconds.items()}}})
    print(f"{mode} CPU reference: {n} frames in {cpu_s:.2f} s = {n / cpu_s:.1f} frames/s", flush=True)
    emit()

    for precision in [p for p in args.precisions.split(",") if p]:
        half = precision == "fp16"

        def factory(session, device, half=half):
            return TorchStandinModel(session.path, device, session.inputs, session.outputs, half=half)

        opts = options(device_loop="cuda", device_models=factory)
        run_decode(data, opts, pipeline)  # warm-up: NVRTC, graph conversion, allocations
        times, frames, stats = [], None, None
        for _ in range(args.repeat):
            frames, dt, stats = run_decode(data, opts, pipeline)
            times.append(dt)
        record = {"settings": {"mode": mode, "loop": stats.loop, "runtime": "torch-standin", "precision": precision},
                  "frames": n, "fps": n / float(np.median(times)),
                  "vs_cpu": compare(frames, ref),
                  "stages": {"decode": benchrecord.stage_stats(times),
                             **{f"decode.{k}": benchrecord.stage_stats([v]) for k, v in stats.seconds.items()}}}
        tol = TOLERANCE[precision]
        record["within_tolerance"] = (record["vs_cpu"]["psnr_db"] >= tol["psnr_db_min"]
                                      and record["vs_cpu"]["within_1_lsb"] >= tol["within_1_lsb_min"])
        # profiled run: synchronise around every stage of the loop
        prof = Profiler(torch.cuda.synchronize)
        plain_device, plain_inputs = CudaDevice, device_loop.iter_batch_inputs
        ops = ("upload", "write", "zero", "image_input", "flow_upsample", "frame_output", "download", "copy_into",
               "fill", "vae_input", "normalise", "denormalise", "noise_mix", "ddim_step", "residual")

        class ProfiledDevice(CudaDevice):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                for name in ops:
                    prof.wrap(self, name, f"device.{name}")

            def guided_stepper(self, *a, **k):
                stepper = super().guided_stepper(*a, **k)
                prof.wrap(stepper, "step", "device.guided_step")
                return stepper

        def timed_inputs(*a, **k):
            it = plain_inputs(*a, **k)
            while True:
                with prof.stage("host.track_inputs"):
                    batch = next(it, None)
                if batch is None:
                    return
                yield batch

        import tgvc_rt.backends.cuda_device as cuda_device
        cuda_device.CudaDevice = ProfiledDevice
        device_loop.iter_batch_inputs = timed_inputs

        def profiled_factory(session, device, half=half):
            model = TorchStandinModel(session.path, device, session.inputs, session.outputs, half=half)
            prof.wrap(model, "run", f"model.{session.path.stem}")
            return model

        try:
            _, prof_s, _ = run_decode(data, options(device_loop="cuda", device_models=profiled_factory), pipeline)
        finally:
            cuda_device.CudaDevice = plain_device
            device_loop.iter_batch_inputs = plain_inputs
        record["profile"] = {"decode_s": prof_s, "seconds": prof.seconds, "calls": prof.calls,
                             "note": "stream synchronised around every stage: the sum exceeds the unprofiled time"}
        result["records"].append(record)
        print(f"{mode} device loop {precision}: {record['fps']:.1f} frames/s, vs CPU {json.dumps(record['vs_cpu'])}, "
              f"within tolerance: {record['within_tolerance']}", flush=True)
        print("  profile (s): " + ", ".join(f"{k} {v:.3f}/{prof.calls[k]}" for k, v in sorted(prof.seconds.items())),
              flush=True)
        emit()

if __name__ == "__main__":
    main()
