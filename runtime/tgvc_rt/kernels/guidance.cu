// Trajectory guidance on the GPU: the one CUDA source shared by the Python launcher (NVRTC) and
// the C++ library (nvcc). The maths is docs/guidance.md; this file must compute the same numbers
// as tgvc_rt/diffusion/guidance.py and runtime/cpp/src/guidance_cpu.cpp.
//
// Layouts (row-major, contiguous): x0, z, grad [F, C, h, w]; ref [2, C, h, w]; pos [K, F, 2]
// (latent u, v); vis [K, F]. Latents are fp32 (`_f32` kernels) or IEEE binary16 (`_f16`
// kernels, the bit layout of __half, kept as unsigned short so NVRTC needs no header);
// arithmetic and accumulation are fp32.
//
// Design (deterministic): one block per (tile of a latent plane, channel c, frame f). The block
// stages x0[f, c] over its tile plus a 5-pixel halo in shared memory, then walks the K tracks:
// a track is processed when its 6x6 bilinear footprint (the 5x5 taps and their +1 neighbours)
// touches the tile, or when the block owns it for the loss (the tile holding its clamped
// integer position). Each thread handles whole tracks: x0 taps from shared memory, the two
// reference patches from global memory (read-only cache), sign(d), the 6x6 footprint gradient
// in registers, then shared-memory atomics into the tile. Accumulators are 64-bit fixed point
// (value * 2^40): integer addition is associative, so the result does not depend on the order
// the atomics land in, i.e. bit-identical across runs. After the walk the block writes grad
// and/or applies the guidance update z -= step * grad to its own pixels: no global atomics and
// no second pass over the latent. The per-block loss partials are summed in a fixed order by
// tgvc_guidance_finalize. Variants kept for the benchmark: a float shared accumulator (not
// deterministic) and a plain global-atomics scatter (tgvc_guidance_scatter_f32). Measured on an
// H100, [16,32,40,64], K=2000, GPU time per step (benchmarks/results/gpu_guidance_*.json): this
// kernel with 40x64 tiles 0.26 ms, with 20x64 tiles 0.39 ms, float shared atomics 0.32 ms,
// global atomics 0.38 ms (neither bit-reproducible), torch autograd 2.4 ms (eager).
//
// Entry points (extern "C", stable):
//   tgvc_guidance_{f32,f16}(x0, ref, pos, vis, F, C, h, w, K, tile_h, tile_w, grad, z, step,
//                           partials)          grid (tiles, C, F), block 256, dynamic smem
//                                              tgvc_guidance_smem_bytes(tile_h, tile_w, 8)
//   tgvc_guidance_fsmem_f32(...)               same, float accumulators (benchmark only; smem
//                                              with acc_bytes = 4)
//   tgvc_guidance_finalize(partials, n, F, C, K, loss)      grid 1, block 256
//   tgvc_guidance_scatter_f32(x0, ref, pos, vis, F, C, h, w, K, grad, partials)
//                                              grid ceil(K*F*C/256), block 256; grad zeroed first
//   tgvc_axpby_{f32,f16}(x, y, out, n, a, b)   out = a*x + b*y (DDIM step, x0 prediction)
//   tgvc_f32_to_f16(src, dst, n), tgvc_f16_to_f32(src, dst, n)
// `step` is s * (1 - abar_t) / sqrt(abar_t); z may be NULL (gradient only), grad may be NULL
// (update only). z must not alias x0 or ref. `partials` holds one float per block.
// Positions must be finite; any position further than 16 latent pixels outside the plane
// behaves like one 16 pixels outside (all its taps read 0), which is exact.

#ifndef __CUDACC_RTC__
#include <cuda_runtime.h>
#include <stddef.h>
#endif

