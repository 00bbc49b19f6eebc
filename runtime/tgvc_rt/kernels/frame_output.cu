// Interpolator output -> finished frames on the GPU: [B, 3, Hp, Wp] in [0, 1] -> uint8
// [B, H, W, 3] = clip(rint(x * 255), 0, 255) cropped to H x W (tgvc_rt.models.interpolator.
// frames_output; rint rounds half to even), optionally area-reduced by 2: the model then ran at
// 2H x 2W (the small-frame path of tgvc_rt.decoder.interpolate._inner_frames) and each output pixel
// is (a + b + c + d + 2) >> 2 of its 2 x 2 uint8 pixels, which is what cv2.resize(..., (W, H),
// interpolation=cv2.INTER_AREA) gives for an exact 2x reduction of uint8 frames. NumPy reference:
// tgvc_rt/kernels/frame_reference.py. One source for the Python launcher (NVRTC), the C++ library
// (nvcc) and the CPU emulation the tests compile with g++ (cuda_emu.h, TGVC_EMU).
//
// Entry points (extern "C"):
//   tgvc_frame_output_{f32,f16}(frames, Hp, Wp, H, W, reduce, out)
//       grid (ceil(W / block), H, B), any 1-D block; frames [B, 3, Hp, Wp] (fp32, or IEEE binary16
//       bits for `_f16`), out uint8 [B, H, W, 3]; reduce 1 or 2 (reduce * H <= Hp, reduce * W <= Wp).
// NaN reads as 0.

#include "tgvc_kernel.cuh"

// clip(rint(v * 255), 0, 255); fmaxf turns NaN into 0.
static __device__ __forceinline__ int tgvc_fo_u8(float v) {
    return (int)fminf(fmaxf(rintf(v * 255.f), 0.f), 255.f);
}

template <typename T>
static __device__ __forceinline__ void tgvc_frame_output(const T* frames, int Hp, int Wp, int H,
                                                         int W, int reduce, unsigned char* out) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= W || y >= H) return;
    const long long b = blockIdx.z, plane = (long long)Hp * Wp;
    const T* src = frames + b * 3 * plane;
    unsigned char* dst = out + ((b * H + y) * W + x) * 3;
    if (reduce == 2) {
        const long long o = (long long)(2 * y) * Wp + 2 * x;
        for (int c = 0; c < 3; ++c) {
            const T* s = src + c * plane + o;
            const int sum = tgvc_fo_u8(tgvc_ld(s, 0)) + tgvc_fo_u8(tgvc_ld(s, 1)) +
                            tgvc_fo_u8(tgvc_ld(s, Wp)) + tgvc_fo_u8(tgvc_ld(s, Wp + 1));
            dst[c] = (unsigned char)((sum + 2) >> 2);
        }
    } else {
        const long long o = (long long)y * Wp + x;
        for (int c = 0; c < 3; ++c) dst[c] = (unsigned char)tgvc_fo_u8(tgvc_ld(src, c * plane + o));
    }
}

extern "C" __global__ void tgvc_frame_output_f32(const float* frames, int Hp, int Wp, int H, int W,
                                                 int reduce, unsigned char* out) {
    tgvc_frame_output(frames, Hp, Wp, H, W, reduce, out);
}
extern "C" __global__ void tgvc_frame_output_f16(const tgvc_half* frames, int Hp, int Wp, int H,
                                                 int W, int reduce, unsigned char* out) {
    tgvc_frame_output(frames, Hp, Wp, H, W, reduce, out);
}

#ifndef __CUDACC_RTC__
// Host launcher (nvcc builds and the g++ CPU emulation; declared in tgvc/frame_kernels_cuda.h).
// dtype 0: fp32 frames, 1: fp16. Returns a cudaError_t as int.
extern "C" int tgvc_cuda_frame_output(int dtype, const void* frames, int B, int Hp, int Wp, int H,
                                      int W, int reduce, unsigned char* out, cudaStream_t stream) {
    if (B < 0 || H < 1 || W < 1 || (reduce != 1 && reduce != 2) || reduce * H > Hp ||
        reduce * W > Wp || H > 65535 || B > 65535 || !frames || !out || (dtype != 0 && dtype != 1))
        return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    dim3 grid((unsigned)((W + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)H, (unsigned)B);
#ifdef TGVC_EMU
    (void)stream;
    if (dtype == 0)
        tgvc_emu_launch(tgvc_frame_output_f32, grid, dim3(TGVC_FRAME_BLOCK), 0,
                        (const float*)frames, Hp, Wp, H, W, reduce, out);
    else
        tgvc_emu_launch(tgvc_frame_output_f16, grid, dim3(TGVC_FRAME_BLOCK), 0,
                        (const tgvc_half*)frames, Hp, Wp, H, W, reduce, out);
#else
    if (dtype == 0)
        tgvc_frame_output_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>((const float*)frames, Hp, Wp,
                                                                     H, W, reduce, out);
    else
        tgvc_frame_output_f16<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(
            (const tgvc_half*)frames, Hp, Wp, H, W, reduce, out);
#endif
    return (int)cudaGetLastError();
}
#endif
