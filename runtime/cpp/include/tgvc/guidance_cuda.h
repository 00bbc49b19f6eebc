// Host launchers of the CUDA guidance kernels (defined in runtime/tgvc_rt/kernels/guidance.cu,
// compiled by nvcc into libtgvc when CMake finds a CUDA toolkit; TGVC_HAVE_CUDA is then defined).
// All take device pointers, enqueue on `stream` and return a cudaError_t as int (0 = success).
#pragma once

#include <cstddef>

#ifdef TGVC_HAVE_CUDA
#include <cuda_runtime.h>

extern "C" {
// Dynamic shared memory of one guidance step block (staged x0 + fixed-point accumulators).
size_t tgvc_guidance_smem_bytes(int tile_h, int tile_w);
// Balanced tile of at most 40 x 64 latent pixels.
void tgvc_guidance_default_tile(int h, int w, int* tile_h, int* tile_w);
// Floats of device workspace the calls below need for K tracks (K <= 65536).
size_t tgvc_guidance_workspace_floats(int F, int C, int h, int w, int K);
// Once per window: track records and reference taps into `workspace` (ref [2,C,h,w] of dtype,
// pos [K,F,2], vis [K,F] in [0, 1]; these are constants of the window).
int tgvc_cuda_guidance_prepare(int dtype, const void* ref, const float* pos, const float* vis,
                               int F, int C, int h, int w, int K, float* workspace,
                               cudaStream_t stream);
// Every sampler step (one launch), on a prepared workspace: L and dL/dx0 of docs/guidance.md.
// dtype 0: fp32 x0/z, 1: fp16. grad (fp32, [F,C,h,w]), z (latent updated as z -= step * grad)
// and loss (1 float) may each be NULL. step = s * N * (1 - abar_t) / sqrt(abar_t).
// Deterministic (bit-identical across runs).
int tgvc_cuda_guidance_step(int dtype, const void* x0, int F, int C, int h, int w, int K,
                            float* grad, void* z, float step, float* loss, float* workspace,
                            cudaStream_t stream);
// prepare + step in one call.
int tgvc_cuda_guidance(int dtype, const void* x0, const void* ref, const float* pos,
                       const float* vis, int F, int C, int h, int w, int K, float* grad, void* z,
                       float step, float* loss, float* workspace, cudaStream_t stream);
// out = a * x + b * y (DDIM step / x0 prediction), n elements of dtype 0 (fp32) or 1 (fp16).
int tgvc_cuda_axpby(int dtype, const void* x, const void* y, void* out, long long n, float a,
                    float b, cudaStream_t stream);
// to_half != 0: fp32 -> fp16, else fp16 -> fp32.
int tgvc_cuda_convert(int to_half, const void* src, void* dst, long long n, cudaStream_t stream);
}
#endif
