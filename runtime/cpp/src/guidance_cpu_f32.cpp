// Fast float32 CPU trajectory guidance (docs/guidance.md) behind a plain C ABI (tgvc/guidance.h).
//
// Per window (tgvc_guidance_f32_create) every term (track k, inner frame f) gets its integer cell
// (floor u, floor v), the four bilinear weights shared by all 25 taps of its 5x5 patch, and the
// coefficients W[f, r] * vis[k, f] * vis[k, r'] / (K * Npairs * 25 * C) of its one or two
// references; the reference patches (constants) are gathered once. Terms are stored frame by frame.
//
// Per step (tgvc_guidance_f32_step), for each inner frame f (frames 0 and F-1 never get gradient):
//   1. transpose x0[f] from [C, h*w] to channel-last rows [h*w, C] (one L2-resident plane);
//   2. per term: patch P[tap][c] = sum of the 4 shifted views of the 6x6 window (one weight each),
//      S = sum_r coef_r * sign(P - Q_r) (the x0 patch is gathered once for both references),
//      loss += coef_r * sum |P - Q_r|, and the bilinear transpose of S is added to the gradient rows;
//   3. transpose the gradient rows back into grad[f].
// Window cells outside the plane read a zero row and write to a discarded scratch row, so the
// inner loops have no branches; they run over the C contiguous channels (auto-vectorised).
// Threads (tgvc_guidance_f32_set_threads, default 1) split the inner frames round-robin, each with
// its own Work; a frame's gradient and loss do not depend on the split and the per-frame losses are
// summed in frame order, so results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "tgvc/guidance.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#include <xmmintrin.h>
#define TGVC_SSE2 1
#else
#define TGVC_SSE2 0
#endif

// No a*b+c contraction into FMA: the baseline and the AVX2 variant round every element the same way,
// so results are bit-identical on every x86-64 CPU (measured: no speed cost here).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace {

constexpr int kTaps = 25;   // 5x5 patch
constexpr int kWin = 6;     // 6x6 integer window under a bilinear 5x5 patch
constexpr int kPad = 7;     // 7x7 zero-bordered sign patch for the transpose (scatter)

struct Term {
    int32_t track;     // kept-track index into the reference patches
    int32_t cx, cy;    // floor(u), floor(v) (clamped to +-2^20)
    float wt[4];       // bilinear weights (oy, ox) = (0,0), (0,1), (1,0), (1,1)
    float coef[2];     // per reference; 0 when the pair does not exist
};

struct Cell {
    int32_t cx, cy;
    float wt[4];
};

Cell cell_of(float uf, float vf) {
    const double lim = 1 << 20;  // far outside reads zeros either way; keeps the cast defined
    const double u = std::min(std::max((double)uf, -lim), lim), v = std::min(std::max((double)vf, -lim), lim);
    const double fu = std::floor(u), fv = std::floor(v), ax = u - fu, ay = v - fv;
    Cell c;
    c.cx = (int32_t)fu;
    c.cy = (int32_t)fv;
    c.wt[0] = (float)((1.0 - ay) * (1.0 - ax));
    c.wt[1] = (float)((1.0 - ay) * ax);
    c.wt[2] = (float)(ay * (1.0 - ax));
    c.wt[3] = (float)(ay * ax);
    return c;
}

