// CPU emulation of the small CUDA subset guidance.cu uses, so that the kernels themselves (not a
// re-implementation) run under g++ on a machine without a GPU: tests/test_guidance_kernel.py
// compiles guidance.cu with -DTGVC_EMU and emu_main.cpp. One OS thread per CUDA thread of a
// block; blocks run one after another (so the static "__shared__" variables are the block's);
// __syncthreads is a barrier of the block's threads, warp shuffles exchange through a buffer with a
// barrier of the warp's 32 threads, atomics are std::atomic_ref. Slow, exact, for small cases.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#include <algorithm>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

using std::max;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1 };

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct TgvcEmuState {
    std::unique_ptr<std::barrier<>> block_bar;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bar;
    std::vector<float> shfl;
    std::vector<float> smem;
};
inline TgvcEmuState& tgvc_emu() {
    static TgvcEmuState s;
    return s;
}
inline float* tgvc_emu_smem() { return tgvc_emu().smem.data(); }

inline void __syncthreads() { tgvc_emu().block_bar->arrive_and_wait(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline float __shfl_down_sync(unsigned, float v, int o) {
    auto& s = tgvc_emu();
    unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    float* buf = s.shfl.data() + 32 * warp;
    buf[lane] = v;
    s.warp_bar[warp]->arrive_and_wait();
    float r = lane + o < 32 ? buf[lane + o] : v;
    s.warp_bar[warp]->arrive_and_wait();
    return r;
}

template <typename T>
inline T __ldg(const T* p) { return *p; }
inline int __float2int_rn(float v) { return (int)std::nearbyint(v); }  // default mode: to even

template <typename T>
inline T atomicAdd(T* p, T v) {
    return std::atomic_ref<T>(*p).fetch_add(v);
}

inline float tgvc_emu_h2f(unsigned short h) {
    unsigned s = (h >> 15) & 1u, e = (h >> 10) & 31u, m = h & 1023u;
    float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                        : std::ldexp((float)(m | 1024u), (int)e - 25);
    return s ? -v : v;
}
inline unsigned short tgvc_emu_f2h(float v) {  // round to nearest even (as cvt.rn.f16.f32)
    unsigned short s = std::signbit(v) ? 0x8000 : 0;
    float a = std::fabs(v);
    if (std::isnan(a)) return s | 0x7e00;
    if (a >= 65520.f) return s | 0x7c00;
    if (a < std::ldexp(1.f, -14)) return s | (unsigned short)std::nearbyint(std::ldexp(a, 24));
    int e;
    std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
    float m = std::nearbyint(std::ldexp(a, 11 - e));  // 11 significant bits
    if (m >= 2048.f) { m /= 2.f; ++e; }
    return s | (unsigned short)(((e + 14) << 10) | ((unsigned)m & 1023u));
}

// kernel<<<grid, block, smem>>>(args...): all blocks in order, blockDim threads each.
template <typename... P, typename... A>
inline void tgvc_emu_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
    auto& s = tgvc_emu();
    unsigned nt = block.x;
    gridDim = grid;
    blockDim = block;
    s.smem.assign(smem / sizeof(float) + 1, NAN);
    s.block_bar = std::make_unique<std::barrier<>>((std::ptrdiff_t)nt);
    s.warp_bar.clear();
    for (unsigned w = 0; w < (nt + 31) / 32; ++w)
        s.warp_bar.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t)std::min(32u, nt - 32 * w)));
    s.shfl.assign(nt + 32, 0.f);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < nt; ++t)
        threads.emplace_back([&, t]() {
            threadIdx = dim3(t, 0, 0);
            for (unsigned bz = 0; bz < grid.z; ++bz)
                for (unsigned by = 0; by < grid.y; ++by)
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = dim3(bx, by, bz);
                        kernel(((P)args)...);
                        s.block_bar->arrive_and_wait();  // the next block reuses shared memory
                        if (t == 0) std::fill(s.smem.begin(), s.smem.end(), NAN);
                        s.block_bar->arrive_and_wait();
                    }
        });
    for (auto& th : threads) th.join();
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
