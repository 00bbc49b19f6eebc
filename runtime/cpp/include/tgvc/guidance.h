// CPU reference of the trajectory-guidance loss and gradient (docs/guidance.md), the contract the
// CUDA kernel (runtime/tgvc_rt/kernels/guidance.cu) and the NumPy reference also follow.
#pragma once

#include <cstddef>

namespace tgvc {

// Latent window shape: x0 [F, C, h, w]; ref [2, C, h, w]; pos [K, F, 2] (latent u, v); vis [K, F].
struct GuidanceShape {
    int F = 0, C = 0, h = 0, w = 0, K = 0;
    std::size_t latent_size() const { return (std::size_t)F * C * h * w; }
};

// W[f, 0], W[f, 1] (pull towards the first / last keyframe of the window).
void pair_weights(int f, int F, float* w0, float* w1);

// Npairs = #{(f, r) : W[f, r] > 0} (17 for F = 16).
int num_pairs(int F);

// Returns L (computed in double); writes dL/dx0 (float, [F, C, h, w]) to grad when non-null.
double guidance_loss_grad_cpu(const float* x0, const float* ref, const float* pos, const float* vis,
                              const GuidanceShape& s, float* grad);

}  // namespace tgvc

// ---- Fast float32 CPU guidance, plain C ABI (runtime/cpp/src/guidance_cpu_f32.cpp) ----------------
// Loaded from Python with ctypes (runtime/tgvc_rt/diffusion/guidance_native.py) and linked into the
// tgvc library. All arrays are C-contiguous float32 in the layouts above. Same numbers as the double
// reference up to float32 rounding; fixed summation order whatever the thread count (bit-identical
// results for identical inputs). On x86-64 Linux with GCC the hot loop is also compiled for x86-64-v3 (AVX2) and
// picked at load time; both variants use the same operation order per element.
#define TGVC_GUIDANCE_F32_ABI 2

extern "C" {

// Opaque per-window state: term cells, bilinear weights, coefficients, reference patches, buffers.
typedef struct tgvc_guidance_f32 tgvc_guidance_f32;

// TGVC_GUIDANCE_F32_ABI of the compiled library (bumped on any signature or semantics change).
int tgvc_guidance_f32_abi(void);

// Prepares one window: ref [2, C, h, w] (the two keyframe latents, copied into patches; NULL = use
// x0[0] and x0[F-1] of each step), pos [K, F, 2] latent (u, v), vis [K, F]. pos and vis are read
// only during the call. Returns NULL on invalid sizes (K < 0, F/C/h/w < 1) or allocation failure.
tgvc_guidance_f32* tgvc_guidance_f32_create(const float* ref, const float* pos, const float* vis, int K, int F,
                                            int C, int h, int w);

// One sampler step: writes dL/dx0 [F, C, h, w] to grad (every element; frames 0 and F-1 are 0) and
// returns L when with_loss != 0, else 0. x0 [F, C, h, w]. NaN on a NULL argument. No allocation.
double tgvc_guidance_f32_step(tgvc_guidance_f32* g, const float* x0, float* grad, int with_loss);

// Threads for the following steps (inner frames split round-robin; results do not change).
// Returns the count in use (capped at the F - 2 inner frames), -1 on a bad argument or no memory.
int tgvc_guidance_f32_set_threads(tgvc_guidance_f32* g, int threads);

void tgvc_guidance_f32_destroy(tgvc_guidance_f32* g);

}  // extern "C"
