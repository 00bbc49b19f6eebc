// Trajectory guidance on the GPU: the one CUDA source shared by the Python launcher (NVRTC), the
// C++ library (nvcc) and the CPU emulation the tests compile with g++ (cuda_emu.h, TGVC_EMU). The
// maths is docs/guidance.md; this file must compute the same numbers as
// tgvc_rt/diffusion/guidance.py and runtime/cpp/src/guidance_cpu.cpp.
//
// Layouts (row-major, contiguous): x0, z, grad [F, C, h, w]; ref [2, C, h, w]; pos [K, F, 2]
// (latent u, v); vis [K, F] (values in [0, 1]). Latents are fp32 (`_f32` kernels) or IEEE
// binary16 (`_f16`, the bit layout of __half kept as unsigned short so NVRTC needs no header);
// arithmetic is fp32.
//
// Two kernels. `tgvc_guidance_prepare` runs once per window (positions and reference latents are
// constants of a window): per (frame, track) the record {u, v, W[f,0] vis vis, W[f,1] vis vis}
// ([F][K], one 16-byte load), and the 25 reference taps of every (reference, channel, track)
// ([2][C][25][K], track-minor so that a warp's reads coalesce). `tgvc_guidance_step` runs at every
// sampler step: one block per (tile, channel, frame) stages x0 over the tile plus a 5-pixel halo in
// shared memory and walks the tracks whose 6x6 bilinear footprint touches the tile (thread per
// track). A track's 5 tap rows are streamed: interpolate a row of x0 taps, compare with the
// reference taps (sign and |d|), spread the row's coefficients horizontally, finish one footprint
// row and add it to the accumulator at once (12 live gradient registers, no per-pixel bounds
// checks: the accumulator covers the halo). Accumulation is deterministic fixed point: q =
// round(g * 2^30) (|g| <= 1 per track) is split into its low 16 bits (unsigned) and the rest
// (signed), each summed with a native 32-bit shared-memory atomic add; integer sums do not depend
// on the order the atomics land in, so results are bit-identical across runs (exact for K <=
// 65536 tracks). The block then writes grad and/or applies z -= step * grad to its own pixels, and
// the last block to finish sums the per-block loss partials in a fixed order (a counter in the
// workspace, reset by prepare and by that block): one launch per step.
//
// Entry points (extern "C", stable):
//   tgvc_guidance_prepare_{f32,f16}(ref, pos, vis, F, C, h, w, K, trk, rp, counter)
//       grid ceil(max(F*K, 2*C*K, 1) / TGVC_BLOCK), block TGVC_BLOCK
//   tgvc_guidance_step_{f32,f16}(x0, trk, rp, F, C, h, w, K, tile_h, tile_w, grad, z, step,
//                                partials, counter, loss)
//       grid (tiles, C, F), block TGVC_BLOCK, dynamic smem tgvc_guidance_smem_bytes(tile_h, tile_w)
//   tgvc_axpby_{f32,f16}(x, y, out, n, a, b)   out = a*x + b*y (DDIM step, x0 prediction)
//   tgvc_f32_to_f16(src, dst, n), tgvc_f16_to_f32(src, dst, n)
// trk: 4*F*K floats (16-byte aligned), rp: 50*C*K floats, counter: one unsigned int, partials: one
// float per step block. `step` is s * N * (1 - abar_t) / sqrt(abar_t); z may be NULL (gradient
// only), grad may be NULL (update only), loss may be NULL (no loss). z must not alias x0.
// Positions must be finite; any position further than 16 latent pixels outside the plane behaves
// like one 16 pixels outside (all its taps read 0), which is exact.

#if defined(TGVC_EMU)
#include "cuda_emu.h"
#elif !defined(__CUDACC_RTC__)
#include <cuda_runtime.h>
#include <stddef.h>
#endif

#define TGVC_HALO 5
#ifndef TGVC_BLOCK
#define TGVC_BLOCK 256 /* threads per block (-D to tune; the launcher passes the same value) */
#endif
#ifndef TGVC_MIN_BLOCKS
#define TGVC_MIN_BLOCKS 4 /* step blocks per SM asked of the register allocator (-D to tune) */
#endif
#define TGVC_FIX_SCALE 1073741824.0f         /* 2^30 */
#define TGVC_FIX_INV 9.313225746154785e-10f  /* 2^-30 */
#define TGVC_MAX_TRACKS 65536                /* the fixed-point sums are exact up to this K */

#ifdef TGVC_EMU
#define TGVC_DYN_SMEM(name) float* name = tgvc_emu_smem()
#else
#define TGVC_DYN_SMEM(name) extern __shared__ float name[]
#endif

