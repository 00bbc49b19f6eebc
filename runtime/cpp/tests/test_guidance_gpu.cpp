// CUDA guidance kernel (nvcc build of guidance.cu) vs the CPU reference. Exit 77 (= skipped)
// without a usable GPU.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "tgvc/guidance.h"
#include "tgvc/guidance_cuda.h"

#define CK(x) do { cudaError_t e_ = (cudaError_t)(x); if (e_ != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e_)); return 1; } } while (0)

int main() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { std::printf("no CUDA device: skipped\n"); return 77; }
    tgvc::GuidanceShape s;
    s.F = 16; s.C = 32; s.h = 40; s.w = 64; s.K = 300;
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> val(-32, 32), px(-48, 16 * (64 + 2)), py(-48, 16 * (40 + 2));
    std::vector<float> x0(s.latent_size()), ref(2ull * s.C * s.h * s.w), pos(2ull * s.K * s.F), vis(1ull * s.K * s.F, 1.f);
    for (auto& v : x0) v = val(rng) / 8.f;  // dyadic data: tap differences are exact in fp32
    for (auto& v : ref) v = val(rng) / 8.f;
    for (int i = 0; i < s.K * s.F; ++i) { pos[2 * i] = px(rng) / 16.f; pos[2 * i + 1] = py(rng) / 16.f; vis[i] = (i % 7 == 3) ? 0.f : 1.f; }
    std::vector<float> want(x0.size()), got(x0.size());
    const double loss_ref = tgvc::guidance_loss_grad_cpu(x0.data(), ref.data(), pos.data(), vis.data(), s, want.data());
    float *dx, *dr, *dp, *dv, *dg, *dl, *dw;
    const size_t ws = tgvc_guidance_workspace_floats(s.F, s.C, s.h, s.w, s.K);
    CK(cudaMalloc(&dx, x0.size() * 4)); CK(cudaMalloc(&dr, ref.size() * 4)); CK(cudaMalloc(&dp, pos.size() * 4));
    CK(cudaMalloc(&dv, vis.size() * 4)); CK(cudaMalloc(&dg, x0.size() * 4)); CK(cudaMalloc(&dl, 4)); CK(cudaMalloc(&dw, ws * 4));
    CK(cudaMemcpy(dx, x0.data(), x0.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dr, ref.data(), ref.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dp, pos.data(), pos.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dv, vis.data(), vis.size() * 4, cudaMemcpyHostToDevice));
    CK(tgvc_cuda_guidance(0, dx, dr, dp, dv, s.F, s.C, s.h, s.w, s.K, dg, nullptr, 0.f, dl, dw, 0));
    CK(cudaDeviceSynchronize());
    float loss = 0.f;
    CK(cudaMemcpy(got.data(), dg, got.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&loss, dl, 4, cudaMemcpyDeviceToHost));
    // a second step on the prepared workspace must give the same bits (determinism, counter reset)
    std::vector<float> again(x0.size());
    float loss2 = 0.f;
    CK(tgvc_cuda_guidance_step(0, dx, s.F, s.C, s.h, s.w, s.K, dg, nullptr, 0.f, dl, dw, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(again.data(), dg, again.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&loss2, dl, 4, cudaMemcpyDeviceToHost));
    const bool same = loss2 == loss && std::memcmp(again.data(), got.data(), got.size() * 4) == 0;
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) { num += (got[i] - want[i]) * (double)(got[i] - want[i]); den += (double)want[i] * want[i]; }
    const double rel = std::sqrt(num / den), lrel = std::fabs(loss - loss_ref) / loss_ref;
    std::printf("gpu vs cpu: grad rel %.3g, loss %.9g vs %.9g (rel %.3g), repeat identical %d\n", rel, loss,
                loss_ref, lrel, (int)same);
    return (rel <= 1e-5 && lrel <= 1e-5 && same) ? 0 : 1;
}
