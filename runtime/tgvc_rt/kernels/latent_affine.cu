// Per-channel affine map of VAE latents on the GPU, both directions of tgvc_rt.backends.base.
// Autoencoder: `normalise` y = (x - mean[c]) / std[c] (encode: encoder latent -> normalised latent)
// and `denormalise` y = x * std[c] + mean[c] (decode_float: normalised latent -> decoder input), on
// float32 [N, C, h, w], each operation rounded on its own as NumPy does (__fsub_rn / __fdiv_rn /
// __fmul_rn / __fadd_rn: no FMA contraction, an IEEE division), so the result equals the host's bit
// for bit. NumPy reference: tgvc_rt/kernels/diffusion_reference.py. One source for the Python
// launcher (NVRTC), the C++ library (nvcc) and the CPU emulation the tests compile with g++
// (cuda_emu.h, TGVC_EMU).
//
// Entry points (extern "C"):
//   tgvc_latent_normalise_f32(x, hw, mean, std, out)
//   tgvc_latent_denormalise_f32(x, hw, mean, std, out)
//       grid (ceil(hw / block), C, N), any 1-D block; x and out [N, C, hw] (out may be x), mean and
//       std float32 [C] in device memory.

#include "tgvc_kernel.cuh"

extern "C" __global__ void tgvc_latent_normalise_f32(const float* x, int hw, const float* mean,
                                                     const float* std, float* out) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= hw) return;
    const int c = (int)blockIdx.y;
    const long long o = ((long long)blockIdx.z * gridDim.y + c) * hw + i;
    out[o] = tgvc_div_rn(tgvc_sub_rn(x[o], __ldg(mean + c)), __ldg(std + c));
}

extern "C" __global__ void tgvc_latent_denormalise_f32(const float* x, int hw, const float* mean,
                                                       const float* std, float* out) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= hw) return;
    const int c = (int)blockIdx.y;
    const long long o = ((long long)blockIdx.z * gridDim.y + c) * hw + i;
    out[o] = tgvc_add_rn(tgvc_mul_rn(x[o], __ldg(std + c)), __ldg(mean + c));
}

#ifndef __CUDACC_RTC__
// Host launcher (nvcc builds and the g++ CPU emulation; declared in tgvc/diffusion_kernels_cuda.h).
// inverse 0: normalise, 1: denormalise. Returns a cudaError_t as int.
extern "C" int tgvc_cuda_latent_affine(int inverse, const float* x, int N, int C, int hw,
                                       const float* mean, const float* std, float* out,
                                       cudaStream_t stream) {
    if (N < 0 || C < 1 || hw < 1 || N > 65535 || C > 65535 || !x || !mean || !std || !out ||
        (inverse != 0 && inverse != 1))
        return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    dim3 grid((unsigned)((hw + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)C, (unsigned)N);
#ifdef TGVC_EMU
    (void)stream;
    tgvc_emu_launch(inverse ? tgvc_latent_denormalise_f32 : tgvc_latent_normalise_f32, grid,
                    dim3(TGVC_FRAME_BLOCK), 0, x, hw, mean, std, out);
#else
    if (inverse)
        tgvc_latent_denormalise_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(x, hw, mean, std, out);
    else
        tgvc_latent_normalise_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(x, hw, mean, std, out);
#endif
    return (int)cudaGetLastError();
}
#endif