typedef unsigned short tgvc_half; /* IEEE binary16 bits (same layout as __half) */

struct alignas(16) TgvcTrk {
    float u, v;   // position in frame f (latent pixels)
    float w0, w1; // W[f, r] * vis[k, f] * vis[k, r'] for r = 0, 1
};

__device__ __forceinline__ float tgvc_h2f(unsigned short b) {
#ifdef TGVC_EMU
    return tgvc_emu_h2f(b);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(b));
    return f;
#endif
}
__device__ __forceinline__ unsigned short tgvc_f2h(float v) {
#ifdef TGVC_EMU
    return tgvc_emu_f2h(v);
#else
    unsigned short b;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(b) : "f"(v));
    return b;
#endif
}
__device__ __forceinline__ float tgvc_ld(const float* p, long long i) { return __ldg(p + i); }
__device__ __forceinline__ float tgvc_ld(const tgvc_half* p, long long i) {
    return tgvc_h2f(__ldg(p + i));
}
__device__ __forceinline__ void tgvc_st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void tgvc_st(tgvc_half* p, long long i, float v) { p[i] = tgvc_f2h(v); }
__device__ __forceinline__ float tgvc_ld_plain(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float tgvc_ld_plain(const tgvc_half* p, long long i) {
    return tgvc_h2f(p[i]);
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

// Deterministic block sum (fixed shuffle tree, then the warps in order); valid in thread 0.
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
        for (int i = 0; i < TGVC_BLOCK / 32; ++i) s += warp_sums[i];
    return s;
}

// ---- prepare (once per window) ------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ void tgvc_prepare(const T* ref, const float* pos, const float* vis,
                                             int F, int C, int h, int w, int K, TgvcTrk* trk,
                                             float* rp, unsigned* counter) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int n = F - 1;
    if (i == 0 && counter) *counter = 0u;
    if (i < (long long)F * K) {
        int f = (int)(i / K), k = (int)(i % K);
        float wf0, wf1;
        tgvc_pair_weights(f, F, &wf0, &wf1);
        float vf = vis[(long long)k * F + f];
        TgvcTrk t;
        t.u = pos[((long long)k * F + f) * 2];
        t.v = pos[((long long)k * F + f) * 2 + 1];
        t.w0 = wf0 * vf * vis[(long long)k * F];
        t.w1 = wf1 * vf * vis[(long long)k * F + n];
        trk[i] = t;
    }
    if (i < 2LL * C * K) {
        int k = (int)(i % K), c = (int)((i / K) % C), r = (int)(i / ((long long)C * K));
        const float* pk = pos + ((long long)k * F + (r ? n : 0)) * 2;
        TgvcBil b = tgvc_bil(pk[0], pk[1], h, w);
        const T* plane = ref + ((long long)r * C + c) * h * w;
        float g00 = (1.f - b.fx) * (1.f - b.fy), g01 = b.fx * (1.f - b.fy);
        float g10 = (1.f - b.fx) * b.fy, g11 = b.fx * b.fy;
        float* o = rp + (long long)(r * C + c) * 25 * K + k;
        for (int ty = 0; ty < 5; ++ty)
            for (int tx = 0; tx < 5; ++tx) {
                float s = 0.f;
                for (int q = 0; q < 4; ++q) {
                    int y = b.y - 2 + ty + (q >> 1), x = b.x - 2 + tx + (q & 1);
                    float wq = q == 0 ? g00 : q == 1 ? g01 : q == 2 ? g10 : g11;
                    if (y >= 0 && y < h && x >= 0 && x < w) s += wq * tgvc_ld(plane, (long long)y * w + x);
                }
                o[(long long)(ty * 5 + tx) * K] = s;
            }
    }
}

// ---- step (every sampler step) ------------------------------------------------------------------
__device__ __forceinline__ void tgvc_fix_add(unsigned* lo, int* hi, float g) {
    int q = __float2int_rn(g * TGVC_FIX_SCALE);
    atomicAdd(lo, (unsigned)q & 0xffffu);
    atomicAdd(hi, q >> 16);
}

// sign(P - R) * w into *coef and w |P - R| into *loss for one tap and one reference.
__device__ __forceinline__ void tgvc_cmp(float P, float R, float wr, float* coef, float* loss) {
    float d = P - R;
    *loss += wr * fabsf(d);
    *coef += (d > 0.f) ? wr : ((d < 0.f) ? -wr : 0.f);
}