#define TGVC_HALO 5
#define TGVC_BLOCK 256
#ifndef TGVC_MIN_BLOCKS
#define TGVC_MIN_BLOCKS 2 /* blocks per SM asked of the register allocator (-D to tune): 2 measured 1.5x faster than 1 on an H100 */
#endif
#define TGVC_FIXED_SCALE 1099511627776.0f     /* 2^40 */
#define TGVC_FIXED_INV 9.094947017729282e-13f /* 2^-40 */

typedef unsigned short tgvc_half; /* IEEE binary16 bits (same layout as __half) */

__device__ __forceinline__ float tgvc_ld(const float* p, long long i) { return __ldg(p + i); }
__device__ __forceinline__ float tgvc_ld(const tgvc_half* p, long long i) {
    unsigned short b = __ldg(p + i);
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(b));
    return f;
}
__device__ __forceinline__ void tgvc_st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void tgvc_st(tgvc_half* p, long long i, float v) {
    unsigned short b;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(v));
    p[i] = b;
}
__device__ __forceinline__ float tgvc_ld_plain(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float tgvc_ld_plain(const tgvc_half* p, long long i) {
    return tgvc_ld(p, i);
}

// W[f, 0], W[f, 1] of docs/guidance.md; floor(0.6 n) == (6 n) / 10 exactly for integer n.
__host__ __device__ __forceinline__ void tgvc_pair_weights(int f, int F, float* w0, float* w1) {
    int n = F - 1;
    *w0 = 0.f;
    *w1 = 0.f;
    if (f < 1 || f > n - 1) return;
    int a = n / 3, b = (6 * n) / 10;
    if (f <= a) *w0 = 1.f;
    else if (f >= b) *w1 = 1.f;
    else { *w0 = 0.5f; *w1 = 0.5f; }
}

// 1 / (K * Npairs * 25 * C), 0 when there is no term.
__host__ __device__ __forceinline__ float tgvc_inv_norm(int F, int C, int K) {
    int npairs = 0;
    for (int f = 1; f < F - 1; ++f) {
        float a, b;
        tgvc_pair_weights(f, F, &a, &b);
        npairs += (a > 0.f) + (b > 0.f);
    }
    double norm = (double)K * npairs * 25.0 * C;
    return norm > 0.0 ? (float)(1.0 / norm) : 0.f;
}

struct TgvcBil {
    int x, y;     // floor of the (clamped) position
    float fx, fy; // fractional parts
};

__device__ __forceinline__ TgvcBil tgvc_bil(float u, float v, int h, int w) {
    // Clamping to 16 pixels outside is exact: every tap of such a patch reads zero padding.
    u = fminf(fmaxf(u, -16.f), (float)w + 16.f);
    v = fminf(fmaxf(v, -16.f), (float)h + 16.f);
    TgvcBil b;
    float fu = floorf(u), fv = floorf(v);
    b.x = (int)fu;
    b.y = (int)fv;
    b.fx = u - fu;
    b.fy = v - fv;
    return b;
}

// 5x5 taps of a plane (global memory, zero padding) at a bilinear position.
template <typename T>
__device__ __forceinline__ void tgvc_patch_global(const T* plane, int h, int w, TgvcBil b,
                                                  float taps[25]) {
    float fp[36];
#pragma unroll
    for (int i = 0; i < 6; ++i) {
        int y = b.y - 2 + i;
#pragma unroll
        for (int j = 0; j < 6; ++j) {
            int x = b.x - 2 + j;
            fp[i * 6 + j] = (y >= 0 && y < h && x >= 0 && x < w) ? tgvc_ld(plane, (long long)y * w + x)
                                                                   : 0.f;
        }
    }
    float w00 = (1.f - b.fx) * (1.f - b.fy), w01 = b.fx * (1.f - b.fy);
    float w10 = (1.f - b.fx) * b.fy, w11 = b.fx * b.fy;
#pragma unroll
    for (int i = 0; i < 5; ++i)
#pragma unroll
        for (int j = 0; j < 5; ++j)
            taps[i * 5 + j] = w00 * fp[i * 6 + j] + w01 * fp[i * 6 + j + 1] +
                              w10 * fp[(i + 1) * 6 + j] + w11 * fp[(i + 1) * 6 + j + 1];
}

// Adds wr * |P - R| to *loss and wr * sign(P - R) to coef, for one reference patch.
__device__ __forceinline__ void tgvc_compare(const float P[25], const float R[25], float wr,
                                             float coef[25], float* loss) {
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < 25; ++t) {
        float d = P[t] - R[t];
        s += fabsf(d);
        coef[t] += (d > 0.f) ? wr : ((d < 0.f) ? -wr : 0.f);
    }
    *loss += wr * s;
}