// dst [S, R] = transpose of src [R, S]: to_rows ([C, h*w] -> [h*w, C]) and back. SSE2 4x4 register
// transposes where available (every x86-64 CPU), plain loops otherwise and for the remainders.
void transpose(const float* __restrict src, float* __restrict dst, int R, int S) {
    int r0 = 0, s0 = 0;
#if TGVC_SSE2
    for (; r0 + 4 <= R; r0 += 4)
        for (s0 = 0; s0 + 4 <= S; s0 += 4) {
            const float* p = src + (size_t)r0 * S + s0;
            __m128 v0 = _mm_loadu_ps(p), v1 = _mm_loadu_ps(p + S), v2 = _mm_loadu_ps(p + 2 * (size_t)S),
                   v3 = _mm_loadu_ps(p + 3 * (size_t)S);
            _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
            float* d = dst + (size_t)s0 * R + r0;
            _mm_storeu_ps(d, v0);
            _mm_storeu_ps(d + R, v1);
            _mm_storeu_ps(d + 2 * (size_t)R, v2);
            _mm_storeu_ps(d + 3 * (size_t)R, v3);
        }
    for (int r = 0; r < r0; ++r)  // columns left over in the blocked rows
        for (int c = s0; c < S; ++c) dst[(size_t)c * R + r] = src[(size_t)r * S + c];
#endif
    for (int r = r0; r < R; ++r)
        for (int c = 0; c < S; ++c) dst[(size_t)c * R + r] = src[(size_t)r * S + c];
}

// sign(d) * c with sign(0) = 0 (a nested select, which the compiler vectorises)
inline float signed_coef(float d, float c) { return d > 0.f ? c : (d < 0.f ? -c : 0.f); }

// Per-term kernels over the C contiguous channels of a row; CC > 0 fixes C at compile time.
template <int CC>
struct Kernel {
    int C;
    int cn() const { return CC > 0 ? CC : C; }

    // o[c] = w0 a[c] + w1 b[c] + w2 d[c] + w3 e[c]
    static inline void blend4(float* __restrict o, const float* __restrict a, const float* __restrict b,
                              const float* __restrict d, const float* __restrict e, float w0, float w1, float w2,
                              float w3, int C) {
        for (int c = 0; c < C; ++c) o[c] = w0 * a[c] + w1 * b[c] + w2 * d[c] + w3 * e[c];
    }

    // g[c] += w0 a[c] + w1 b[c] + w2 d[c] + w3 e[c]
    static inline void blend4_add(float* __restrict g, const float* __restrict a, const float* __restrict b,
                                  const float* __restrict d, const float* __restrict e, float w0, float w1,
                                  float w2, float w3, int C) {
        for (int c = 0; c < C; ++c) g[c] += w0 * a[c] + w1 * b[c] + w2 * d[c] + w3 * e[c];
    }

    // The 36 window rows of cell (cx, cy) in a channel-last plane; outside cells -> `outside`.
    static inline void window(float* base, int h, int w, int C, int32_t cx, int32_t cy, float* outside,
                              float* rows[kWin * kWin]) {
        for (int a = 0; a < kWin; ++a) {
            const int64_t y = (int64_t)cy - 2 + a;
            const bool yin = y >= 0 && y < h;
            for (int b = 0; b < kWin; ++b) {
                const int64_t x = (int64_t)cx - 2 + b;
                rows[a * kWin + b] = (yin && x >= 0 && x < w) ? base + ((size_t)y * w + (size_t)x) * C : outside;
            }
        }
    }