// One track whose footprint lies in the staged region: xr / lo / hi point at the footprint's
// top-left pixel (row stride sw); r0 / r1 at the track's first reference tap (tap stride K).
// Returns the weighted, unnormalised loss.
template <bool U0, bool U1>
__device__ __forceinline__ float tgvc_track(const float* xr, unsigned* lo, int* hi, int sw,
                                            float fx, float fy, const float* r0, const float* r1,
                                            int K, float w0, float w1) {
    float gx = 1.f - fx, gy = 1.f - fy, l = 0.f;
    float hp[5], gc[6];
#pragma unroll
    for (int j = 0; j < 5; ++j) hp[j] = xr[j] + fx * (xr[j + 1] - xr[j]);
#pragma unroll
    for (int j = 0; j < 6; ++j) gc[j] = 0.f;
#pragma unroll
    for (int i = 0; i < 5; ++i) {
        const float* xb = xr + (i + 1) * sw;
        float coef[5];
#pragma unroll
        for (int j = 0; j < 5; ++j) {
            float hb = xb[j] + fx * (xb[j + 1] - xb[j]);
            float P = hp[j] + fy * (hb - hp[j]);
            hp[j] = hb;
            coef[j] = 0.f;
            if (U0) tgvc_cmp(P, __ldg(r0 + (long long)(i * 5 + j) * K), w0, &coef[j], &l);
            if (U1) tgvc_cmp(P, __ldg(r1 + (long long)(i * 5 + j) * K), w1, &coef[j], &l);
        }
        float ch[6];
        ch[0] = coef[0] * gx;
#pragma unroll
        for (int j = 1; j < 5; ++j) ch[j] = coef[j] * gx + coef[j - 1] * fx;
        ch[5] = coef[4] * fx;
#pragma unroll
        for (int j = 0; j < 6; ++j) {
            tgvc_fix_add(lo + i * sw + j, hi + i * sw + j, gc[j] + ch[j] * gy);
            gc[j] = ch[j] * fy;
        }
    }
#pragma unroll
    for (int j = 0; j < 6; ++j) tgvc_fix_add(lo + 5 * sw + j, hi + 5 * sw + j, gc[j]);
    return l;
}

// Tap row i of one track (small K: a track is split over 5 threads, one tap row each, so that
// more threads work). Same arguments as tgvc_track; adds footprint rows i and i + 1.
template <bool U0, bool U1>
__device__ __forceinline__ float tgvc_track_row(const float* xr, unsigned* lo, int* hi, int sw,
                                                float fx, float fy, const float* r0,
                                                const float* r1, int K, float w0, float w1,
                                                int i) {
    float gx = 1.f - fx, gy = 1.f - fy, l = 0.f;
    const float* xa = xr + i * sw;
    float coef[5];
#pragma unroll
    for (int j = 0; j < 5; ++j) {
        float ha = xa[j] + fx * (xa[j + 1] - xa[j]);
        float hb = xa[sw + j] + fx * (xa[sw + j + 1] - xa[sw + j]);
        float P = ha + fy * (hb - ha);
        coef[j] = 0.f;
        if (U0) tgvc_cmp(P, __ldg(r0 + (long long)(i * 5 + j) * K), w0, &coef[j], &l);
        if (U1) tgvc_cmp(P, __ldg(r1 + (long long)(i * 5 + j) * K), w1, &coef[j], &l);
    }
    lo += i * sw;
    hi += i * sw;
#pragma unroll
    for (int j = 0; j < 6; ++j) {
        float ch = (j < 5 ? coef[j] * gx : 0.f) + (j > 0 ? coef[j - 1] * fx : 0.f);
        tgvc_fix_add(lo + j, hi + j, ch * gy);
        tgvc_fix_add(lo + sw + j, hi + sw + j, ch * fy);
    }
    return l;
}

// A track entirely outside the plane: its x0 taps are all 0, only the loss remains.
template <bool U0, bool U1>
__device__ __forceinline__ float tgvc_track_outside(const float* r0, const float* r1, int K,
                                                    float w0, float w1, int i0, int i1) {
    float l = 0.f;
    for (int t = 5 * i0; t < 5 * i1; ++t) {
        if (U0) l += w0 * fabsf(__ldg(r0 + (long long)t * K));
        if (U1) l += w1 * fabsf(__ldg(r1 + (long long)t * K));
    }
    return l;
}

struct TgvcTile {
    int tx, ty, gx0, gy0, th, tw, sw, tile_h, tile_w;
};

