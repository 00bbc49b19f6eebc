// CPU reference of docs/guidance.md: plain loops in double, for tests and hosts without a GPU.
#include "tgvc/guidance.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tgvc {

void pair_weights(int f, int F, float* w0, float* w1) {
    const int n = F - 1;
    *w0 = *w1 = 0.f;
    if (f < 1 || f > n - 1) return;
    const int a = n / 3, b = (6 * n) / 10;  // (6n)/10 == floor(0.6 n) for integers
    if (f <= a) *w0 = 1.f;
    else if (f >= b) *w1 = 1.f;
    else *w0 = *w1 = 0.5f;
}

int num_pairs(int F) {
    int n = 0;
    for (int f = 0; f < F; ++f) {
        float a, b;
        pair_weights(f, F, &a, &b);
        n += (a > 0.f) + (b > 0.f);
    }
    return n;
}

namespace {

struct Bilinear {
    long long x, y;  // floor of the position
    double fx, fy;
};

Bilinear bilinear(double u, double v) {
    const double lim = 1 << 20;  // far outside reads zeros either way; keeps the cast defined
    u = std::min(std::max(u, -lim), lim);
    v = std::min(std::max(v, -lim), lim);
    Bilinear b;
    const double fu = std::floor(u), fv = std::floor(v);
    b.x = (long long)fu;
    b.y = (long long)fv;
    b.fx = u - fu;
    b.fy = v - fv;
    return b;
}

// Calls fn(y, x, weight) for the in-plane neighbours of tap (i, j) (offsets i - 2, j - 2).
template <typename Fn>
void for_neighbours(const Bilinear& b, int i, int j, int h, int w, Fn fn) {
    const double wy[2] = {1.0 - b.fy, b.fy}, wx[2] = {1.0 - b.fx, b.fx};
    for (int a = 0; a < 2; ++a)
        for (int c = 0; c < 2; ++c) {
            const long long y = b.y + i - 2 + a, x = b.x + j - 2 + c;
            if (y >= 0 && y < h && x >= 0 && x < w) fn((int)y, (int)x, wy[a] * wx[c]);
        }
}

void patch(const float* plane, int h, int w, const Bilinear& b, double out[25]) {
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) {
            double s = 0.0;
            for_neighbours(b, i, j, h, w, [&](int y, int x, double wt) { s += wt * plane[(long long)y * w + x]; });
            out[i * 5 + j] = s;
        }
}

}  // namespace

double guidance_loss_grad_cpu(const float* x0, const float* ref, const float* pos, const float* vis,
                              const GuidanceShape& s, float* grad) {
    const int F = s.F, C = s.C, h = s.h, w = s.w, K = s.K, n = F - 1;
    const long long plane = (long long)h * w;
    if (grad) std::fill(grad, grad + s.latent_size(), 0.f);
    const double norm = (double)K * num_pairs(F) * 25.0 * C;
    if (norm <= 0.0) return 0.0;
    double loss = 0.0;
    std::vector<double> acc(grad ? s.latent_size() : 0, 0.0);
    for (int k = 0; k < K; ++k)
        for (int f = 1; f < n; ++f) {
            float w0, w1;
            pair_weights(f, F, &w0, &w1);
            const double vf = vis[(long long)k * F + f];
            const double wr[2] = {w0 * vf * vis[(long long)k * F], w1 * vf * vis[(long long)k * F + n]};
            if (wr[0] == 0.0 && wr[1] == 0.0) continue;
            const float* pk = pos + (long long)k * F * 2;
            const Bilinear bx = bilinear(pk[2 * f], pk[2 * f + 1]);
            const Bilinear br[2] = {bilinear(pk[0], pk[1]), bilinear(pk[2 * n], pk[2 * n + 1])};
            for (int c = 0; c < C; ++c) {
                double P[25], R[25], coef[25] = {0};
                patch(x0 + ((long long)f * C + c) * plane, h, w, bx, P);
                for (int r = 0; r < 2; ++r) {
                    if (wr[r] == 0.0) continue;
                    patch(ref + ((long long)r * C + c) * plane, h, w, br[r], R);
                    for (int t = 0; t < 25; ++t) {
                        const double d = P[t] - R[t];
                        loss += wr[r] * std::fabs(d);
                        coef[t] += wr[r] * ((d > 0) - (d < 0));
                    }
                }
                if (!grad) continue;
                double* g = acc.data() + ((long long)f * C + c) * plane;
                for (int i = 0; i < 5; ++i)
                    for (int j = 0; j < 5; ++j)
                        if (coef[i * 5 + j] != 0.0)
                            for_neighbours(bx, i, j, h, w, [&](int y, int x, double wt) {
                                g[(long long)y * w + x] += coef[i * 5 + j] * wt;
                            });
            }
        }
    for (std::size_t i = 0; i < acc.size(); ++i) grad[i] = (float)(acc[i] / norm);
    return loss / norm;
}

}  // namespace tgvc