// Spreads the 25 tap coefficients onto the 6x6 footprint with the bilinear weights.
__device__ __forceinline__ void tgvc_footprint_grad(const float coef[25], TgvcBil b,
                                                    float G[36]) {
    float w00 = (1.f - b.fx) * (1.f - b.fy), w01 = b.fx * (1.f - b.fy);
    float w10 = (1.f - b.fx) * b.fy, w11 = b.fx * b.fy;
#pragma unroll
    for (int i = 0; i < 36; ++i) G[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 5; ++i)
#pragma unroll
        for (int j = 0; j < 5; ++j) {
            float c = coef[i * 5 + j];
            G[i * 6 + j] += c * w00;
            G[i * 6 + j + 1] += c * w01;
            G[(i + 1) * 6 + j] += c * w10;
            G[(i + 1) * 6 + j + 1] += c * w11;
        }
}

// The track's contribution for one (frame, channel): loss (weighted, unnormalised) and the
// 25 tap coefficients sum_r W*vis*vis*sign(d_r). Returns false when both weights are zero.
template <typename T, typename XLoad>
__device__ __forceinline__ bool tgvc_track_terms(XLoad xload, const T* ref, const float* pos,
                                                 const float* vis, int F, int C, int h, int w,
                                                 int k, int f, int c, float wf0, float wf1,
                                                 TgvcBil* bx, float coef[25], float* loss) {
    int n = F - 1;
    float vf = __ldg(vis + (long long)k * F + f);
    float wr0 = wf0 * vf * __ldg(vis + (long long)k * F);
    float wr1 = wf1 * vf * __ldg(vis + (long long)k * F + n);
    if (wr0 == 0.f && wr1 == 0.f) return false;
    const float* pk = pos + (long long)k * F * 2;
    *bx = tgvc_bil(__ldg(pk + 2 * f), __ldg(pk + 2 * f + 1), h, w);
    float P[25], R[25];
    xload(*bx, P);
#pragma unroll
    for (int t = 0; t < 25; ++t) coef[t] = 0.f;
    long long plane = (long long)h * w;
    if (wr0 != 0.f) {
        tgvc_patch_global(ref + (long long)c * plane, h, w,
                          tgvc_bil(__ldg(pk), __ldg(pk + 1), h, w), R);
        tgvc_compare(P, R, wr0, coef, loss);
    }
    if (wr1 != 0.f) {
        tgvc_patch_global(ref + ((long long)C + c) * plane, h, w,
                          tgvc_bil(__ldg(pk + 2 * n), __ldg(pk + 2 * n + 1), h, w), R);
        tgvc_compare(P, R, wr1, coef, loss);
    }
    return true;
}

// Reads the 5x5 x0 taps from the shared-memory tile (halo TGVC_HALO, zero outside the plane).
struct TgvcSmemLoad {
    const float* s;
    int y0, x0, sh, sw; // region origin (plane coords of s[0]) and size
    __device__ __forceinline__ void operator()(TgvcBil b, float taps[25]) const {
        float fp[36];
#pragma unroll
        for (int i = 0; i < 6; ++i) {
            int y = b.y - 2 + i - y0;
#pragma unroll
            for (int j = 0; j < 6; ++j) {
                int x = b.x - 2 + j - x0;
                fp[i * 6 + j] = (y >= 0 && y < sh && x >= 0 && x < sw) ? s[y * sw + x] : 0.f;
            }
        }
        float w00 = (1.f - b.fx) * (1.f - b.fy), w01 = b.fx * (1.f - b.fy);
        float w10 = (1.f - b.fx) * b.fy, w11 = b.fx * b.fy;
#pragma unroll
        for (int i = 0; i < 5; ++i)
#pragma unroll
            for (int j = 0; j < 5; ++j)
                taps[i * 5 + j] = w00 * fp[i * 6 + j] + w01 * fp[i * 6 + j + 1] +
                                  w10 * fp[(i + 1) * 6 + j] + w11 * fp[(i + 1) * 6 + j + 1];
    }
};

