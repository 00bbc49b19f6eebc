"""GPU guidance benchmark: kernel time per guidance step vs NumPy, torch autograd and a UNet step.

    python benchmarks/gpu_guidance.py [--out DIR] [--reps 30] [--legacy OLD.cu]

Window [F=16, C=32, h=40, w=64] (512x320 video), K = 100/500/2000 tracks. A guidance *step* is
loss + dL/dx0 (written to a grad buffer) + the in-place latent update z -= step * grad. Kernel
variants go through tgvc_rt.kernels.launcher (eager: ``CudaGuidance.stepper``'s ready launch, the
per-step path of a sampler loop; ``step_api``: the ``step`` method) on torch's current stream (pointers from torch
tensors, zero copy): the per-window ``prepare`` is timed once, apart; ``step`` is what runs at
every sampler step. Baselines: torch autograd of the same loss over grid_sample (eager and
CUDA-graph replays), either sampling the reference patches every call ("torch_autograd") or with
them precomputed once per window like the kernel ("torch_autograd_prepared"), both with the z
update; and, with --legacy, the previous kernel source (old launch protocol) for a before/after
on the same card. Every variant is checked against the NumPy reference (float64) and run twice
to see if it is bit-reproducible. torch is a benchmark-only dependency. Writes
gpu_guidance_<gpu>.json into --out (default benchmarks/results/).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT / "export"))

import torch  # noqa: E402
import torch.nn.functional as tF  # noqa: E402

from tgvc_rt.diffusion import guidance as ref_guidance  # noqa: E402
from tgvc_rt.kernels import launcher, nvrtc_cache  # noqa: E402

F_, C_, H_, W_ = 16, 32, 40, 64


def make_case(K: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((F_, C_, H_, W_)).astype(np.float32)
    ref = rng.standard_normal((2, C_, H_, W_)).astype(np.float32)
    start = np.stack([rng.uniform(0, W_ - 1, K), rng.uniform(0, H_ - 1, K)], -1)
    vel = rng.normal(0, 0.4, (K, 1, 2))
    pos = (start[:, None, :] + vel * np.arange(F_)[None, :, None]).astype(np.float32)  # drift, some leave
    vis = (rng.uniform(size=(K, F_)) > 0.1).astype(np.float32)
    return x0, ref, pos, vis


def cuda_time_ms(fn, reps: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "stdev_ms": statistics.pstdev(times), "reps": reps}


def graph_time_ms(fn, reps: int, inner: int = 20) -> dict:
    """GPU time of one ``fn`` call: ``inner`` calls captured in a CUDA graph, replays timed."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    t = cuda_time_ms(graph.replay, reps, warmup=2)
    return {f"graph_{k}": (v / inner if k.endswith("_ms") else v) for k, v in t.items()}


def timed(fn, reps: int) -> dict:
    """Eager time (host launch overhead included) and CUDA-graph GPU time of ``fn``."""
    out = cuda_time_ms(fn, reps)
    try:
        out.update(graph_time_ms(fn, reps))
    except Exception as err:  # noqa: BLE001
        out["graph_error"] = f"{type(err).__name__}: {err}"[:300]
    return out


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


class TorchGuidance:
    """The same loss, gradient and update by autograd over grid_sample (zeros padding,
    align_corners=True on latent indices). Constants (tap offsets, grid scale, weights) are made
    once, so the step captures in a CUDA graph; ``prepared`` also samples the reference patches
    once (they are constants of a window, as in the kernel's prepare)."""

    def __init__(self, ref, pos, vis, W, npairs, prepared: bool):
        K, F, _ = pos.shape
        C, h, w = ref.shape[1:]
        dev = ref.device
        off = torch.arange(-2, 3, device=dev, dtype=torch.float32)
        dy, dx = torch.meshgrid(off, off, indexing="ij")
        taps = torch.stack([dx.reshape(-1), dy.reshape(-1)], -1)  # [25, 2]
        scale = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], device=dev)
        self.grid = (pos.permute(1, 0, 2)[:, :, None, :] + taps) * scale - 1.0  # [F, K, 25, 2]
        self.c0 = (W[:, 0:1] * vis.T * vis[:, 0][None, :])[:, None, :, None]
        self.c1 = (W[:, 1:2] * vis.T * vis[:, F - 1][None, :])[:, None, :, None]
        self.ref, self.F, self.norm = ref, F, float(K * npairs * 25 * C)
        self.R = self.refs() if prepared else None

    @staticmethod
    def sample(planes, g):
        return tF.grid_sample(planes, g, mode="bilinear", padding_mode="zeros", align_corners=True)

    def refs(self):
        return self.sample(self.ref[0:1], self.grid[0:1]), self.sample(self.ref[1:2], self.grid[self.F - 1:self.F])

    def __call__(self, x0, z=None, step=0.0):
        x0 = x0.detach().requires_grad_(True)
        R0, R1 = self.R if self.R is not None else self.refs()
        P = self.sample(x0, self.grid)  # [F, C, K, 25]
        L = ((self.c0 * (P - R0).abs()).sum() + (self.c1 * (P - R1).abs()).sum()) / self.norm
        (g,) = torch.autograd.grad(L, x0)
        if z is not None:
            z.sub_(g, alpha=step)
        return L.detach(), g


