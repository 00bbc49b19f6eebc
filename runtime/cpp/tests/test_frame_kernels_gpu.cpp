// CUDA frame kernels (nvcc build of image_input.cu, flow_upsample.cu, frame_output.cu): a key frame
// through image_input and frame_output comes back unchanged, the 2x area reduction is the rounded
// mean of each 2 x 2 block, and a constant motion grid upsamples to the same constant. The exact
// numbers against OpenCV are tests/test_frame_kernels.py's. Exit 77 (= skipped) without a GPU.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "tgvc/frame_kernels_cuda.h"

#define CK(x) do { cudaError_t e_ = (cudaError_t)(x); if (e_ != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e_)); return 1; } } while (0)

int main() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) { std::printf("no CUDA device: skipped\n"); return 77; }
    const int H = 135, W = 241, Hp = 192, Wp = 256;
    std::mt19937 rng(3);
    std::vector<unsigned char> frame((size_t)2 * H * 2 * W * 3), back(frame.size()), half((size_t)H * W * 3);
    for (auto& v : frame) v = (unsigned char)(rng() & 255u);
    unsigned char *dframe, *dout;
    float *dimg, *dgrid, *dflow, *dweight;
    const int Hp2 = 320, Wp2 = 512;  // padded 2H x 2W
    CK(cudaMalloc(&dframe, frame.size()));
    CK(cudaMalloc(&dout, frame.size()));
    CK(cudaMalloc(&dimg, sizeof(float) * 2 * 3 * Hp2 * Wp2));
    CK(cudaMemcpy(dframe, frame.data(), frame.size(), cudaMemcpyHostToDevice));
    // 2H x 2W frame -> [2, 3, Hp2, Wp2] -> uint8 round trip, then the 2x reduction
    CK(tgvc_cuda_image_input(0, dframe, 2 * H, 2 * W, Hp2, Wp2, 2, dimg, 0));
    CK(tgvc_cuda_frame_output(0, dimg, 1, Hp2, Wp2, 2 * H, 2 * W, 1, dout, 0));
    CK(cudaMemcpy(back.data(), dout, back.size(), cudaMemcpyDeviceToHost));
    bool ok = back == frame;
    CK(tgvc_cuda_frame_output(0, dimg + (size_t)3 * Hp2 * Wp2, 1, Hp2, Wp2, H, W, 2, dout, 0));
    CK(cudaMemcpy(half.data(), dout, half.size(), cudaMemcpyDeviceToHost));
    for (int y = 0; y < H && ok; ++y)
        for (int x = 0; x < W && ok; ++x)
            for (int c = 0; c < 3; ++c) {
                auto px = [&](int yy, int xx) { return (int)frame[((size_t)yy * 2 * W + xx) * 3 + c]; };
                int s = px(2 * y, 2 * x) + px(2 * y, 2 * x + 1) + px(2 * y + 1, 2 * x) + px(2 * y + 1, 2 * x + 1);
                if (half[((size_t)y * W + x) * 3 + c] != (s + 2) >> 2) { ok = false; break; }
            }
    std::printf("image_input/frame_output round trip and 2x reduction: %s\n", ok ? "ok" : "MISMATCH");
    // a constant 34 x 60 grid -> constant planes in batch slot 1 of 2 (fp32)
    const int h = 34, w = 60;
    std::vector<float> grid((size_t)h * w * 5);
    for (size_t i = 0; i < grid.size(); ++i) grid[i] = i % 5 == 4 ? 0.75f : -3.25f;
    CK(cudaMalloc(&dgrid, grid.size() * 4));
    CK(cudaMalloc(&dflow, sizeof(float) * 2 * 4 * Hp * Wp));
    CK(cudaMalloc(&dweight, sizeof(float) * 2 * Hp * Wp));
    CK(cudaMemcpy(dgrid, grid.data(), grid.size() * 4, cudaMemcpyHostToDevice));
    CK(tgvc_cuda_flow_upsample(0, dgrid, 1, h, w, 5, H, W, Hp, Wp, dflow + (size_t)4 * Hp * Wp,
                               dweight + (size_t)Hp * Wp, 0, 0));
    std::vector<float> flow((size_t)4 * Hp * Wp), weight((size_t)Hp * Wp);
    CK(cudaMemcpy(flow.data(), dflow + (size_t)4 * Hp * Wp, flow.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(weight.data(), dweight + (size_t)Hp * Wp, weight.size() * 4, cudaMemcpyDeviceToHost));
    double err = 0;
    for (float v : flow) err = std::fmax(err, std::fabs(v + 3.25));
    for (float v : weight) err = std::fmax(err, std::fabs(v - 0.75));
    CK(tgvc_cuda_flow_upsample(0, dgrid, 1, h, w, 5, H, W, Hp, Wp, nullptr, dweight, 1, 0));
    CK(cudaMemcpy(weight.data(), dweight, weight.size() * 4, cudaMemcpyDeviceToHost));
    for (float v : weight) err = std::fmax(err, std::fabs(v - 1.0));
    CK(cudaDeviceSynchronize());
    std::printf("flow_upsample of a constant grid: max error %.3g\n", err);
    ok = ok && err < 1e-5;
    ok = ok && tgvc_cuda_frame_output(0, dimg, 1, Hp, Wp, H, W, 3, dout, 0) != 0;  // reduce 3 refused
    cudaGetLastError();
    for (void* p : {(void*)dframe, (void*)dout, (void*)dimg, (void*)dgrid, (void*)dflow, (void*)dweight}) cudaFree(p);
    return ok ? 0 : 1;
}