// Threads per track: with -DTGVC_MAX_SEGMENTS=5, 5 (one tap row each) when that shortens the walk,
// ceil(5K / TGVC_BLOCK) < 5 ceil(K / TGVC_BLOCK), i.e. when K leaves threads idle; else 1. Default
// 1 (whole tracks): on an H100 the split measured slower ([16,32,40,64], K=100: 0.020 vs 0.018 ms
// per step in a CUDA graph; its 24 atomics per row against 14.4 cost more than the shorter walk).
#ifndef TGVC_MAX_SEGMENTS
#define TGVC_MAX_SEGMENTS 1
#endif
__host__ __device__ __forceinline__ int tgvc_segments(int K) {
    if (TGVC_MAX_SEGMENTS < 5) return 1;
    return (5 * K + TGVC_BLOCK - 1) / TGVC_BLOCK < 5 * ((K + TGVC_BLOCK - 1) / TGVC_BLOCK) ? 5 : 1;
}

// The block's walk over the tracks of frame f (work item = track k, row segment s; k fastest so a
// warp's loads coalesce); returns this thread's loss share (owned tracks).
template <bool U0, bool U1>
__device__ __forceinline__ float tgvc_walk(const TgvcTrk* __restrict__ tf, const float* r0,
                                           const float* r1, int K, int h, int w, TgvcTile T,
                                           const float* xs, unsigned* lo, int* hi) {
    float lsum = 0.f;
    int S = tgvc_segments(K);
    for (int it = threadIdx.x; it < S * K; it += TGVC_BLOCK) {
        int s = it / K, k = it - s * K;
        int i0 = S == 1 ? 0 : s, i1 = S == 1 ? 5 : s + 1;
        TgvcTrk t = tf[k];
        if ((U0 ? t.w0 : 0.f) == 0.f && (U1 ? t.w1 : 0.f) == 0.f) continue;
        TgvcBil b = tgvc_bil(t.u, t.v, h, w);
        bool touches = b.x + 3 >= T.gx0 && b.x - 2 < T.gx0 + T.tw && b.y + 3 >= T.gy0 &&
                       b.y - 2 < T.gy0 + T.th;
        bool owns = min(max(b.x, 0), w - 1) / T.tile_w == T.tx &&
                    min(max(b.y, 0), h - 1) / T.tile_h == T.ty;
        if (touches) {
            // footprint origin in the staged region (plane coords of its [0] are gx0-5, gy0-5)
            int o = (b.y - 2 - T.gy0 + TGVC_HALO) * T.sw + (b.x - 2 - T.gx0 + TGVC_HALO);
            float l = S == 1 ? tgvc_track<U0, U1>(xs + o, lo + o, hi + o, T.sw, b.fx, b.fy, r0 + k,
                                                  r1 + k, K, t.w0, t.w1)
                             : tgvc_track_row<U0, U1>(xs + o, lo + o, hi + o, T.sw, b.fx, b.fy,
                                                      r0 + k, r1 + k, K, t.w0, t.w1, s);
            if (owns) lsum += l;
        } else if (owns) {  // owner tile not touched: the footprint is entirely off the plane
            lsum += tgvc_track_outside<U0, U1>(r0 + k, r1 + k, K, t.w0, t.w1, i0, i1);
        }
    }
    return lsum;
}

