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
