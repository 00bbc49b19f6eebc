// Dense-motion grid -> the interpolator's initial-flow inputs on the GPU: float32 [h, w, C] (C = 5:
// flow_a (2), flow_b (2), weight (1); or C = 4 without the weight) -> bilinear resize to [H, W]
// exactly as cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR) does for a float32 grid of
// 5 channels, then edge-padded (bottom/right) to [Hp, Wp] (tgvc_rt.decoder.interpolate._full_res
// then pad_edges; NumPy reference: tgvc_rt/kernels/frame_reference.py). Channels 0-3 go to a
// frame's slot of flow_init [B, 4, Hp, Wp], channel 4 to its slot of init_weight [B, 1, Hp, Wp].
// One source for the Python launcher (NVRTC), the C++ library (nvcc) and the CPU emulation the
// tests compile with g++ (cuda_emu.h, TGVC_EMU).
//
// OpenCV's arithmetic, reproduced bit for bit: per axis, scale = 1 / (out / in) in double, the
// source coordinate f = (float)((d + 0.5) * scale - 0.5), s = floor(f), f -= s (float). Along x
// (the horizontal pass) f is clamped: s < 0 gives (s, f) = (0, 0) and s >= w - 1 gives (w - 1, 0);
// along y it is not: rows s and s + 1 are clamped to [0, h - 1] and weighted (1 - f, f) as they
// are. A row is r = S[s] * (1 - fx) + S[s + 1] * fx, the output r0 * (1 - fy) + r1 * fy, each
// product and sum rounded on its own (no FMA contraction: __fmul_rn / __fadd_rn, and
// __dmul_rn / __dadd_rn for the coordinates).
//
// Entry points (extern "C"):
//   tgvc_flow_upsample_{f32,f16}(grid, h, w, C, H, W, Hp, Wp, scale_x, scale_y, flow, weight,
//                                unit_weight)
//       grid (ceil(Wp / block), Hp, n), any 1-D block. scale_x = 1.0 / ((double)W / w) and scale_y
//       = 1.0 / ((double)H / h), computed by the caller in double (OpenCV's scales; no double
//       division per thread). grid holds n frames [n, h, w, C]; frame i
//       writes flow + i * 4 Hp Wp ([4, Hp, Wp]) and weight + i * Hp Wp ([1, Hp, Wp]), so pass the
//       slots of batch index j (flow_init + j * 4 Hp Wp, init_weight + j * Hp Wp). flow or weight
//       may be NULL (not written). unit_weight != 0 (or C == 4): the weight channel is taken as 1
//       everywhere (the `camera` case) and interpolated like a grid of ones.
// The input grid is fp32; `_f16` writes IEEE binary16 (round to nearest even).

#include "tgvc_kernel.cuh"

#ifdef TGVC_EMU /* g++ -ffp-contract=off: every operation rounds on its own */
static inline double tgvc_fu_coord(int d, double scale) { return ((double)d + 0.5) * scale - 0.5; }
#else
static __device__ __forceinline__ double tgvc_fu_coord(int d, double scale) {
    return __dadd_rn(__dmul_rn((double)d + 0.5, scale), -0.5);
}
#endif

template <typename T>
static __device__ __forceinline__ void tgvc_flow_upsample(const float* grid, int h, int w, int C,
                                                          int H, int W, int Hp, int Wp,
                                                          double scale_x, double scale_y, T* flow,
                                                          T* weight, int unit_weight) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x), y = (int)blockIdx.y;
    if (x >= Wp || y >= Hp) return;
    const int n = (int)blockIdx.z;
    grid += (long long)n * h * w * C;
    const long long plane = (long long)Hp * Wp, o = (long long)y * Wp + x;
    const int dx = min(x, W - 1), dy = min(y, H - 1); /* edge padding */

    float fx = (float)tgvc_fu_coord(dx, scale_x);
    int sx = (int)floorf(fx);
    fx -= (float)sx;
    if (sx < 0) { sx = 0; fx = 0.f; }
    if (sx >= w - 1) { sx = w - 1; fx = 0.f; }
    const int sx1 = min(sx + 1, w - 1);
    float fy = (float)tgvc_fu_coord(dy, scale_y);
    const int sy = (int)floorf(fy);
    fy -= (float)sy;
    const int y0 = min(max(sy, 0), h - 1), y1 = min(max(sy + 1, 0), h - 1);
    const float a0 = 1.f - fx, a1 = fx, b0 = 1.f - fy, b1 = fy;

    const float* r0 = grid + (long long)y0 * w * C;
    const float* r1 = grid + (long long)y1 * w * C;
    const bool unit = unit_weight || C == 4;
    for (int c = 0; c < 5; ++c) {
        T* dst = c < 4 ? flow : weight;
        if (!dst) continue;
        float p00 = 1.f, p01 = 1.f, p10 = 1.f, p11 = 1.f;
        if (c < 4 || !unit) {
            p00 = __ldg(r0 + sx * C + c);
            p01 = __ldg(r0 + sx1 * C + c);
            p10 = __ldg(r1 + sx * C + c);
            p11 = __ldg(r1 + sx1 * C + c);
        }
        const float t0 = tgvc_add_rn(tgvc_mul_rn(p00, a0), tgvc_mul_rn(p01, a1));
        const float t1 = tgvc_add_rn(tgvc_mul_rn(p10, a0), tgvc_mul_rn(p11, a1));
        const float v = tgvc_add_rn(tgvc_mul_rn(t0, b0), tgvc_mul_rn(t1, b1));
        if (c < 4)
            tgvc_st(flow, (long long)n * 4 * plane + c * plane + o, v);
        else
            tgvc_st(weight, (long long)n * plane + o, v);
    }
}