template <typename T>
struct TgvcGlobalLoad {
    const T* plane;
    int h, w;
    __device__ __forceinline__ void operator()(TgvcBil b, float taps[25]) const {
        tgvc_patch_global(plane, h, w, b, taps);
    }
};

__device__ __forceinline__ void tgvc_acc_add(unsigned long long* a, float g) {
    atomicAdd(a, (unsigned long long)__float2ll_rn(g * TGVC_FIXED_SCALE));
}
__device__ __forceinline__ void tgvc_acc_add(float* a, float g) { atomicAdd(a, g); }
__device__ __forceinline__ float tgvc_acc_get(const unsigned long long* a) {
    return __ll2float_rn((long long)*a) * TGVC_FIXED_INV;
}
__device__ __forceinline__ float tgvc_acc_get(const float* a) { return *a; }

// Deterministic block sum (fixed shuffle tree, then the warps in order).
__device__ __forceinline__ float tgvc_block_sum(float v) {
    __shared__ float warp_sums[TGVC_BLOCK / 32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) warp_sums[wid] = v;
    __syncthreads();
    float s = 0.f;
    if (threadIdx.x == 0)
        for (int i = 0; i < (int)(blockDim.x >> 5); ++i) s += warp_sums[i];
    return s; // valid in thread 0
}