template <typename T>
__device__ __forceinline__ void tgvc_step(const T* __restrict__ x0, const TgvcTrk* __restrict__ trk,
                                          const float* __restrict__ rp, int F, int C, int h, int w,
                                          int K, int tile_h, int tile_w, float* grad, T* z,
                                          float step, float* partials, unsigned* counter,
                                          float* loss) {
    TGVC_DYN_SMEM(tgvc_smem);
    __shared__ int is_last;
    TgvcTile tl;
    int tiles_x = (w + tile_w - 1) / tile_w;
    tl.tx = blockIdx.x % tiles_x;
    tl.ty = blockIdx.x / tiles_x;
    tl.tile_h = tile_h;
    tl.tile_w = tile_w;
    tl.gx0 = tl.tx * tile_w;
    tl.gy0 = tl.ty * tile_h;
    tl.th = min(tile_h, h - tl.gy0);
    tl.tw = min(tile_w, w - tl.gx0);
    tl.sw = tl.tw + 2 * TGVC_HALO;
    int c = blockIdx.y, f = blockIdx.z;
    int sn = (tl.th + 2 * TGVC_HALO) * tl.sw;
    float* xs = tgvc_smem;
    unsigned* lo = reinterpret_cast<unsigned*>(xs + sn);
    int* hi = reinterpret_cast<int*>(lo + sn);
    long long pbase = ((long long)f * C + c) * h * w;
    float wf0, wf1;
    tgvc_pair_weights(f, F, &wf0, &wf1);
    bool active = (wf0 > 0.f || wf1 > 0.f) && K > 0;
    if (!active && !grad && !loss) return;
    float lsum = 0.f;
    if (active) {
        for (int i = threadIdx.x; i < sn; i += TGVC_BLOCK) {
            int y = tl.gy0 - TGVC_HALO + i / tl.sw, x = tl.gx0 - TGVC_HALO + i % tl.sw;
            xs[i] = (y >= 0 && y < h && x >= 0 && x < w) ? tgvc_ld(x0, pbase + (long long)y * w + x)
                                                          : 0.f;
            lo[i] = 0u;
            hi[i] = 0;
        }
        __syncthreads();
        const TgvcTrk* tf = trk + (long long)f * K;
        const float* r0 = rp + (long long)c * 25 * K;
        const float* r1 = rp + ((long long)C + c) * 25 * K;
        if (wf0 > 0.f && wf1 > 0.f) lsum = tgvc_walk<true, true>(tf, r0, r1, K, h, w, tl, xs, lo, hi);
        else if (wf0 > 0.f) lsum = tgvc_walk<true, false>(tf, r0, r1, K, h, w, tl, xs, lo, hi);
        else lsum = tgvc_walk<false, true>(tf, r0, r1, K, h, w, tl, xs, lo, hi);
        __syncthreads();
    }
    float inv = tgvc_inv_norm(F, C, K);
    for (int i = threadIdx.x; i < tl.th * tl.tw; i += TGVC_BLOCK) {
        int y = i / tl.tw, x = i % tl.tw;
        long long gi = pbase + (long long)(tl.gy0 + y) * w + tl.gx0 + x;
        float g = 0.f;
        if (active) {
            int si = (y + TGVC_HALO) * tl.sw + x + TGVC_HALO;
            long long q = (long long)hi[si] * 65536 + (long long)lo[si];
            g = ((float)q * TGVC_FIX_INV) * inv;
        }
        if (grad) grad[gi] = g;
        if (z && g != 0.f) tgvc_st(z, gi, tgvc_ld_plain(z, gi) - step * g);  // z - 0 == z
    }
    if (!loss) return;
    float s = tgvc_block_sum(lsum);
    unsigned nblocks = gridDim.x * gridDim.y * gridDim.z;
    if (threadIdx.x == 0) {
        partials[(blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x] = s;
        __threadfence();
        is_last = atomicAdd(counter, 1u) == nblocks - 1u;
    }
    __syncthreads();
    if (is_last) {  // every other block's partial is visible: sum them in index order
        __threadfence();
        float a = 0.f;
        for (unsigned i = threadIdx.x; i < nblocks; i += TGVC_BLOCK) a += ((volatile float*)partials)[i];
        a = tgvc_block_sum(a);
        if (threadIdx.x == 0) {
            loss[0] = a * inv;
            *counter = 0u;
        }
    }
}

#define TGVC_PREP_ARGS(T)                                                                      \
    const T *ref, const float *pos, const float *vis, int F, int C, int h, int w, int K,         \
        TgvcTrk *trk, float *rp, unsigned *counter
#define TGVC_PREP_PASS ref, pos, vis, F, C, h, w, K, trk, rp, counter
#define TGVC_STEP_ARGS(T)                                                                      \
    const T *x0, const TgvcTrk *trk, const float *rp, int F, int C, int h, int w, int K,         \
        int tile_h, int tile_w, float *grad, T *z, float step, float *partials,                 \
        unsigned *counter, float *loss
#define TGVC_STEP_PASS \
    x0, trk, rp, F, C, h, w, K, tile_h, tile_w, grad, z, step, partials, counter, loss

extern "C" __global__ void __launch_bounds__(TGVC_BLOCK)
tgvc_guidance_prepare_f32(TGVC_PREP_ARGS(float)) { tgvc_prepare<float>(TGVC_PREP_PASS); }
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK)
tgvc_guidance_prepare_f16(TGVC_PREP_ARGS(tgvc_half)) { tgvc_prepare<tgvc_half>(TGVC_PREP_PASS); }
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK, TGVC_MIN_BLOCKS)
tgvc_guidance_step_f32(TGVC_STEP_ARGS(float)) { tgvc_step<float>(TGVC_STEP_PASS); }
extern "C" __global__ void __launch_bounds__(TGVC_BLOCK, TGVC_MIN_BLOCKS)
tgvc_guidance_step_f16(TGVC_STEP_ARGS(tgvc_half)) { tgvc_step<tgvc_half>(TGVC_STEP_PASS); }

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
#include "guidance_host.inc"
#endif
