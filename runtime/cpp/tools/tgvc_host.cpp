// tgvc-host: a small host program over libtgvc.
//   tgvc-host info FILE.tgv      print the header and section layout of a stream
//   tgvc-host guidance           time the CPU guidance reference on a random window
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "tgvc/bitstream.h"
#include "tgvc/guidance.h"

static int info(const char* path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) { std::fprintf(stderr, "cannot open %s\n", path); return 2; }
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
        tgvc::Stream s = tgvc::read_stream(data.data(), data.size());
        const auto& h = s.header;
        std::printf("tgv %u.%u  %ux%u  %u frames @ %u/%u fps  codec %u  seed %llu\n", s.major, s.minor, h.width, h.height,
                    h.num_frames, h.fps_num, h.fps_den, h.keyframe_codec, (unsigned long long)h.noise_seed);
        for (const auto& k : s.keyframes) std::printf("  keyframe %u: %zu bytes\n", k.frame, k.coded.size);
        for (const auto& g : s.groups) std::printf("  group %u..%u: %zu bytes\n", g.start, g.end, g.payload.size);
    } catch (const tgvc::BitstreamError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}

static int guidance() {
    tgvc::GuidanceShape s;
    s.F = 16; s.C = 32; s.h = 40; s.w = 64; s.K = 100;
    std::mt19937 rng(0);
    std::normal_distribution<float> nd;
    std::vector<float> x0(s.latent_size()), ref(2ull * s.C * s.h * s.w), pos(2ull * s.K * s.F), vis(1ull * s.K * s.F, 1.f), g(x0.size());
    for (auto& v : x0) v = nd(rng);
    for (auto& v : ref) v = nd(rng);
    std::uniform_real_distribution<float> u(0.f, 39.f);
    for (auto& v : pos) v = u(rng);
    auto t0 = std::chrono::steady_clock::now();
    double L = tgvc::guidance_loss_grad_cpu(x0.data(), ref.data(), pos.data(), vis.data(), s, g.data());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cpu guidance [16,32,40,64], K=100: loss %.6g, %.1f ms\n", L, ms);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && !std::strcmp(argv[1], "info")) return info(argv[2]);
    if (argc == 2 && !std::strcmp(argv[1], "guidance")) return guidance();
    std::fprintf(stderr, "usage: tgvc-host info FILE.tgv | tgvc-host guidance\n");
    return 2;
}