class LegacyKernel:
    """The previous guidance.cu (one block per (tile, channel, frame) rescanning all tracks, int64
    CAS shared atomics, separate finalize launch), launched with its own protocol."""

    def __init__(self, base: launcher.CudaGuidance, source: Path):
        self.api = base.api
        arch, _ = nvrtc_cache.pick_target(self.api.compute_capability())
        k = nvrtc_cache.cached_compile(arch, (), source_path=source)
        self.module = self.api.load(k.image if not k.is_ptx else k.image.rstrip(b"\0 ") + b"\0")
        self.fn = self.api.function(self.module, "tgvc_guidance_f32")
        self.fin = self.api.function(self.module, "tgvc_guidance_finalize")
        self.ws = self.api.alloc(4 * F_ * C_)

    def __call__(self, x0, ref, pos, vis, K, grad, z, step, loss, stream):
        p, i, f = (lambda v: ctypes.c_void_p(int(v) if v else None)), ctypes.c_int, ctypes.c_float
        smem = 8 * 40 * 64 + 50 * 74 * 4
        self.api.launch(self.fn, (1, C_, F_), (256, 1, 1), smem, stream,
                        [p(x0), p(ref), p(pos), p(vis), i(F_), i(C_), i(H_), i(W_), i(K), i(40), i(64),
                         p(grad), p(z), f(step), p(self.ws)])
        self.api.launch(self.fin, (1, 1, 1), (256, 1, 1), 0, stream, [p(self.ws), i(F_ * C_), i(F_), i(C_), i(K), p(loss)])


