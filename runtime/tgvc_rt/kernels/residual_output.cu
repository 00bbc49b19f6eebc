// The diffusion decoder's residual output on the GPU (tgvc_rt.decoder.diffusion.iter_diffused,
// output "residual"): the VAE decoder's images of the generated latents (dz) and of the warp
// latents (dw), [B, 3, Hp, Wp] in [0, 1], give the change planes
//     change = dz * 255 - dw * 255     (each product rounded to float32, as the host's
//                                       image * float32(255) then the difference)
// cropped to H x W, float32 [B, 3, H, W]; optionally blurred (gaussian_blur.cu, in place), they are
// added to the warp frames: uint8 [B, H, W, 3] = clip(rint(float32(warp) + change), 0, 255) (rint
// rounds half to even; NaN reads as 0). __fmul_rn / __fsub_rn / __fadd_rn: no FMA contraction, so
// both steps equal the host bit for bit. NumPy reference: tgvc_rt/kernels/diffusion_reference.py.
// One source for the Python launcher (NVRTC), the C++ library (nvcc) and the CPU emulation the tests
// compile with g++ (cuda_emu.h, TGVC_EMU).
//
// Entry points (extern "C"), grid (ceil(W / block), H, B), any 1-D block:
//   tgvc_residual_change_{f32,f16}(dz, dw, Hp, Wp, H, W, change)
//       dz, dw [B, 3, Hp, Wp] (fp32, or IEEE binary16 bits for `_f16`, widened exactly to float32
//       first); change float32 [B, 3, H, W].
//   tgvc_residual_compose_u8(change, warp, H, W, out)
//       change float32 [B, 3, H, W], warp and out uint8 [B, H, W, 3] (RGB; out may be warp).

#include "tgvc_kernel.cuh"

template <typename T>
static __device__ __forceinline__ void tgvc_residual_change(const T* dz, const T* dw, int Hp, int Wp,
                                                            int H, int W, float* change) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= W || y >= H) return;
    const long long b = blockIdx.z, plane = (long long)Hp * Wp, oplane = (long long)H * W;
    const long long i = b * 3 * plane + (long long)y * Wp + x;
    float* o = change + b * 3 * oplane + (long long)y * W + x;
    for (int c = 0; c < 3; ++c)
        o[c * oplane] = tgvc_sub_rn(tgvc_mul_rn(tgvc_ld(dz, i + c * plane), 255.f),
                                    tgvc_mul_rn(tgvc_ld(dw, i + c * plane), 255.f));
}

extern "C" __global__ void tgvc_residual_change_f32(const float* dz, const float* dw, int Hp, int Wp,
                                                    int H, int W, float* change) {
    tgvc_residual_change(dz, dw, Hp, Wp, H, W, change);
}
extern "C" __global__ void tgvc_residual_change_f16(const tgvc_half* dz, const tgvc_half* dw, int Hp,
                                                    int Wp, int H, int W, float* change) {
    tgvc_residual_change(dz, dw, Hp, Wp, H, W, change);
}

extern "C" __global__ void tgvc_residual_compose_u8(const float* change, const unsigned char* warp,
                                                    int H, int W, unsigned char* out) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= W || y >= H) return;
    const long long b = blockIdx.z, oplane = (long long)H * W;
    const float* ch = change + b * 3 * oplane + (long long)y * W + x;
    const long long p = ((b * H + y) * W + x) * 3;
    for (int c = 0; c < 3; ++c) {
        const float v = tgvc_add_rn((float)warp[p + c], __ldg(ch + c * oplane));
        out[p + c] = (unsigned char)(int)fminf(fmaxf(rintf(v), 0.f), 255.f);  // fmaxf: NaN -> 0
    }
}

#ifndef __CUDACC_RTC__
// Host launchers (nvcc builds and the g++ CPU emulation; declared in tgvc/diffusion_kernels_cuda.h).
// Return a cudaError_t as int.
// dtype 0: dz/dw fp32, 1: fp16. change float32 [B, 3, H, W].
extern "C" int tgvc_cuda_residual_change(int dtype, const void* dz, const void* dw, int B, int Hp,
                                         int Wp, int H, int W, float* change, cudaStream_t stream) {
    if (B < 0 || H < 1 || W < 1 || H > Hp || W > Wp || H > 65535 || B > 65535 || !dz || !dw ||
        !change || (dtype != 0 && dtype != 1))
        return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    dim3 grid((unsigned)((W + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)H, (unsigned)B);
#ifdef TGVC_EMU
    (void)stream;
    if (dtype == 0)
        tgvc_emu_launch(tgvc_residual_change_f32, grid, dim3(TGVC_FRAME_BLOCK), 0, (const float*)dz,
                        (const float*)dw, Hp, Wp, H, W, change);
    else
        tgvc_emu_launch(tgvc_residual_change_f16, grid, dim3(TGVC_FRAME_BLOCK), 0,
                        (const tgvc_half*)dz, (const tgvc_half*)dw, Hp, Wp, H, W, change);
#else
    if (dtype == 0)
        tgvc_residual_change_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(
            (const float*)dz, (const float*)dw, Hp, Wp, H, W, change);
    else
        tgvc_residual_change_f16<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(
            (const tgvc_half*)dz, (const tgvc_half*)dw, Hp, Wp, H, W, change);
#endif
    return (int)cudaGetLastError();
}

// change float32 [B, 3, H, W] + warp uint8 [B, H, W, 3] -> out uint8 [B, H, W, 3].
extern "C" int tgvc_cuda_residual_compose(const float* change, const unsigned char* warp, int B,
                                          int H, int W, unsigned char* out, cudaStream_t stream) {
    if (B < 0 || H < 1 || W < 1 || H > 65535 || B > 65535 || !change || !warp || !out)
        return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    dim3 grid((unsigned)((W + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)H, (unsigned)B);
#ifdef TGVC_EMU
    (void)stream;
    tgvc_emu_launch(tgvc_residual_compose_u8, grid, dim3(TGVC_FRAME_BLOCK), 0, change, warp, H, W, out);
#else
    tgvc_residual_compose_u8<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(change, warp, H, W, out);
#endif
    return (int)cudaGetLastError();
}
#endif
