// Host launchers of the CUDA kernels of the diffusion decoder (defined in
// runtime/tgvc_rt/kernels/{latent_affine,gaussian_blur,residual_output}.cu, compiled by nvcc into
// libtgvc when CMake finds a CUDA toolkit; TGVC_HAVE_CUDA is then defined). The launchers take
// device pointers, enqueue their launches on `stream` and return a cudaError_t as int
// (0 = success). Layouts are row-major and contiguous.
#pragma once

#include <cstddef>

#ifdef TGVC_HAVE_CUDA
#include <cuda_runtime.h>

extern "C" {
// OpenCV's Gaussian taps for float images, on the host: ksize = cvRound(sigma * 8 + 1) | 1 and
// getGaussianKernel(ksize, sigma, CV_32F); writes ksize floats to `taps` when ksize <= capacity.
// Returns ksize, or -1 when sigma is not positive and finite.
int tgvc_gaussian_taps(double sigma, float* taps, int capacity);
// float32 latents x [N, C, hw] -> out (may be x): inverse 0: (x - mean[c]) / std[c] (the encoder's
// normalisation), 1: x * std[c] + mean[c] (the decoder input); mean, std: device float32 [C].
// Each operation rounded on its own (bit-exact with the NumPy host code).
int tgvc_cuda_latent_affine(int inverse, const float* x, int N, int C, int hw, const float* mean,
                            const float* std, float* out, cudaStream_t stream);
// cv2.GaussianBlur(plane, (0, 0), sigma) of each float32 plane of src [P, H, W] into dst (may be
// src) through tmp (same size, apart from both); taps: device float32 [ksize] from
// tgvc_gaussian_taps. BORDER_REFLECT_101.
int tgvc_cuda_gaussian_blur(const float* src, float* tmp, float* dst, int P, int H, int W,
                            const float* taps, int ksize, cudaStream_t stream);
// Decoder images dz, dw [B, 3, Hp, Wp] in [0, 1] (dtype 0: fp32, 1: IEEE fp16) -> change float32
// [B, 3, H, W] = dz * 255 - dw * 255, cropped to H x W.
int tgvc_cuda_residual_change(int dtype, const void* dz, const void* dw, int B, int Hp, int Wp,
                              int H, int W, float* change, cudaStream_t stream);
// change float32 [B, 3, H, W] + warp uint8 [B, H, W, 3] -> out uint8 [B, H, W, 3] (may be warp) =
// clip(rint(warp + change), 0, 255); NaN gives 0.
int tgvc_cuda_residual_compose(const float* change, const unsigned char* warp, int B, int H, int W,
                               unsigned char* out, cudaStream_t stream);
}
#endif
