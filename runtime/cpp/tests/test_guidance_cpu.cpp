// CPU guidance: the gradient agrees with central finite differences of the loss (L is piecewise
// linear in x0, so a small step along a random direction is exact away from kinks), and the fast
// float32 C ABI (guidance_cpu_f32.cpp) agrees with this double reference.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "tgvc/guidance.h"

// The float32 path against the double reference: loss to 1e-5 relative, gradient to 1e-5 of its max.
static int check_f32(const tgvc::GuidanceShape& s, const std::vector<float>& x0, const std::vector<float>& ref,
                     const std::vector<float>& pos, const std::vector<float>& vis) {
    int failures = 0;
    std::vector<float> want(s.latent_size()), got(s.latent_size(), 7.f), again(s.latent_size());
    const double lw = tgvc::guidance_loss_grad_cpu(x0.data(), ref.data(), pos.data(), vis.data(), s, want.data());
    tgvc_guidance_f32* g = tgvc_guidance_f32_create(ref.data(), pos.data(), vis.data(), s.K, s.F, s.C, s.h, s.w);
    if (!g) { std::printf("F=%d: tgvc_guidance_f32_create failed\n", s.F); return 1; }
    const double lg = tgvc_guidance_f32_step(g, x0.data(), got.data(), 1);
    const double l0 = tgvc_guidance_f32_step(g, x0.data(), again.data(), 0);
    std::vector<float> threaded(s.latent_size());
    const int nt = tgvc_guidance_f32_set_threads(g, 3);  // any split gives the same bits
    const double lt = tgvc_guidance_f32_step(g, x0.data(), threaded.data(), 1);
    tgvc_guidance_f32_destroy(g);
    if (nt < 1 || nt > 3 || lt != lg || threaded != got) {
        std::printf("F=%d: %d threads differ from one (loss %.9g vs %.9g)\n", s.F, nt, lt, lg);
        ++failures;
    }
    double gmax = 0.0, err = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        gmax = std::fmax(gmax, std::fabs(want[i]));
        err = std::fmax(err, std::fabs((double)got[i] - want[i]));
        if (got[i] != again[i]) { std::printf("F=%d: step not reproducible at %zu\n", s.F, i); ++failures; break; }
    }
    if (std::fabs(lg - lw) > 1e-5 * std::fabs(lw) + 1e-12 || l0 != 0.0) {
        std::printf("F=%d: float32 loss %.9g vs reference %.9g (no-loss step %g)\n", s.F, lg, lw, l0);
        ++failures;
    }
    if (err > 1e-5 * gmax + 1e-30) {
        std::printf("F=%d: float32 gradient off by %.3g (max %.3g)\n", s.F, err, gmax);
        ++failures;
    }
    if (tgvc_guidance_f32_abi() != TGVC_GUIDANCE_F32_ABI) ++failures;
    return failures;
}

// A random problem of shape {F, C, h, w, K}: latents and keyframe references ~ N(0, 1), track points up to
// 3 latent pixels outside the latent, 20 % of them invisible and, with ``partial``, 10 % of the others half
// visible. Draws from ``rng`` in a fixed order, so the test's problems do not change.
struct Problem {
    tgvc::GuidanceShape s;
    std::vector<float> x0, ref, pos, vis;
};

static Problem random_problem(const int (&sh)[5], std::mt19937& rng, std::normal_distribution<float>& normal,
                              bool partial) {
    Problem p;
    tgvc::GuidanceShape& s = p.s;
    s.F = sh[0]; s.C = sh[1]; s.h = sh[2]; s.w = sh[3]; s.K = sh[4];
    p.x0.resize(s.latent_size());
    p.ref.resize(2ull * s.C * s.h * s.w);
    p.pos.resize(2ull * s.K * s.F);
    p.vis.resize(1ull * s.K * s.F);
    for (auto& v : p.x0) v = normal(rng);
    for (auto& v : p.ref) v = normal(rng);
    std::uniform_real_distribution<float> ux(-3.f, s.w + 2.f), uy(-3.f, s.h + 2.f), u01(0.f, 1.f);
    for (int i = 0; i < s.K * s.F; ++i) {
        p.pos[2 * i] = ux(rng);
        p.pos[2 * i + 1] = uy(rng);
        p.vis[i] = u01(rng) < 0.2f ? 0.f : (partial && u01(rng) < 0.1f ? 0.5f : 1.f);
    }
    return p;
}

int main() {
    int failures = 0;
    if (tgvc::num_pairs(16) != 17) { std::printf("num_pairs(16) = %d\n", tgvc::num_pairs(16)); ++failures; }
    const int shapes[][5] = {{16, 3, 9, 11, 7}, {5, 2, 6, 7, 4}, {4, 1, 5, 5, 3}};
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal;
    for (const auto& sh : shapes) {
        const Problem p = random_problem(sh, rng, normal, false);
        const auto& [s, x0, ref, pos, vis] = p;
        failures += check_f32(s, x0, ref, pos, vis);
        std::vector<float> grad(s.latent_size());
        tgvc::guidance_loss_grad_cpu(x0.data(), ref.data(), pos.data(), vis.data(), s, grad.data());
        for (int trial = 0; trial < 4; ++trial) {
            std::vector<float> d(x0.size()), xp(x0), xm(x0);
            const double eps = 1e-5;
            double dot = 0.0;
            for (std::size_t i = 0; i < d.size(); ++i) {
                d[i] = normal(rng);
                xp[i] = (float)(x0[i] + eps * d[i]);
                xm[i] = (float)(x0[i] - eps * d[i]);
                dot += (double)grad[i] * ((double)xp[i] - xm[i]) / (2 * eps);
            }
            const double lp = tgvc::guidance_loss_grad_cpu(xp.data(), ref.data(), pos.data(), vis.data(), s, nullptr);
            const double lm = tgvc::guidance_loss_grad_cpu(xm.data(), ref.data(), pos.data(), vis.data(), s, nullptr);
            const double fd = (lp - lm) / (2 * eps);
            // a kink crossed by the +-eps step changes fd by O(eps * coef); allow a small slack
            if (std::fabs(fd - dot) > 1e-3 * std::fabs(fd) + 1e-9) {
                std::printf("F=%d: finite difference %.9g vs gradient %.9g\n", s.F, fd, dot);
                ++failures;
            }
        }
        for (int c = 0; c < s.C * s.h * s.w; ++c)  // keyframes get no gradient
            if (grad[c] != 0.f || grad[(std::size_t)(s.F - 1) * s.C * s.h * s.w + c] != 0.f) { ++failures; break; }
    }
    // more float32 shapes: the model's channel count, the other specialisations, F = 2/3, K = 0
    const int f32_shapes[][5] = {{16, 32, 12, 14, 9}, {3, 16, 6, 5, 5}, {2, 4, 5, 5, 3}, {16, 4, 7, 9, 0},
                                 {9, 5, 1, 1, 4}};
    for (const auto& sh : f32_shapes) {
        const Problem p = random_problem(sh, rng, normal, true);
        failures += check_f32(p.s, p.x0, p.ref, p.pos, p.vis);
    }
    std::printf(failures ? "FAILED (%d)\n" : "ok\n", failures);
    return failures ? 1 : 0;
}