extern "C" __global__ void tgvc_flow_upsample_f32(const float* grid, int h, int w, int C, int H,
                                                  int W, int Hp, int Wp, double scale_x,
                                                  double scale_y, float* flow, float* weight,
                                                  int unit_weight) {
    tgvc_flow_upsample(grid, h, w, C, H, W, Hp, Wp, scale_x, scale_y, flow, weight, unit_weight);
}
extern "C" __global__ void tgvc_flow_upsample_f16(const float* grid, int h, int w, int C, int H,
                                                  int W, int Hp, int Wp, double scale_x,
                                                  double scale_y, tgvc_half* flow,
                                                  tgvc_half* weight, int unit_weight) {
    tgvc_flow_upsample(grid, h, w, C, H, W, Hp, Wp, scale_x, scale_y, flow, weight, unit_weight);
}

#ifndef __CUDACC_RTC__
// Host launcher (nvcc builds and the g++ CPU emulation; declared in tgvc/frame_kernels_cuda.h):
// `count` frames of grid [count, h, w, C] into consecutive slots starting at flow / weight.
// dtype 0: fp32 outputs, 1: fp16. Returns a cudaError_t as int.
extern "C" int tgvc_cuda_flow_upsample(int dtype, const float* grid, int count, int h, int w, int C,
                                       int H, int W, int Hp, int Wp, void* flow, void* weight,
                                       int unit_weight, cudaStream_t stream) {
    if (h < 1 || w < 1 || (C != 4 && C != 5) || H < 1 || W < 1 || Hp < H || Wp < W || count < 0 ||
        Hp > 65535 || count > 65535 || !grid || (dtype != 0 && dtype != 1))
        return (int)cudaErrorInvalidValue;
    if (count == 0 || (!flow && !weight)) return 0;
    const double sx = 1.0 / ((double)W / (double)w), sy = 1.0 / ((double)H / (double)h);
    dim3 grd((unsigned)((Wp + TGVC_FRAME_BLOCK - 1) / TGVC_FRAME_BLOCK), (unsigned)Hp,
             (unsigned)count);
#ifdef TGVC_EMU
    (void)stream;
    if (dtype == 0)
        tgvc_emu_launch(tgvc_flow_upsample_f32, grd, dim3(TGVC_FRAME_BLOCK), 0, grid, h, w, C, H, W,
                        Hp, Wp, sx, sy, (float*)flow, (float*)weight, unit_weight);
    else
        tgvc_emu_launch(tgvc_flow_upsample_f16, grd, dim3(TGVC_FRAME_BLOCK), 0, grid, h, w, C, H, W,
                        Hp, Wp, sx, sy, (tgvc_half*)flow, (tgvc_half*)weight, unit_weight);
#else
    if (dtype == 0)
        tgvc_flow_upsample_f32<<<grd, TGVC_FRAME_BLOCK, 0, stream>>>(
            grid, h, w, C, H, W, Hp, Wp, sx, sy, (float*)flow, (float*)weight, unit_weight);
    else
        tgvc_flow_upsample_f16<<<grd, TGVC_FRAME_BLOCK, 0, stream>>>(
            grid, h, w, C, H, W, Hp, Wp, sx, sy, (tgvc_half*)flow, (tgvc_half*)weight,
            unit_weight);
#endif
    return (int)cudaGetLastError();
}
#endif