    // P[tap][c] (taps row-major (dy, dx)) = the blend of the 4 shifted 5x5 views of the window.
    void patch(float* const rows[kWin * kWin], const float* wt, float* __restrict P) const {
        const int C = cn();
        const float w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3];
        for (int i = 0; i < 5; ++i)
            for (int j = 0; j < 5; ++j)
                blend4(P + (size_t)(i * 5 + j) * C, rows[i * kWin + j], rows[i * kWin + j + 1],
                       rows[(i + 1) * kWin + j], rows[(i + 1) * kWin + j + 1], w0, w1, w2, w3, C);
    }

    // One tap of the fused patch/sign pass (restrict parameters: the compiler vectorises over c).
    template <int NR, bool kLoss>
    static inline void tap(float* __restrict s, float* __restrict acc0, float* __restrict acc1,
                           const float* __restrict a, const float* __restrict b, const float* __restrict d,
                           const float* __restrict e, const float* __restrict q0, const float* __restrict q1,
                           const float* wt, float c0, float c1, int C) {
        const float w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3];
        for (int c = 0; c < C; ++c) {
            const float p = w0 * a[c] + w1 * b[c] + w2 * d[c] + w3 * e[c];
            const float d0 = p - q0[c];
            float v = signed_coef(d0, c0);
            if (kLoss) acc0[c] += std::fabs(d0);
            if (NR > 1) {
                const float d1 = p - q1[c];
                v += signed_coef(d1, c1);
                if (kLoss) acc1[c] += std::fabs(d1);
            }
            s[c] = v;
        }
    }

    // Fused patch and signs: S (inside the zero-bordered Sp) = sum_r coef_r sign(P - Q_r) over the
    // NR references of the term (Q[r], cr[r]); returns sum_r coef_r sum |P - Q_r| when kLoss.
    template <int NR, bool kLoss>
    double signs(float* const rows[kWin * kWin], const float* wt, const float* const* Q, const float* cr,
                 float* __restrict Sp, float* __restrict acc) const {
        const int C = cn();
        const float c0 = cr[0], c1 = NR > 1 ? cr[1] : 0.f;
        float* __restrict acc0 = acc;
        float* __restrict acc1 = acc + C;
        if (kLoss) std::fill(acc, acc + 2 * C, 0.f);
        for (int i = 0; i < 5; ++i)
            for (int j = 0; j < 5; ++j) {
                const int t = i * 5 + j;
                tap<NR, kLoss>(Sp + (size_t)((i + 1) * kPad + j + 1) * C, acc0, acc1, rows[i * kWin + j],
                               rows[i * kWin + j + 1], rows[(i + 1) * kWin + j], rows[(i + 1) * kWin + j + 1],
                               Q[0] + (size_t)t * C, Q[NR - 1] + (size_t)t * C, wt, c0, c1, C);
            }
        if (!kLoss) return 0.0;
        double s0 = 0.0, s1 = 0.0;
        for (int c = 0; c < C; ++c) s0 += acc0[c];
        if (NR > 1)
            for (int c = 0; c < C; ++c) s1 += acc1[c];
        return (double)c0 * s0 + (double)c1 * s1;
    }

    // Gradient rows of the window += bilinear transpose of S: cell (a, b) gets
    // w00 S[a][b] + w01 S[a][b-1] + w10 S[a-1][b] + w11 S[a-1][b-1] (Sp[p][q] = S[p-1][q-1], 0 outside).
    void scatter(float* const grows[kWin * kWin], const float* wt, const float* __restrict Sp) const {
        const int C = cn();
        const float w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3];
        for (int a = 0; a < kWin; ++a)
            for (int b = 0; b < kWin; ++b) {
                const float* s = Sp + (size_t)(a * kPad + b) * C;  // S[a-1][b-1]
                blend4_add(grows[a * kWin + b], s + (size_t)(kPad + 1) * C, s + (size_t)kPad * C, s + C, s,
                           w0, w1, w2, w3, C);
            }
    }
};

}  // namespace

// Work buffers of one thread.
struct Work {
    std::vector<float> rows, grows;         // [h * w, C] one frame's x0 / gradient rows
    std::vector<float> Sp, acc, zero, scratch;  // per-term sign patch (zero border), loss lanes, zero row, sink
};

struct tgvc_guidance_f32 {
    int K = 0, F = 0, C = 0, h = 0, w = 0, Kp = 0;
    bool own_ref = false;                  // references given at create (else x0[0], x0[F-1] per step)
    std::vector<Term> terms;               // frame by frame
    std::vector<int64_t> frame_begin;      // [F + 1] term ranges
    std::vector<Cell> ref_cells;           // [Kp * 2] reference patch cells
    std::vector<float> Q;                  // [Kp, 2, 25, C] reference patches
    std::vector<float> ref_rows;           // [2, h * w, C] reference planes (when not own_ref)
    std::vector<Work> work;                // one per thread
    int threads = 1;
    std::vector<double> frame_loss;        // [F]
};

