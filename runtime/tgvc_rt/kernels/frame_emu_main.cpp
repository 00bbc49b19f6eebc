// Driver of the CPU emulation of image_input.cu, flow_upsample.cu and frame_output.cu (see
// cuda_emu.h): the kernels themselves run on the CPU through their C++ host launchers. Built and
// run by tests/test_frame_kernels.py:
//   g++ -std=c++20 -O1 -pthread -ffp-contract=off -DTGVC_EMU frame_emu_main.cpp -o frame_emu
//   frame_emu image  IN OUT dtype H W Hp Wp copies
//       IN uint8 [H, W, 3]; OUT [copies, 3, Hp, Wp] of dtype (0 f32, 1 f16)
//   frame_emu flow   IN OUT dtype count h w C H W Hp Wp B index unit_weight
//       IN f32 [count, h, w, C]; OUT flow_init [B, 4, Hp, Wp] then init_weight [B, 1, Hp, Wp] of
//       dtype, frames written to slots index .. index + count - 1 (unwritten slots read as NaN)
//   frame_emu output IN OUT dtype B Hp Wp H W reduce
//       IN [B, 3, Hp, Wp] of dtype; OUT uint8 [B, H, W, 3]
// Exit 0 on success, 2 on bad arguments or I/O, 3 when the launcher refused the call.
// Built with -shared -fPIC instead, tgvc_emu_launch_named is the emulated cuLaunchKernel the tests
// put behind the Python launcher (frame_kernels.FrameKernels) so that its argument packing runs
// against the kernels themselves.
#include "image_input.cu"
#include "flow_upsample.cu"
#include "frame_output.cu"

#include <cstdio>
#include <string>

// cuLaunchKernel on the CPU: `params` holds the addresses of the kernel's arguments, in order.
template <typename T>
static T arg(void** params, int i) {
    return *static_cast<T*>(params[i]);
}
extern "C" int tgvc_emu_launch_named(const char* name, unsigned gx, unsigned gy, unsigned gz,
                                     unsigned bx, void** p) {
    const std::string n = name;
    const dim3 grid(gx, gy, gz), block(bx);
    if (n == "tgvc_image_input_f32" || n == "tgvc_image_input_f16") {
        auto a = [&](auto kernel, auto* out) {
            tgvc_emu_launch(kernel, grid, block, 0, arg<const unsigned char*>(p, 0), arg<int>(p, 1),
                            arg<int>(p, 2), arg<int>(p, 3), arg<int>(p, 4), out);
        };
        if (n.back() == '2') a(tgvc_image_input_f32, arg<float*>(p, 5));
        else a(tgvc_image_input_f16, arg<tgvc_half*>(p, 5));
    } else if (n == "tgvc_flow_upsample_f32" || n == "tgvc_flow_upsample_f16") {
        auto a = [&](auto kernel, auto* flow, auto* weight) {
            tgvc_emu_launch(kernel, grid, block, 0, arg<const float*>(p, 0), arg<int>(p, 1),
                            arg<int>(p, 2), arg<int>(p, 3), arg<int>(p, 4), arg<int>(p, 5),
                            arg<int>(p, 6), arg<int>(p, 7), arg<double>(p, 8), arg<double>(p, 9),
                            flow, weight, arg<int>(p, 12));
        };
        if (n.back() == '2') a(tgvc_flow_upsample_f32, arg<float*>(p, 10), arg<float*>(p, 11));
        else a(tgvc_flow_upsample_f16, arg<tgvc_half*>(p, 10), arg<tgvc_half*>(p, 11));
    } else if (n == "tgvc_frame_output_f32" || n == "tgvc_frame_output_f16") {
        auto a = [&](auto kernel, auto* frames) {
            tgvc_emu_launch(kernel, grid, block, 0, frames, arg<int>(p, 1), arg<int>(p, 2),
                            arg<int>(p, 3), arg<int>(p, 4), arg<int>(p, 5),
                            arg<unsigned char*>(p, 6));
        };
        if (n.back() == '2') a(tgvc_frame_output_f32, arg<const float*>(p, 0));
        else a(tgvc_frame_output_f16, arg<const tgvc_half*>(p, 0));
    } else {
        return 1;
    }
    return 0;
}

static bool read_all(const char* path, std::vector<unsigned char>& v, size_t n) {
    FILE* f = std::fopen(path, "rb");
    if (!f) return false;
    v.resize(n);
    bool ok = std::fread(v.data(), 1, n, f) == n;
    std::fclose(f);
    return ok;
}

static bool write_all(const char* path, const std::vector<unsigned char>& v) {
    FILE* f = std::fopen(path, "wb");
    if (!f) return false;
    bool ok = std::fwrite(v.data(), 1, v.size(), f) == v.size();
    std::fclose(f);
    return ok;
}

int main(int argc, char** argv) {
    if (argc < 5) return 2;
    const std::string op = argv[1];
    std::vector<int> a;
    for (int i = 4; i < argc; ++i) a.push_back(std::atoi(argv[i]));
    std::vector<unsigned char> in, out;
    int e;
    if (op == "image" && a.size() == 6) {
        int dt = a[0], H = a[1], W = a[2], Hp = a[3], Wp = a[4], copies = a[5];
        size_t es = dt ? 2 : 4;
        if (!read_all(argv[2], in, (size_t)H * W * 3)) return 2;
        out.assign((size_t)copies * 3 * Hp * Wp * es, 0xff);
        e = tgvc_cuda_image_input(dt, in.data(), H, W, Hp, Wp, copies, out.data(), nullptr);
    } else if (op == "flow" && a.size() == 12) {
        int dt = a[0], count = a[1], h = a[2], w = a[3], C = a[4], H = a[5], W = a[6], Hp = a[7],
            Wp = a[8], B = a[9], index = a[10], unit = a[11];
        size_t es = dt ? 2 : 4, plane = (size_t)Hp * Wp;
        if (index < 0 || index + count > B) return 2;
        if (!read_all(argv[2], in, (size_t)count * h * w * C * 4)) return 2;
        out.assign((size_t)B * 5 * plane * es, 0xff);  // all-ones bits: NaN in f32 and f16
        unsigned char* flow = out.data() + (size_t)index * 4 * plane * es;
        unsigned char* weight = out.data() + ((size_t)B * 4 + index) * plane * es;
        e = tgvc_cuda_flow_upsample(dt, reinterpret_cast<const float*>(in.data()), count, h, w, C,
                                    H, W, Hp, Wp, flow, weight, unit, nullptr);
    } else if (op == "output" && a.size() == 7) {
        int dt = a[0], B = a[1], Hp = a[2], Wp = a[3], H = a[4], W = a[5], reduce = a[6];
        size_t es = dt ? 2 : 4;
        if (!read_all(argv[2], in, (size_t)B * 3 * Hp * Wp * es)) return 2;
        out.assign((size_t)B * H * W * 3, 0);
        e = tgvc_cuda_frame_output(dt, in.data(), B, Hp, Wp, H, W, reduce, out.data(), nullptr);
    } else {
        return 2;
    }
    if (e) return 3;
    return write_all(argv[3], out) ? 0 : 2;
}