def unet_step_times(reps: int, configs: tuple[str, ...] = ("default",)) -> dict:
    try:
        from tgvc_export.unet import build_unet
    except Exception as err:  # noqa: BLE001
        return {"error": f"export/tgvc_export/unet.py not importable: {err}"}
    out = {}
    for config in configs:
        for dt in (torch.float32, torch.float16):
            key = f"{config}_{str(dt).split('.')[-1]}"
            try:
                model = build_unet(config).cuda().eval()  # fp16: autocast (the model keeps fp32 islands)
                params = sum(p.numel() for p in model.parameters())
                sample = torch.randn(1, F_, C_, H_, W_, device="cuda")
                cond = torch.randn(1, F_, 65, H_, W_, device="cuda")
                t = torch.tensor([500.0], device="cuda")
                with torch.inference_mode(), torch.autocast("cuda", dtype=dt, enabled=dt == torch.float16):
                    out[key] = cuda_time_ms(lambda: model(sample, t, cond), max(reps // 3, 5), warmup=3)
                out[key]["params"] = int(params)
                del model
                torch.cuda.empty_cache()
            except Exception as err:  # noqa: BLE001
                out[key] = {"error": f"{type(err).__name__}: {err}"[:300]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--tracks", default="100,500,2000")
    ap.add_argument("--legacy", default=os.environ.get("TGVC_LEGACY_CU", ""), help="previous guidance.cu to time too")
    ap.add_argument("--unet", default="default", help="UNet configs to time (comma separated; '' for none)")
    args = ap.parse_args()
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    t0 = time.time()
    base = launcher.CudaGuidance()
    first_compile_s = time.time() - t0

    def opt(**kw):
        return launcher.CudaGuidance(options=launcher.GuidanceOptions(**kw))

    kernels = {  # name: (launcher, dtype)
        "fixed_f32": (base, "float32"),
        "fixed_f16": (base, "float16"),
        "fixed_f32_rowsplit": (opt(defines=("-DTGVC_MAX_SEGMENTS=5",)), "float32"),  # 5 threads per track at small K
        "fixed_f32_minblocks3": (opt(min_blocks=3), "float32"),
        "fixed_f32_block128": (opt(block=128, min_blocks=8), "float32"),
        "fixed_f32_tile20x64": (opt(tile_h=20, tile_w=64), "float32"),
    }
    legacy, legacy_error = None, None
    if args.legacy and Path(args.legacy).is_file():
        try:
            legacy = LegacyKernel(base, Path(args.legacy))
        except Exception as err:  # noqa: BLE001
            legacy_error = f"{type(err).__name__}: {err}"[:300]
    result = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
              "cuda_api": base.api.name, "kernel_arch": base.kernel.arch, "first_compile_s": first_compile_s,
              "shape": [F_, C_, H_, W_], "reps": args.reps, "step": "loss + grad + z update", "legacy": args.legacy or None,
              "legacy_error": legacy_error, "tracks": {}}
    W = torch.tensor(ref_guidance.reference_weights(F_), device=dev)
    npairs = ref_guidance.num_pairs(F_)
    stream = lambda: torch.cuda.current_stream().cuda_stream  # noqa: E731
    for K in (int(k) for k in args.tracks.split(",")):
        x0, ref, pos, vis = make_case(K, seed=K)
        row = {}
        t = time.perf_counter()
        plan = ref_guidance.plan_guidance(pos, vis, x0.shape)
        row["numpy_plan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ref_guidance.guidance_step(plan, x0, ref)
        row["numpy_step_ms"] = 1e3 * (time.perf_counter() - t)
        loss64, grad64 = ref_guidance.guidance_loss_and_grad(x0.astype(np.float64), ref.astype(np.float64), pos, vis, dtype=np.float64)
        tx0, tref = torch.from_numpy(x0).to(dev), torch.from_numpy(ref).to(dev)
        tpos, tvis = torch.from_numpy(pos).to(dev), torch.from_numpy(vis).to(dev)
        zf32 = torch.randn(F_, C_, H_, W_, device=dev)
        for name, prepared in (("torch_autograd", False), ("torch_autograd_prepared", True)):
            try:
                tg_ = TorchGuidance(tref, tpos, tvis, W, npairs, prepared)
                tl, tg = tg_(tx0)
                zt = zf32.clone()
                row[name] = timed(lambda: tg_(tx0, zt, 1e-3), args.reps)
                row[name].update(loss_rel=abs(float(tl) - loss64) / loss64, grad_rel=rel(tg.cpu().numpy(), grad64))
            except Exception as err:  # noqa: BLE001
                row[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
        for name, (cg, dtype) in kernels.items():
            td = torch.float32 if dtype == "float32" else torch.float16
            gx0, gref, z = tx0.to(td), tref.to(td), zf32.to(td)
            grad = torch.empty(F_, C_, H_, W_, device=dev)
            loss = torch.empty(1, device=dev)
            try:
                t = time.perf_counter()
                dplan = cg.prepare(gref.data_ptr(), tpos.data_ptr(), tvis.data_ptr(), (F_, C_, H_, W_), K, dtype=dtype,
                                   stream=stream())
                torch.cuda.synchronize()
                first_prepare_ms = 1e3 * (time.perf_counter() - t)
                prep = cuda_time_ms(lambda: cg.prepare(gref.data_ptr(), tpos.data_ptr(), tvis.data_ptr(), (F_, C_, H_, W_), K,
                                                       dtype=dtype, stream=stream(), plan=dplan), 10, warmup=2)

                # the per-step path a sampler loop with fixed buffers uses: a ready launch (stepper)
                # (bound to one stream: the CUDA-graph capture, on another stream, goes through step())
                fast_stream = stream()
                fast = cg.stepper(dplan, gx0.data_ptr(), grad=grad.data_ptr(), z=z.data_ptr(), loss=loss.data_ptr(),
                                  stream=fast_stream)

                def run(with_z=True):
                    s = stream()
                    if with_z and s == fast_stream:
                        fast(1e-3)
                        return
                    cg.step(dplan, gx0.data_ptr(), grad=grad.data_ptr(), z=z.data_ptr() if with_z else 0, step=1e-3,
                            loss=loss.data_ptr(), stream=s)
                outs = []
                for _ in range(2):
                    grad.fill_(float("nan"))
                    run(False)
                    torch.cuda.synchronize()
                    outs.append((grad.cpu().numpy().copy(), float(loss.item())))
                timing = timed(run, args.reps)
                timing["step_api"] = cuda_time_ms(lambda: cg.step(dplan, gx0.data_ptr(), grad=grad.data_ptr(), z=z.data_ptr(),
                                                                   step=1e-3, loss=loss.data_ptr(), stream=stream()), args.reps)
                timing.update(grad_rel=rel(outs[0][0], grad64), loss_rel=abs(outs[0][1] - loss64) / loss64,
                              bit_reproducible=bool(np.array_equal(outs[0][0], outs[1][0]) and outs[0][1] == outs[1][1]),
                              prepare_ms=prep["median_ms"], first_prepare_ms=first_prepare_ms)
                cg.free_plan(dplan)
            except Exception as err:  # noqa: BLE001
                timing = {"error": f"{type(err).__name__}: {err}"[:300]}
            row[name] = timing
        if legacy is not None:
            grad, loss, z = torch.empty_like(tx0), torch.empty(1, device=dev), zf32.clone()
            try:
                def run_legacy(with_z=True):
                    legacy(tx0.data_ptr(), tref.data_ptr(), tpos.data_ptr(), tvis.data_ptr(), K, grad.data_ptr(),
                           z.data_ptr() if with_z else 0, 1e-3, loss.data_ptr(), stream())
                run_legacy(False)
                torch.cuda.synchronize()
                g1, l1 = grad.cpu().numpy().copy(), float(loss.item())
                row["legacy_f32"] = timed(run_legacy, args.reps)
                row["legacy_f32"].update(grad_rel=rel(g1, grad64), loss_rel=abs(l1 - loss64) / loss64)
            except Exception as err:  # noqa: BLE001
                row["legacy_f32"] = {"error": f"{type(err).__name__}: {err}"[:300]}
        k = row.get("fixed_f32", {})
        for tname in ("torch_autograd", "torch_autograd_prepared", "legacy_f32"):
            tr = row.get(tname, {})
            for metric in ("median_ms", "graph_median_ms"):
                if metric in k and metric in tr:
                    row[f"speedup_vs_{tname}_{'graph' if metric.startswith('graph') else 'eager'}"] = tr[metric] / k[metric]
        if "median_ms" in k:
            row["speedup_vs_numpy_step"] = row["numpy_step_ms"] / k["median_ms"]
        result["tracks"][str(K)] = row
        print(f"K={K}: " + ", ".join(f"{n} {v['median_ms']:.4f}/{v.get('graph_median_ms', float('nan')):.4f} ms"
                                      for n, v in row.items() if isinstance(v, dict) and "median_ms" in v)
              + f", numpy step {row['numpy_step_ms']:.1f} ms", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "_", gpu.lower()).strip("_")
    path = out / f"gpu_guidance_{slug}.json"
    path.write_text(json.dumps(result, indent=1))  # kept if the UNet part runs out of time
    result["unet_step"] = unet_step_times(args.reps, tuple(c for c in args.unet.split(",") if c))
    shares = {}
    for key, u in result["unet_step"].items():
        if isinstance(u, dict) and "median_ms" in u:
            for K, row in result["tracks"].items():
                kname = "fixed_f16" if key.endswith("float16") else "fixed_f32"
                for metric in ("median_ms", "graph_median_ms"):
                    if metric in row.get(kname, {}):
                        shares[f"{key}_K{K}_{metric}"] = row[kname][metric] / u["median_ms"]
    result["kernel_share_of_unet_step"] = shares
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps({"unet_step": result["unet_step"], "share": shares}, indent=1))
    table = ["| K | kernel eager / graph ms | torch eager / graph ms | torch prepared eager / graph ms | legacy eager / graph ms | x torch (eager, graph) | share of UNet fp32 |"]
    f2 = lambda r: f"{r.get('median_ms', float('nan')):.4f} / {r.get('graph_median_ms', float('nan')):.4f}"  # noqa: E731
    for K, row in result["tracks"].items():
        table.append(f"| {K} | {f2(row.get('fixed_f32', {}))} | {f2(row.get('torch_autograd', {}))} | "
                     f"{f2(row.get('torch_autograd_prepared', {}))} | {f2(row.get('legacy_f32', {}))} | "
                     f"{row.get('speedup_vs_torch_autograd_eager', float('nan')):.1f}, {row.get('speedup_vs_torch_autograd_graph', float('nan')):.1f} | "
                     f"{shares.get(f'default_float32_K{K}_median_ms', float('nan')):.4f} |")
    print("\n".join(table))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