namespace {

// Reference patches Q from the planes ref0, ref1 ([C, h, w] each); once per window (per step only
// when the references are x0[0], x0[F-1]), so not specialised.
void gather_refs(tgvc_guidance_f32& g, const float* ref0, const float* ref1) {
    const int C = g.C, h = g.h, w = g.w;
    const size_t plane = (size_t)h * w * C;
    transpose(ref0, g.ref_rows.data(), C, h * w);
    transpose(ref1, g.ref_rows.data() + plane, C, h * w);
    Kernel<0> kern{C};
    float* rows[kWin * kWin];
    for (int k = 0; k < g.Kp; ++k)
        for (int r = 0; r < 2; ++r) {
            const Cell& c = g.ref_cells[(size_t)k * 2 + r];
            kern.window(g.ref_rows.data() + r * plane, h, w, C, c.cx, c.cy, g.work[0].zero.data(), rows);
            kern.patch(rows, c.wt, g.Q.data() + ((size_t)k * 2 + r) * kTaps * C);
        }
}

// Inner frames first, first + stride, ... of one step: grad[f] and frame_loss[f].
template <int CC, bool kLoss>
void run_frames(tgvc_guidance_f32& g, Work& ws, const float* x0, float* grad, int first, int stride) {
    const int F = g.F, C = g.C, h = g.h, w = g.w;
    const size_t plane = (size_t)C * h * w, pq = (size_t)kTaps * C;
    Kernel<CC> kern{C};
    float* xr[kWin * kWin];
    float* gr[kWin * kWin];
    for (int f = first; f < F - 1; f += stride) {
        float* gout = grad + (size_t)f * plane;
        const int64_t t0 = g.frame_begin[f], t1 = g.frame_begin[f + 1];
        g.frame_loss[f] = 0.0;
        if (t0 == t1) {
            std::memset(gout, 0, sizeof(float) * plane);
            continue;
        }
        transpose(x0 + (size_t)f * plane, ws.rows.data(), C, h * w);
        std::memset(ws.grows.data(), 0, sizeof(float) * plane);
        double fl = 0.0;
        for (int64_t t = t0; t < t1; ++t) {
            const Term& term = g.terms[t];
            kern.window(ws.rows.data(), h, w, C, term.cx, term.cy, ws.zero.data(), xr);
            const float* Qk = g.Q.data() + (size_t)term.track * 2 * pq;
            if (term.coef[0] > 0.f && term.coef[1] > 0.f) {
                const float* qs[2] = {Qk, Qk + pq};
                fl += kern.template signs<2, kLoss>(xr, term.wt, qs, term.coef, ws.Sp.data(), ws.acc.data());
            } else {
                const int r = term.coef[0] > 0.f ? 0 : 1;
                const float* qs[1] = {Qk + r * pq};
                fl += kern.template signs<1, kLoss>(xr, term.wt, qs, term.coef + r, ws.Sp.data(), ws.acc.data());
            }
            kern.window(ws.grows.data(), h, w, C, term.cx, term.cy, ws.scratch.data(), gr);
            kern.scatter(gr, term.wt, ws.Sp.data());
        }
        g.frame_loss[f] = fl;
        transpose(ws.grows.data(), gout, h * w, C);
    }
}

// The step's hot path for the channel count (specialised for the common ones). On x86-64 with GCC,
// compiled twice (baseline SSE2 and x86-64-v3 = AVX2/FMA), picked once at load time by the CPU
// (ifunc); define TGVC_GUIDANCE_NO_CLONES to build the baseline only (e.g. with -march=native).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__linux__) && \
    defined(__GLIBC__) && !defined(TGVC_GUIDANCE_NO_CLONES)
#define TGVC_HOT __attribute__((target_clones("arch=x86-64-v3", "default"), flatten, noinline))
#else
#define TGVC_HOT
#endif

TGVC_HOT void frames_any(tgvc_guidance_f32& g, Work& ws, const float* x0, float* grad, int first, int stride,
                         bool loss) {
    switch (g.C) {
        case 32: return loss ? run_frames<32, true>(g, ws, x0, grad, first, stride)
                             : run_frames<32, false>(g, ws, x0, grad, first, stride);
        case 16: return loss ? run_frames<16, true>(g, ws, x0, grad, first, stride)
                             : run_frames<16, false>(g, ws, x0, grad, first, stride);
        case 4: return loss ? run_frames<4, true>(g, ws, x0, grad, first, stride)
                            : run_frames<4, false>(g, ws, x0, grad, first, stride);
        default: return loss ? run_frames<0, true>(g, ws, x0, grad, first, stride)
                             : run_frames<0, false>(g, ws, x0, grad, first, stride);
    }
}

double run_step(tgvc_guidance_f32& g, const float* x0, float* grad, bool loss) {
    const int F = g.F;
    const size_t plane = (size_t)g.C * g.h * g.w;
    std::memset(grad, 0, sizeof(float) * plane);
    std::memset(grad + (size_t)(F - 1) * plane, 0, sizeof(float) * plane);
    if (!g.own_ref && g.Kp > 0) gather_refs(g, x0, x0 + (size_t)(F - 1) * plane);  // ref = x0[[0, F-1]]
    const int nt = std::max(1, std::min(g.threads, F - 2));
    std::vector<std::thread> pool;
    pool.reserve((size_t)nt - 1);
    int spawned = 1;  // partitions 1..spawned-1 run on their own threads, the rest on this one
    try {
        for (; spawned < nt; ++spawned) {
            const int i = spawned;
            pool.emplace_back([&g, x0, grad, loss, i, nt] { frames_any(g, g.work[(size_t)i], x0, grad, 1 + i, nt, loss); });
        }
    } catch (...) {  // no more threads: never leave a joinable thread behind an exception
    }
    frames_any(g, g.work[0], x0, grad, 1, nt, loss);
    for (int i = spawned; i < nt; ++i) frames_any(g, g.work[(size_t)i], x0, grad, 1 + i, nt, loss);
    for (std::thread& t : pool) t.join();
    double total = 0.0;  // per-frame sums added in frame order
    for (int f = 0; f < F; ++f) total += g.frame_loss[f];
    return loss ? total : 0.0;
}

void init_work(Work& ws, int h, int w, int C) {
    const size_t rows = (size_t)h * w * C;
    ws.rows.assign(rows, 0.f);
    ws.grows.assign(rows, 0.f);
    ws.Sp.assign((size_t)kPad * kPad * C, 0.f);  // the border stays 0 forever
    ws.acc.assign((size_t)2 * C, 0.f);
    ws.zero.assign((size_t)C, 0.f);
    ws.scratch.assign((size_t)C, 0.f);
}

void prepare(tgvc_guidance_f32& g, const float* ref, const float* pos, const float* vis) {
    const int K = g.K, F = g.F, C = g.C, n = F - 1;
    const int npairs = tgvc::num_pairs(F);
    g.frame_begin.assign((size_t)F + 1, 0);
    g.frame_loss.assign((size_t)F, 0.0);
    g.work.resize(1);
    if (K <= 0 || npairs == 0) return;
    const double norm = (double)K * npairs * kTaps * C;
    // coefficients [K, F, 2] and the kept tracks (at least one non-zero term)
    std::vector<float> coef((size_t)K * F * 2, 0.f);
    std::vector<int32_t> kept((size_t)K, -1);
    for (int k = 0; k < K; ++k) {
        const float* vk = vis + (size_t)k * F;
        bool any = false;
        for (int f = 1; f < n; ++f) {
            float w0, w1;
            tgvc::pair_weights(f, F, &w0, &w1);
            const double c0 = (double)w0 * vk[f] * vk[0] / norm, c1 = (double)w1 * vk[f] * vk[n] / norm;
            coef[((size_t)k * F + f) * 2] = (float)c0;
            coef[((size_t)k * F + f) * 2 + 1] = (float)c1;
            any = any || c0 > 0.0 || c1 > 0.0;
        }
        if (any) kept[k] = g.Kp++;
    }
    g.ref_cells.resize((size_t)g.Kp * 2);
    for (int k = 0; k < K; ++k)
        if (kept[k] >= 0) {
            const float* pk = pos + (size_t)k * F * 2;
            g.ref_cells[(size_t)kept[k] * 2] = cell_of(pk[0], pk[1]);
            g.ref_cells[(size_t)kept[k] * 2 + 1] = cell_of(pk[2 * n], pk[2 * n + 1]);
        }
    for (int f = 1; f < n; ++f) {
        g.frame_begin[f] = (int64_t)g.terms.size();
        for (int k = 0; k < K; ++k) {
            const float c0 = coef[((size_t)k * F + f) * 2], c1 = coef[((size_t)k * F + f) * 2 + 1];
            if (!(c0 > 0.f || c1 > 0.f)) continue;
            const float* pk = pos + ((size_t)k * F + f) * 2;
            const Cell c = cell_of(pk[0], pk[1]);
            Term t;
            t.track = kept[k];
            t.cx = c.cx;
            t.cy = c.cy;
            std::copy(c.wt, c.wt + 4, t.wt);
            t.coef[0] = c0 > 0.f ? c0 : 0.f;
            t.coef[1] = c1 > 0.f ? c1 : 0.f;
            g.terms.push_back(t);
        }
    }
    for (int f = n; f <= F; ++f) g.frame_begin[f] = (int64_t)g.terms.size();
    const size_t rows = (size_t)g.h * g.w * C;
    for (Work& ws : g.work) init_work(ws, g.h, g.w, C);
    g.Q.assign((size_t)g.Kp * 2 * kTaps * C, 0.f);
    g.ref_rows.assign(2 * rows, 0.f);  // freed after create when the references are given
    g.own_ref = ref != nullptr;
}

}  // namespace

