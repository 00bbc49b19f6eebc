// Shared prelude of the frame and diffusion kernels (one .cu source per kernel, each including this):
// the CUDA headers (none under NVRTC; cuda_emu.h for the CPU emulation, TGVC_EMU), the thread count of the
// C++ host launchers, the fp16 storage type, and single-rounding float arithmetic: __f*_rn on the GPU (no
// FMA contraction, so results match the host's float32 NumPy/OpenCV arithmetic bit for bit), plain
// operators under the emulation (built with -ffp-contract=off).
#pragma once

#if defined(TGVC_EMU)
#include "cuda_emu.h"
#elif !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#include <stddef.h>
#endif

#ifndef TGVC_FRAME_BLOCK
#define TGVC_FRAME_BLOCK 128 /* threads per block of the C++ host launchers */
#endif

typedef unsigned short tgvc_half; /* IEEE binary16 bits (same layout as __half) */

#ifdef TGVC_EMU
static inline float tgvc_add_rn(float a, float b) { return a + b; }
static inline float tgvc_sub_rn(float a, float b) { return a - b; }
static inline float tgvc_mul_rn(float a, float b) { return a * b; }
static inline float tgvc_div_rn(float a, float b) { return a / b; }
static inline float tgvc_fma_rn(float a, float b, float c) { return std::fma(a, b, c); }
#else
static __device__ __forceinline__ float tgvc_add_rn(float a, float b) { return __fadd_rn(a, b); }
static __device__ __forceinline__ float tgvc_sub_rn(float a, float b) { return __fsub_rn(a, b); }
static __device__ __forceinline__ float tgvc_mul_rn(float a, float b) { return __fmul_rn(a, b); }
static __device__ __forceinline__ float tgvc_div_rn(float a, float b) { return __fdiv_rn(a, b); }
static __device__ __forceinline__ float tgvc_fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
#endif

// fp32 / fp16 element access: loads through the read-only cache, fp16 converted with round-to-nearest-even.
static __device__ __forceinline__ float tgvc_ld(const float* p, long long i) { return __ldg(p + i); }
static __device__ __forceinline__ float tgvc_ld(const tgvc_half* p, long long i) {
#ifdef TGVC_EMU
    return tgvc_emu_h2f(p[i]);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(__ldg(p + i)));
    return f;
#endif
}
static __device__ __forceinline__ void tgvc_st(float* p, long long i, float v) { p[i] = v; }
static __device__ __forceinline__ void tgvc_st(tgvc_half* p, long long i, float v) {
#ifdef TGVC_EMU
    p[i] = tgvc_emu_f2h(v);
#else
    unsigned short b;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(v));
    p[i] = b;
#endif
}