template <typename T, typename Acc>
__device__ void tgvc_guidance_tile(const T* __restrict__ x0, const T* __restrict__ ref,
                                   const float* __restrict__ pos, const float* __restrict__ vis,
                                   int F, int C, int h, int w, int K, int tile_h, int tile_w,
                                   float* grad, T* z, float step, float* partials) {
    extern __shared__ unsigned long long tgvc_smem_u64[];
    Acc* acc = reinterpret_cast<Acc*>(tgvc_smem_u64);
    int tiles_x = (w + tile_w - 1) / tile_w;
    int tx = blockIdx.x % tiles_x, ty = blockIdx.x / tiles_x;
    int c = blockIdx.y, f = blockIdx.z;
    int gx0 = tx * tile_w, gy0 = ty * tile_h;
    int th = min(tile_h, h - gy0), tw = min(tile_w, w - gx0);
    int sh = th + 2 * TGVC_HALO, sw = tw + 2 * TGVC_HALO;
    int acc_n = tile_h * tile_w;
    int acc_bytes = ((acc_n * (int)sizeof(Acc)) + 15) & ~15;
    float* xs = reinterpret_cast<float*>(reinterpret_cast<char*>(tgvc_smem_u64) + acc_bytes);
    long long plane = (long long)h * w;
    long long pbase = ((long long)f * C + c) * plane;
    float wf0, wf1;
    tgvc_pair_weights(f, F, &wf0, &wf1);
    bool active = (wf0 > 0.f || wf1 > 0.f) && K > 0;
    float lsum = 0.f;
    if (active) {
        for (int i = threadIdx.x; i < acc_n; i += blockDim.x) acc[i] = (Acc)0;
        for (int i = threadIdx.x; i < sh * sw; i += blockDim.x) {
            int y = gy0 - TGVC_HALO + i / sw, x = gx0 - TGVC_HALO + i % sw;
            xs[i] = (y >= 0 && y < h && x >= 0 && x < w) ? tgvc_ld(x0 + pbase, (long long)y * w + x)
                                                          : 0.f;
        }
        __syncthreads();
        TgvcSmemLoad xload{xs, gy0 - TGVC_HALO, gx0 - TGVC_HALO, sh, sw};
        for (int k = threadIdx.x; k < K; k += blockDim.x) {
            const float* pk = pos + ((long long)k * F + f) * 2;
            TgvcBil b = tgvc_bil(__ldg(pk), __ldg(pk + 1), h, w);
            bool touches = b.x + 3 >= gx0 && b.x - 2 < gx0 + tw && b.y + 3 >= gy0 && b.y - 2 < gy0 + th;
            int ox = min(max(b.x, 0), w - 1) / tile_w, oy = min(max(b.y, 0), h - 1) / tile_h;
            bool owns = ox == tx && oy == ty;
            if (!touches && !owns) continue;
            float coef[25], l = 0.f;
            if (!tgvc_track_terms(xload, ref, pos, vis, F, C, h, w, k, f, c, wf0, wf1, &b, coef, &l))
                continue;
            if (owns) lsum += l;
            if (!touches) continue;
            float G[36];
            tgvc_footprint_grad(coef, b, G);
#pragma unroll
            for (int i = 0; i < 6; ++i) {
                int y = b.y - 2 + i - gy0;
#pragma unroll
                for (int j = 0; j < 6; ++j) {
                    int x = b.x - 2 + j - gx0;
                    if (y >= 0 && y < th && x >= 0 && x < tw && G[i * 6 + j] != 0.f)
                        tgvc_acc_add(&acc[y * tile_w + x], G[i * 6 + j]);
                }
            }
        }
        __syncthreads();
    }
    float inv = tgvc_inv_norm(F, C, K);
    for (int i = threadIdx.x; i < th * tw; i += blockDim.x) {
        int y = i / tw, x = i % tw;
        long long gi = pbase + (long long)(gy0 + y) * w + gx0 + x;
        float g = active ? tgvc_acc_get(&acc[y * tile_w + x]) * inv : 0.f;
        if (grad) grad[gi] = g;
        if (z && active) tgvc_st(z, gi, tgvc_ld_plain(z, gi) - step * g);
    }
    float s = tgvc_block_sum(lsum);
    if (partials && threadIdx.x == 0)
        partials[((long long)blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x] = s;
}

#define TGVC_GUIDANCE_ARGS(T)                                                                  \
    const T *x0, const T *ref, const float *pos, const float *vis, int F, int C, int h, int w, \
        int K, int tile_h, int tile_w, float *grad, T *z, float step, float *partials
#define TGVC_GUIDANCE_PASS x0, ref, pos, vis, F, C, h, w, K, tile_h, tile_w, grad, z, step, partials

extern "C" __global__ void __launch_bounds__(TGVC_BLOCK, TGVC_MIN_BLOCKS)
tgvc_guidance_f32(TGVC_GUIDANCE_ARGS(float)) {
    tgvc_guidance_tile<float, unsigned long long>(TGVC_GUIDANCE_PASS);
}
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK, TGVC_MIN_BLOCKS)
tgvc_guidance_f16(TGVC_GUIDANCE_ARGS(tgvc_half)) {
    tgvc_guidance_tile<tgvc_half, unsigned long long>(TGVC_GUIDANCE_PASS);
}
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK, TGVC_MIN_BLOCKS)
tgvc_guidance_fsmem_f32(TGVC_GUIDANCE_ARGS(float)) {
    tgvc_guidance_tile<float, float>(TGVC_GUIDANCE_PASS);
}

// Sums the per-block partials in a fixed order and normalises: loss[0] = L.
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK)
tgvc_guidance_finalize(const float* partials, int n, int F, int C, int K, float* loss) {
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
    s = tgvc_block_sum(s);
    if (threadIdx.x == 0) loss[0] = s * tgvc_inv_norm(F, C, K);
}