extern "C" {

int tgvc_guidance_f32_abi(void) { return TGVC_GUIDANCE_F32_ABI; }

tgvc_guidance_f32* tgvc_guidance_f32_create(const float* ref, const float* pos, const float* vis, int K, int F,
                                            int C, int h, int w) {
    if (K < 0 || F < 1 || C < 1 || h < 1 || w < 1 || (K > 0 && (!pos || !vis))) return nullptr;
    tgvc_guidance_f32* g = new (std::nothrow) tgvc_guidance_f32;
    if (!g) return nullptr;
    try {
        g->K = K; g->F = F; g->C = C; g->h = h; g->w = w;
        prepare(*g, ref, pos, vis);
        if (g->own_ref && g->Kp > 0) gather_refs(*g, ref, ref + (size_t)C * h * w);
        if (g->own_ref) std::vector<float>().swap(g->ref_rows);
    } catch (...) {
        delete g;
        return nullptr;
    }
    return g;
}

double tgvc_guidance_f32_step(tgvc_guidance_f32* g, const float* x0, float* grad, int with_loss) {
    if (!g || !x0 || !grad) return std::nan("");
    try {
        return run_step(*g, x0, grad, with_loss != 0);
    } catch (...) {
        return std::nan("");
    }
}

int tgvc_guidance_f32_set_threads(tgvc_guidance_f32* g, int threads) {
    if (!g || threads < 1) return -1;
    try {
        const int n = std::min(threads, std::max(1, g->F - 2));
        const size_t old = g->work.size();
        if ((size_t)n > old) {
            g->work.resize((size_t)n);
            for (size_t i = old; i < (size_t)n; ++i) init_work(g->work[i], g->h, g->w, g->C);
        }
        g->threads = n;
        return n;
    } catch (...) {
        return -1;
    }
}

void tgvc_guidance_f32_destroy(tgvc_guidance_f32* g) { delete g; }

}  // extern "C"
