"""GPU guidance benchmark: kernel time per guidance step vs NumPy, torch autograd and a UNet step.

    python benchmarks/gpu_guidance.py [--out DIR] [--reps 50]

Window [F=16, C=32, h=40, w=64] (512x320 video), K = 100/500/2000 tracks. Kernel variants (all
through tgvc_rt.kernels.launcher on torch's current stream, pointers from torch tensors, zero
copy): fixed (default: int64 shared accumulators, deterministic), fixed fp16, float_smem (float
shared atomics), scatter (global float atomics), tile shapes and register caps. Each variant is
checked against the NumPy reference (float64) and run twice to see if it is bit-reproducible.
torch is a benchmark-only dependency. Writes gpu_guidance_<gpu>.json into --out (default
benchmarks/results/).
"""
from __future__ import annotations

import argparse
import json
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
from tgvc_rt.kernels import launcher  # noqa: E402

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


def torch_loss_grad(x0, ref, pos, vis, W, npairs):
    """Autograd over grid_sample (zeros padding, align_corners=True on latent indices)."""
    x0 = x0.detach().requires_grad_(True)
    K, F, _ = pos.shape
    C, h, w = x0.shape[1:]
    off = torch.arange(-2, 3, device=x0.device, dtype=torch.float32)
    dy, dx = torch.meshgrid(off, off, indexing="ij")
    taps = torch.stack([dx.reshape(-1), dy.reshape(-1)], -1)  # [25, 2]
    pts = pos.permute(1, 0, 2)[:, :, None, :] + taps  # [F, K, 25, 2]
    scale = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], device=x0.device)
    grid = pts * scale - 1.0

    def sample(planes, g):
        return tF.grid_sample(planes, g.to(planes.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)

    P = sample(x0, grid)  # [F, C, K, 25]
    R0, R1 = sample(ref[0:1], grid[0:1]), sample(ref[1:2], grid[F - 1:F])
    c0 = W[:, 0:1] * vis.T * vis[:, 0][None, :]
    c1 = W[:, 1:2] * vis.T * vis[:, F - 1][None, :]
    L = ((c0[:, None, :, None] * (P - R0).abs()).sum() + (c1[:, None, :, None] * (P - R1).abs()).sum())
    L = L / (K * npairs * 25 * C)
    L.backward()
    return L.detach(), x0.grad


def unet_step_times(reps: int) -> dict:
    try:
        from tgvc_export.unet import build_unet
    except Exception as err:  # noqa: BLE001
        return {"error": f"export/tgvc_export/unet.py not importable: {err}"}
    out = {}
    for config in ("default", "large"):
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
    args = ap.parse_args()
    dev = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    t0 = time.time()
    base = launcher.CudaGuidance()
    first_compile_s = time.time() - t0
    def opt(**kw):
        return launcher.CudaGuidance(options=launcher.GuidanceOptions(**kw))

    mb2, mb3 = ("-DTGVC_MIN_BLOCKS=2",), ("-DTGVC_MIN_BLOCKS=3",)
    kernels = {
        "fixed_f32": (base, "fixed", "float32"),
        "fixed_f16": (base, "fixed", "float16"),
        "float_smem_f32": (base, "float_smem", "float32"),
        "scatter_f32": (base, "scatter", "float32"),
        "fixed_f32_minblocks1": (opt(defines=("-DTGVC_MIN_BLOCKS=1",)), "fixed", "float32"),
        "fixed_f32_minblocks3": (opt(defines=mb3), "fixed", "float32"),
        "fixed_f32_tile40x64": (opt(tile_h=40, tile_w=64), "fixed", "float32"),
        "fixed_f32_tile40x64_minblocks3": (opt(tile_h=40, tile_w=64, defines=mb3), "fixed", "float32"),
        "fixed_f32_tile16x64": (opt(tile_h=16, tile_w=64), "fixed", "float32"),
    }
    result = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
              "cuda_api": base.api.name, "kernel_arch": base.kernel.arch, "first_compile_s": first_compile_s,
              "shape": [F_, C_, H_, W_], "reps": args.reps, "tracks": {}}
    W = torch.tensor(ref_guidance.reference_weights(F_), device=dev)
    npairs = ref_guidance.num_pairs(F_)
    for K in (int(k) for k in args.tracks.split(",")):
        x0, ref, pos, vis = make_case(K, seed=K)
        row = {}
        t = time.perf_counter()
        plan = ref_guidance.plan_guidance(pos, vis, x0.shape)
        row["numpy_plan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        loss_np, grad_np = ref_guidance.guidance_step(plan, x0, ref)
        row["numpy_step_ms"] = 1e3 * (time.perf_counter() - t)
        loss64, grad64 = ref_guidance.guidance_loss_and_grad(x0.astype(np.float64), ref.astype(np.float64), pos, vis, dtype=np.float64)
        tx0, tref = torch.from_numpy(x0).to(dev), torch.from_numpy(ref).to(dev)
        tpos, tvis = torch.from_numpy(pos).to(dev), torch.from_numpy(vis).to(dev)
        try:
            tl, tg = torch_loss_grad(tx0, tref, tpos, tvis, W, npairs)
            row["torch_autograd"] = timed(lambda: torch_loss_grad(tx0, tref, tpos, tvis, W, npairs), args.reps)
            row["torch_autograd"].update(loss_rel=abs(float(tl) - loss64) / loss64, grad_rel=rel(tg.cpu().numpy(), grad64))
        except Exception as err:  # noqa: BLE001
            row["torch_autograd"] = {"error": f"{type(err).__name__}: {err}"[:300]}
        zf32 = torch.randn(F_, C_, H_, W_, device=dev)
        for name, (cg, variant, dtype) in kernels.items():
            td = torch.float32 if dtype == "float32" else torch.float16
            gx0, gref, z = tx0.to(td), tref.to(td), zf32.to(td)
            grad = torch.empty(F_, C_, H_, W_, device=dev)
            loss = torch.empty(1, device=dev)

            def run(with_z=True):
                cg.guidance(gx0.data_ptr(), gref.data_ptr(), tpos.data_ptr(), tvis.data_ptr(), (F_, C_, H_, W_), K,
                            dtype=dtype, grad=grad.data_ptr(), z=z.data_ptr() if with_z else 0, step=1e-3,
                            loss=loss.data_ptr(), stream=torch.cuda.current_stream().cuda_stream, variant=variant)
            try:
                run(False)
                torch.cuda.synchronize()
                g1, l1 = grad.cpu().numpy().copy(), float(loss.item())
                run(False)
                torch.cuda.synchronize()
                g2, l2 = grad.cpu().numpy(), float(loss.item())
                timing = timed(run, args.reps)
                timing.update(grad_rel=rel(g1, grad64), loss_rel=abs(l1 - loss64) / loss64,
                              bit_reproducible=bool(np.array_equal(g1, g2) and l1 == l2))
            except Exception as err:  # noqa: BLE001
                timing = {"error": f"{type(err).__name__}: {err}"[:300]}
            row[name] = timing
        if "median_ms" in row.get("fixed_f32", {}) and "median_ms" in row["torch_autograd"]:
            row["speedup_vs_torch"] = row["torch_autograd"]["median_ms"] / row["fixed_f32"]["median_ms"]
            if "graph_median_ms" in row["fixed_f32"] and "graph_median_ms" in row["torch_autograd"]:
                row["speedup_vs_torch_graph"] = (row["torch_autograd"]["graph_median_ms"]
                                                 / row["fixed_f32"]["graph_median_ms"])
            row["speedup_vs_numpy_step"] = row["numpy_step_ms"] / row["fixed_f32"]["median_ms"]
        result["tracks"][str(K)] = row
        print(f"K={K}: " + ", ".join(f"{k} {v['median_ms']:.4f}/{v.get('graph_median_ms', float('nan')):.4f} ms" for k, v in row.items()
                                      if isinstance(v, dict) and "median_ms" in v) + f", numpy step {row['numpy_step_ms']:.1f} ms", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "_", gpu.lower()).strip("_")
    path = out / f"gpu_guidance_{slug}.json"
    path.write_text(json.dumps(result, indent=1))  # kept if the UNet part runs out of time
    result["unet_step"] = unet_step_times(args.reps)
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
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
