// Driver of the CPU emulation of guidance.cu (see cuda_emu.h); built and run by
// tests/test_guidance_kernel.py:  g++ -std=c++20 -O1 -pthread -DTGVC_EMU emu_main.cpp -o emu
//   emu IN OUT
// IN:  int32 dtype(0 f32, 1 f16), F, C, h, w, K, tile_h, tile_w (0: the host launcher's default),
//      want_grad, want_z, want_loss; float32 step; then x0 [F,C,h,w] (dtype), ref [2,C,h,w]
//      (dtype), pos [K,F,2] f32, vis [K,F] f32, z [F,C,h,w] (dtype).
// OUT: float32 loss, grad [F,C,h,w] f32, then z (dtype). Unwritten outputs read as NaN.
#include "guidance.cu"

#include <cstdio>

template <typename T>
static bool rd(FILE* f, std::vector<T>& v, size_t n) {
    v.resize(n);
    return std::fread(v.data(), sizeof(T), n, f) == n;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    FILE* in = std::fopen(argv[1], "rb");
    if (!in) return 2;
    int hd[11];
    float step;
    if (std::fread(hd, 4, 11, in) != 11 || std::fread(&step, 4, 1, in) != 1) return 2;
    int dt = hd[0], F = hd[1], C = hd[2], h = hd[3], w = hd[4], K = hd[5], th = hd[6], tw = hd[7];
    size_t n = (size_t)F * C * h * w, es = dt ? 2 : 4;
    std::vector<unsigned char> x0, ref, z;
    std::vector<float> pos, vis;
    if (!rd(in, x0, n * es) || !rd(in, ref, 2 * n / F * es) || !rd(in, pos, (size_t)K * F * 2) ||
        !rd(in, vis, (size_t)K * F) || !rd(in, z, n * es))
        return 2;
    std::fclose(in);
    std::vector<float> grad(n, NAN), ws(tgvc_guidance_workspace_floats(F, C, h, w, K) + 64, NAN);
    float loss = NAN;
    float* g = hd[8] ? grad.data() : nullptr;
    void* zp = hd[9] ? (void*)z.data() : nullptr;
    float* lp = hd[10] ? &loss : nullptr;
    int e;
    if (th <= 0) {
        e = tgvc_cuda_guidance(dt, x0.data(), ref.data(), pos.data(), vis.data(), F, C, h, w, K, g,
                               zp, step, lp, ws.data(), nullptr);
    } else {  // custom tiles: the step kernel launched directly (as the Python launcher does)
        std::vector<float> big(tgvc_ws_partials(F, C, K) + (size_t)F * C * ((h + th - 1) / th) *
                               ((w + tw - 1) / tw) + 64, NAN);
        ws.swap(big);
        e = tgvc_cuda_guidance_prepare(dt, ref.data(), pos.data(), vis.data(), F, C, h, w, K,
                                       ws.data(), nullptr);
        dim3 grid((unsigned)(((h + th - 1) / th) * ((w + tw - 1) / tw)), (unsigned)C, (unsigned)F);
        const TgvcTrk* trk = reinterpret_cast<const TgvcTrk*>(ws.data() + tgvc_ws_trk());
        const float* rp = ws.data() + tgvc_ws_rp(F, K);
        float* part = ws.data() + tgvc_ws_partials(F, C, K);
        unsigned* counter = reinterpret_cast<unsigned*>(ws.data());
        size_t smem = tgvc_guidance_smem_bytes(th, tw);
        if (dt == 0)
            tgvc_emu_launch(tgvc_guidance_step_f32, grid, dim3(TGVC_BLOCK), smem,
                            (const float*)x0.data(), trk, rp, F, C, h, w, K, th, tw, g, (float*)zp,
                            step, part, counter, lp);
        else
            tgvc_emu_launch(tgvc_guidance_step_f16, grid, dim3(TGVC_BLOCK), smem,
                            (const tgvc_half*)x0.data(), trk, rp, F, C, h, w, K, th, tw, g,
                            (tgvc_half*)zp, step, part, counter, lp);
    }
    if (e) return 3;
    FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 2;
    std::fwrite(&loss, 4, 1, out);
    std::fwrite(grad.data(), 4, n, out);
    std::fwrite(z.data(), 1, z.size(), out);
    std::fclose(out);
    return 0;
}
