// Key frame -> interpolator image input on the GPU: uint8 [H, W, 3] (RGB, HWC) -> [3, Hp, Wp] in
// [0, 1] (x * float32(1/255)), edge-padded at the bottom/right. The same numbers as
// tgvc_rt.models.interpolator.image_input without the batch axis (NumPy reference:
// tgvc_rt/kernels/frame_reference.py). One source for the Python launcher (NVRTC), the C++ library
// (nvcc) and the CPU emulation the tests compile with g++ (cuda_emu.h, TGVC_EMU).
//
// Entry points (extern "C"):
//   tgvc_image_input_{f32,f16}(frame, H, W, Hp, Wp, out)
//       grid (ceil(Wp / block), Hp, copies), any 1-D block; out [copies, 3, Hp, Wp] gets the same
//       image `copies` times (the model's img0/img1 inputs are one key frame per batch row).
// `_f16` writes IEEE binary16 (round to nearest even) as unsigned short bits.

#include "tgvc_kernel.cuh"

template <typename T>
static __device__ __forceinline__ void tgvc_image_input(const unsigned char* frame, int H, int W,
                                                        int Hp, int Wp, T* out) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= Wp || y >= Hp) return;
    const float k = 0x1.010102p-8f; /* float32(1 / 255), as NumPy's np.float32(1 / 255) */
    const unsigned char* p = frame + ((long long)min(y, H - 1) * W + min(x, W - 1)) * 3;
    const long long plane = (long long)Hp * Wp;
    T* o = out + (long long)blockIdx.z * 3 * plane + (long long)y * Wp + x;
    tgvc_st(o, 0, (float)p[0] * k);
    tgvc_st(o, plane, (float)p[1] * k);
    tgvc_st(o, 2 * plane, (float)p[2] * k);
}

extern "C" __global__ void tgvc_image_input_f32(const unsigned char* frame, int H, int W, int Hp,
                                                int Wp, float* out) {
    tgvc_image_input(frame, H, W, Hp, Wp, out);
}
extern "C" __global__ void tgvc_image_input_f16(const unsigned char* frame, int H, int W, int Hp,
                                                int Wp, tgvc_half* out) {
    tgvc_image_input(frame, H, W, Hp, Wp, out);
}

#ifndef __CUDACC_RTC__
// Host launcher (nvcc builds and the g++ CPU emulation; declared in tgvc/frame_kernels_cuda.h).
// dtype 0: fp32 out, 1: fp16. Returns a cudaError_t as int.
extern "C" int tgvc_cuda_image_input(int dtype, const unsigned char* frame, int H, int W, int Hp,
                                     int Wp, int copies, void* out, cudaStream_t stream) {
    if (H < 1 || W < 1 || Hp < H || Wp < W || copies < 1 || Hp > 65535 || copies > 65535 ||
        !frame || !out || (dtype != 0 && dtype != 1))
        return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)((Wp + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)Hp,
              (unsigned)copies);
#ifdef TGVC_EMU
    (void)stream;
    if (dtype == 0)
        tgvc_emu_launch(tgvc_image_input_f32, grid, dim3(TGVC_FRAME_BLOCK), 0, frame, H, W, Hp, Wp,
                        (float*)out);
    else
        tgvc_emu_launch(tgvc_image_input_f16, grid, dim3(TGVC_FRAME_BLOCK), 0, frame, H, W, Hp, Wp,
                        (tgvc_half*)out);
#else
    if (dtype == 0)
        tgvc_image_input_f32<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(frame, H, W, Hp, Wp,
                                                                    (float*)out);
    else
        tgvc_image_input_f16<<<grid, TGVC_FRAME_BLOCK, 0, stream>>>(frame, H, W, Hp, Wp,
                                                                    (tgvc_half*)out);
#endif
    return (int)cudaGetLastError();
}
#endif