// Benchmark baseline: one thread per (track, frame, channel), global float atomics (grad must
// be zeroed first; the order of the atomics, hence the last bits, varies between runs).
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK)
tgvc_guidance_scatter_f32(const float* x0, const float* ref, const float* pos, const float* vis,
                          int F, int C, int h, int w, int K, float* grad, float* partials) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    float l = 0.f;
    if (idx < (long long)K * F * C) {
        int c = (int)(idx % C), f = (int)((idx / C) % F), k = (int)(idx / ((long long)C * F));
        float wf0, wf1;
        tgvc_pair_weights(f, F, &wf0, &wf1);
        long long plane = (long long)h * w, pbase = ((long long)f * C + c) * plane;
        TgvcGlobalLoad<float> xload{x0 + pbase, h, w};
        TgvcBil b;
        float coef[25];
        if ((wf0 > 0.f || wf1 > 0.f) &&
            tgvc_track_terms(xload, ref, pos, vis, F, C, h, w, k, f, c, wf0, wf1, &b, coef, &l)) {
            float G[36], inv = tgvc_inv_norm(F, C, K);
            tgvc_footprint_grad(coef, b, G);
#pragma unroll
            for (int i = 0; i < 6; ++i) {
                int y = b.y - 2 + i;
#pragma unroll
                for (int j = 0; j < 6; ++j) {
                    int x = b.x - 2 + j;
                    if (y >= 0 && y < h && x >= 0 && x < w && G[i * 6 + j] != 0.f)
                        atomicAdd(grad + pbase + (long long)y * w + x, G[i * 6 + j] * inv);
                }
            }
        }
    }
    float s = tgvc_block_sum(l);
    if (partials && threadIdx.x == 0) partials[blockIdx.x] = s;
}

// out = a * x + b * y over n elements (out may alias x or y). DDIM with eta = 0 is
// z <- a z + b eps with a = sqrt(abar_prev / abar_t),
// b = sqrt(1 - abar_prev) - sqrt(abar_prev) sqrt(1 - abar_t) / sqrt(abar_t); the x0 prediction
// is a = 1 / sqrt(abar_t), b = -sqrt(1 - abar_t) / sqrt(abar_t).
template <typename T>
__device__ __forceinline__ void tgvc_axpby(const T* x, const T* y, T* out, long long n, float a,
                                           float b) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        tgvc_st(out, i, a * tgvc_ld_plain(x, i) + b * tgvc_ld_plain(y, i));
}
extern "C" __global__ void tgvc_axpby_f32(const float* x, const float* y, float* out, long long n,
                                          float a, float b) {
    tgvc_axpby(x, y, out, n, a, b);
}
extern "C" __global__ void tgvc_axpby_f16(const tgvc_half* x, const tgvc_half* y, tgvc_half* out,
                                          long long n, float a, float b) {
    tgvc_axpby(x, y, out, n, a, b);
}
extern "C" __global__ void tgvc_f32_to_f16(const float* src, tgvc_half* dst, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        tgvc_st(dst, i, src[i]);
}
extern "C" __global__ void tgvc_f16_to_f32(const tgvc_half* src, float* dst, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = tgvc_ld_plain(src, i);
}

#ifndef __CUDACC_RTC__
// ---- Host launchers (nvcc builds only; NVRTC users launch the kernels above themselves). ----
// Declared in runtime/cpp/include/tgvc/guidance_cuda.h. Return a cudaError_t as int.
extern "C" size_t tgvc_guidance_smem_bytes(int tile_h, int tile_w, int acc_bytes) {
    size_t acc = ((size_t)tile_h * tile_w * acc_bytes + 15) & ~(size_t)15;
    return acc + (size_t)(tile_h + 2 * TGVC_HALO) * (tile_w + 2 * TGVC_HALO) * sizeof(float);
}

