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
