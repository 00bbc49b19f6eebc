// cv2.GaussianBlur(img, (0, 0), sigma) of float32 images on the GPU, on planar data: every plane of
// [P, H, W] (e.g. [B, 3, H, W]) is blurred on its own, as OpenCV blurs each channel of an H x W x 3
// image. What OpenCV does, in the same order:
//   * kernel size cvRound(sigma * 8 + 1) | 1 and taps getGaussianKernel(ksize, sigma, CV_32F)
//     (tgvc_gaussian_taps below computes them on the host as OpenCV's bit-exact double code does);
//   * border BORDER_REFLECT_101 (reflected repeatedly when the kernel is wider than the image);
//   * a row pass s = x[-r] k[0]; s = fma(x[j - r], k[j], s) for j = 1 .. ksize - 1, into a float32
//     buffer, then a column pass s = t[0] k[r]; s = fma(t[+i] + t[-i], k[r + i], s) for i = 1 .. r
//     (OpenCV's symmetric column filter), the FMAs of OpenCV's AVX2 code. OpenCV's scalar tail of
//     each interleaved row (the last < 8 floats of W * 3) rounds a little differently, and it
//     filters 3- and 5-tap kernels (sigma < 0.5625) by other code: there the results differ from
//     cv2's by a few float32 ulps (e.g. <= 3.1e-5 on values of magnitude ~50).
// NumPy reference: tgvc_rt/kernels/diffusion_reference.py. One source for the Python launcher
// (NVRTC), the C++ library (nvcc) and the CPU emulation the tests compile with g++ (cuda_emu.h,
// TGVC_EMU).
//
// Entry points (extern "C"), grid (ceil(W / block), H, P), any 1-D block:
//   tgvc_gaussian_rows_f32(src, H, W, taps, ksize, dst)   row pass, src -> dst
//   tgvc_gaussian_cols_f32(src, H, W, taps, ksize, dst)   column pass, src -> dst
// taps float32 [ksize] (odd) in device memory; src and dst [P, H, W] must not overlap. A blur is
// rows(src -> tmp) then cols(tmp -> dst) on one stream (dst may be src).

#include "tgvc_kernel.cuh"

// OpenCV's borderInterpolate for BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), repeated as needed.
static __device__ __forceinline__ int tgvc_gb_reflect(int i, int n) {
    if (n == 1) return 0;
    while ((unsigned)i >= (unsigned)n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

extern "C" __global__ void tgvc_gaussian_rows_f32(const float* src, int H, int W, const float* taps,
                                                  int ksize, float* dst) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= W || y >= H) return;
    const long long row = ((long long)blockIdx.z * H + y) * W;
    const float* s = src + row;
    const int r = ksize / 2;
    float acc;
    if (x >= r && x + r < W) {  // no border
        const float* p = s + (x - r);
        acc = tgvc_mul_rn(__ldg(p), __ldg(taps));
        for (int j = 1; j < ksize; ++j) acc = tgvc_fma_rn(__ldg(p + j), __ldg(taps + j), acc);
    } else {
        acc = tgvc_mul_rn(__ldg(s + tgvc_gb_reflect(x - r, W)), __ldg(taps));
        for (int j = 1; j < ksize; ++j)
            acc = tgvc_fma_rn(__ldg(s + tgvc_gb_reflect(x - r + j, W)), __ldg(taps + j), acc);
    }
    dst[row + x] = acc;
}

extern "C" __global__ void tgvc_gaussian_cols_f32(const float* src, int H, int W, const float* taps,
                                                  int ksize, float* dst) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= W || y >= H) return;
    const float* s = src + (long long)blockIdx.z * H * W + x;
    const int r = ksize / 2;
    const float* k = taps + r;  // centre tap
    float acc = tgvc_mul_rn(__ldg(s + (long long)y * W), __ldg(k));
    for (int i = 1; i <= r; ++i) {
        const float up = __ldg(s + (long long)tgvc_gb_reflect(y - i, H) * W);
        const float down = __ldg(s + (long long)tgvc_gb_reflect(y + i, H) * W);
        acc = tgvc_fma_rn(tgvc_add_rn(down, up), __ldg(k + i), acc);
    }
    dst[(long long)blockIdx.z * H * W + (long long)y * W + x] = acc;
}

#ifndef __CUDACC_RTC__
#include <math.h>

// OpenCV's Gaussian taps for float images (declared in tgvc/diffusion_kernels_cuda.h): ksize =
// cvRound(sigma * 8 + 1) | 1 and getGaussianKernel(ksize, sigma, CV_32F), computed in double as
// OpenCV's getGaussianKernelBitExact does. Writes ksize floats to the host array taps when
// ksize <= capacity; returns ksize, or -1 for a sigma that is not positive and finite.
extern "C" int tgvc_gaussian_taps(double sigma, float* taps, int capacity) {
    if (!(sigma > 0.0) || !(sigma < 1e6)) return -1;
    const int n = (int)nearbyint(sigma * 4 * 2 + 1) | 1;
    if (n > capacity || !taps) return n;
    const double scale2 = -0.125 / (sigma * sigma);  // -0.5 / sigma^2 for x = 2 (i - (n - 1) / 2)
    const int half = (n - 1) / 2;
    double sum = 0.0;
    for (int i = 0, x = 1 - n; i < half; ++i, x += 2) sum += exp((double)x * x * scale2);
    sum = sum * 2 + 1.0;
    const double mul = 1.0 / sum;
    for (int i = 0, x = 1 - n; i < half; ++i, x += 2)
        taps[i] = taps[n - 1 - i] = (float)(exp((double)x * x * scale2) * mul);
    taps[half] = (float)mul;
    return n;
}

// Host launcher (nvcc builds and the g++ CPU emulation; declared in tgvc/diffusion_kernels_cuda.h):
// blur the P planes [P, H, W] of src into dst through tmp (same size, apart from both; dst may be
// src). taps: device float32 [ksize], ksize odd. Returns a cudaError_t as int.
extern "C" int tgvc_cuda_gaussian_blur(const float* src, float* tmp, float* dst, int P, int H,
                                       int W, const float* taps, int ksize, cudaStream_t stream) {
    if (P < 0 || H < 1 || W < 1 || P > 65535 || H > 65535 || ksize < 1 || !(ksize & 1) || !src ||
        !tmp || !dst || !taps || tmp == src || tmp == dst)
        return (int)cudaErrorInvalidValue;
    if (P == 0) return 0;
    dim3 grid((unsigned)((W + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)H, (unsigned)P);
#ifdef TGVC_EMU
    (void)stream;
    tgvc_emu_launch(tgvc_gaussian_rows_f32, grid, dim3(TGVC_FRAME_BLOCK), 0, src, H, W, taps, ksize, tmp);
    tgvc_emu_launch(tgvc_gaussian_cols_f32, grid, dim3(TGVC_FRAME_BLOCK), 0, (const float*)tmp, H, W,
                    taps, ksize, dst);
#else
    tgvc_gaussian_rows_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(src, H, W, taps, ksize, tmp);
    tgvc_gaussian_cols_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(tmp, H, W, taps, ksize, dst);
#endif
    return (int)cudaGetLastError();
}
#endif