// Tiles of at most 40 x 64 latent pixels (35 KB of shared memory), balanced over the plane.
extern "C" void tgvc_guidance_default_tile(int h, int w, int* tile_h, int* tile_w) {
    int ny = (h + 39) / 40, nx = (w + 63) / 64;
    *tile_h = (h + ny - 1) / ny;
    *tile_w = (w + nx - 1) / nx;
}

// Floats of device workspace tgvc_cuda_guidance needs (one loss partial per block).
extern "C" size_t tgvc_guidance_workspace_floats(int F, int C, int h, int w) {
    int th, tw;
    tgvc_guidance_default_tile(h, w, &th, &tw);
    return (size_t)((h + th - 1) / th) * ((w + tw - 1) / tw) * C * F;
}

// dtype 0: fp32 latents, 1: fp16. grad (fp32) and z may each be NULL; loss (one float) too.
extern "C" int tgvc_cuda_guidance(int dtype, const void* x0, const void* ref, const float* pos,
                                  const float* vis, int F, int C, int h, int w, int K,
                                  float* grad, void* z, float step, float* loss,
                                  float* workspace, cudaStream_t stream) {
    if (F < 1 || C < 1 || h < 1 || w < 1 || K < 0 || (dtype != 0 && dtype != 1))
        return (int)cudaErrorInvalidValue;
    int th, tw;
    tgvc_guidance_default_tile(h, w, &th, &tw);
    dim3 grid((unsigned)(((h + th - 1) / th) * ((w + tw - 1) / tw)), (unsigned)C, (unsigned)F);
    size_t smem = tgvc_guidance_smem_bytes(th, tw, 8);
    if (dtype == 0)
        tgvc_guidance_f32<<<grid, TGVC_BLOCK, smem, stream>>>(
            (const float*)x0, (const float*)ref, pos, vis, F, C, h, w, K, th, tw, grad,
            (float*)z, step, workspace);
    else
        tgvc_guidance_f16<<<grid, TGVC_BLOCK, smem, stream>>>(
            (const tgvc_half*)x0, (const tgvc_half*)ref, pos, vis, F, C, h, w, K, th, tw, grad,
            (tgvc_half*)z, step, workspace);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || !loss) return (int)e;
    tgvc_guidance_finalize<<<1, TGVC_BLOCK, 0, stream>>>(
        workspace, (int)(grid.x * grid.y * grid.z), F, C, K, loss);
    return (int)cudaGetLastError();
}

extern "C" int tgvc_cuda_axpby(int dtype, const void* x, const void* y, void* out, long long n,
                               float a, float b, cudaStream_t stream) {
    unsigned blocks = (unsigned)((n + TGVC_BLOCK - 1) / TGVC_BLOCK);
    if (blocks > 65535u) blocks = 65535u;
    if (n <= 0) return 0;
    if (dtype == 0)
        tgvc_axpby_f32<<<blocks, TGVC_BLOCK, 0, stream>>>((const float*)x, (const float*)y,
                                                          (float*)out, n, a, b);
    else
        tgvc_axpby_f16<<<blocks, TGVC_BLOCK, 0, stream>>>(
            (const tgvc_half*)x, (const tgvc_half*)y, (tgvc_half*)out, n, a, b);
    return (int)cudaGetLastError();
}

// to_half != 0: fp32 src -> fp16 dst; else fp16 src -> fp32 dst.
extern "C" int tgvc_cuda_convert(int to_half, const void* src, void* dst, long long n,
                                 cudaStream_t stream) {
    unsigned blocks = (unsigned)((n + TGVC_BLOCK - 1) / TGVC_BLOCK);
    if (blocks > 65535u) blocks = 65535u;
    if (n <= 0) return 0;
    if (to_half)
        tgvc_f32_to_f16<<<blocks, TGVC_BLOCK, 0, stream>>>((const float*)src, (tgvc_half*)dst, n);
    else
        tgvc_f16_to_f32<<<blocks, TGVC_BLOCK, 0, stream>>>((const tgvc_half*)src, (float*)dst, n);
    return (int)cudaGetLastError();
}
#endif  // __CUDACC_RTC__
