// CUDA diffusion kernels (nvcc build of latent_affine.cu, gaussian_blur.cu, residual_output.cu):
// normalise then denormalise comes back within float32 rounding, the blur keeps a constant image
// constant (its taps sum to 1 within float32 rounding), a zero change gives back the warp frames and
// a change of 0.5 rounds half to even. The exact numbers against NumPy and OpenCV are
// tests/test_diffusion_kernels.py's. Exit 77 (= skipped) without a GPU.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "tgvc/diffusion_kernels_cuda.h"

#define CK(x) do { cudaError_t e_ = (cudaError_t)(x); if (e_ != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e_)); return 1; } } while (0)

int main() {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) { std::printf("no CUDA device: skipped\n"); return 77; }
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.f, 5.f);
    // latents [2, 4, 30 x 40]: normalise, denormalise in place
    const int N = 2, C = 4, HW = 30 * 40;
    std::vector<float> z((size_t)N * C * HW), back(z.size()), mean = {0.1f, -0.2f, 0.3f, 0.05f},
                                                               stdv = {4.f, 5.5f, 3.25f, 6.f};
    for (auto& v : z) v = normal(rng);
    float *dz, *dmean, *dstd;
    CK(cudaMalloc(&dz, z.size() * 4));
    CK(cudaMalloc(&dmean, C * 4));
    CK(cudaMalloc(&dstd, C * 4));
    CK(cudaMemcpy(dz, z.data(), z.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dmean, mean.data(), C * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dstd, stdv.data(), C * 4, cudaMemcpyHostToDevice));
    CK(tgvc_cuda_latent_affine(0, dz, N, C, HW, dmean, dstd, dz, 0));
    CK(tgvc_cuda_latent_affine(1, dz, N, C, HW, dmean, dstd, dz, 0));
    CK(cudaMemcpy(back.data(), dz, z.size() * 4, cudaMemcpyDeviceToHost));
    double err = 0;
    for (size_t i = 0; i < z.size(); ++i) err = std::fmax(err, std::fabs(back[i] - z[i]));
    std::printf("latent normalise/denormalise round trip: max error %.3g\n", err);
    bool ok = err < 1e-4;
    // blur of a constant 3 x 20 x 70 image (sigma 4: 33 taps, more than the image has rows)
    const int P = 3, H = 20, W = 70;
    float taps[64];
    const int k = tgvc_gaussian_taps(4.0, taps, 64);
    ok = ok && k == 33 && tgvc_gaussian_taps(-1.0, taps, 64) == -1;
    std::vector<float> img((size_t)P * H * W, 42.5f), out(img.size());
    float *dimg, *dtmp, *dtaps;
    CK(cudaMalloc(&dimg, img.size() * 4));
    CK(cudaMalloc(&dtmp, img.size() * 4));
    CK(cudaMalloc(&dtaps, k * 4));
    CK(cudaMemcpy(dimg, img.data(), img.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dtaps, taps, k * 4, cudaMemcpyHostToDevice));
    CK(tgvc_cuda_gaussian_blur(dimg, dtmp, dimg, P, H, W, dtaps, k, 0));
    CK(cudaMemcpy(out.data(), dimg, out.size() * 4, cudaMemcpyDeviceToHost));
    err = 0;
    for (float v : out) err = std::fmax(err, std::fabs(v - 42.5f));
    std::printf("gaussian blur of a constant image: max error %.3g\n", err);
    ok = ok && err < 1e-4;
    // residual: dz == dw -> change 0 -> the warp frames; then change 0.5 everywhere
    const int B = 2, Hp = 48, Wp = 72;
    std::vector<float> images((size_t)B * 3 * Hp * Wp);
    for (auto& v : images) v = (float)(rng() % 256) / 255.f;
    std::vector<unsigned char> warp((size_t)B * H * W * 3), frames(warp.size());
    for (auto& v : warp) v = (unsigned char)(rng() & 255u);
    float *dimages, *dchange;
    unsigned char *dwarp, *dout;
    CK(cudaMalloc(&dimages, images.size() * 4));
    CK(cudaMalloc(&dchange, (size_t)B * 3 * H * W * 4));
    CK(cudaMalloc(&dwarp, warp.size()));
    CK(cudaMalloc(&dout, warp.size()));
    CK(cudaMemcpy(dimages, images.data(), images.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dwarp, warp.data(), warp.size(), cudaMemcpyHostToDevice));
    CK(tgvc_cuda_residual_change(0, dimages, dimages, B, Hp, Wp, H, W, dchange, 0));
    CK(tgvc_cuda_residual_compose(dchange, dwarp, B, H, W, dout, 0));
    CK(cudaMemcpy(frames.data(), dout, frames.size(), cudaMemcpyDeviceToHost));
    bool same = frames == warp;
    std::vector<float> half((size_t)B * 3 * H * W, 0.5f);
    CK(cudaMemcpy(dchange, half.data(), half.size() * 4, cudaMemcpyHostToDevice));
    CK(tgvc_cuda_residual_compose(dchange, dwarp, B, H, W, dout, 0));
    CK(cudaMemcpy(frames.data(), dout, frames.size(), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < warp.size() && same; ++i)
        same = frames[i] == (warp[i] == 255 ? 255 : warp[i] + (warp[i] & 1));  // v + 0.5: half to even
    std::printf("residual change/compose: %s\n", same ? "ok" : "MISMATCH");
    ok = ok && same;
    ok = ok && tgvc_cuda_residual_change(0, dimages, dimages, B, Hp, Wp, Hp + 1, W, dchange, 0) != 0;  // H > Hp
    cudaGetLastError();
    for (void* p : {(void*)dz, (void*)dmean, (void*)dstd, (void*)dimg, (void*)dtmp, (void*)dtaps, (void*)dimages,
                    (void*)dchange, (void*)dwarp, (void*)dout})
        cudaFree(p);
    return ok ? 0 : 1;
}
