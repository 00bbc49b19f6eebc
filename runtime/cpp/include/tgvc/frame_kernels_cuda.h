// Host launchers of the CUDA frame kernels of the interpolating decoder (defined in
// runtime/tgvc_rt/kernels/{image_input,flow_upsample,frame_output}.cu, compiled by nvcc into libtgvc
// when CMake finds a CUDA toolkit; TGVC_HAVE_CUDA is then defined). All take device pointers,
// enqueue one launch on `stream` and return a cudaError_t as int (0 = success). dtype 0: the float
// tensors are fp32, 1: IEEE fp16. Layouts are row-major and contiguous.
#pragma once

#include <cstddef>

#ifdef TGVC_HAVE_CUDA
#include <cuda_runtime.h>

extern "C" {
// uint8 key frame [H, W, 3] (RGB) -> out [copies, 3, Hp, Wp] in [0, 1] (x * float32(1/255)),
// edge-padded bottom/right, the same image in each of the `copies` batch rows.
int tgvc_cuda_image_input(int dtype, const unsigned char* frame, int H, int W, int Hp, int Wp,
                          int copies, void* out, cudaStream_t stream);
// fp32 motion grids [count, h, w, C] (C = 5: flow_a, flow_b, weight; C = 4: no weight) ->
// bilinear to H x W exactly as cv2.resize(INTER_LINEAR), edge-padded to Hp x Wp: channels 0-3 of
// frame i into flow + i * 4 Hp Wp, channel 4 into weight + i * Hp Wp (either may be NULL). Pass
// the slots of the first batch index j: flow_init + j * 4 Hp Wp, init_weight + j * Hp Wp.
// unit_weight != 0 or C == 4: the weight is a grid of ones.
int tgvc_cuda_flow_upsample(int dtype, const float* grid, int count, int h, int w, int C, int H,
                            int W, int Hp, int Wp, void* flow, void* weight, int unit_weight,
                            cudaStream_t stream);
// Model output [B, 3, Hp, Wp] in [0, 1] -> uint8 [B, H, W, 3] = clip(rint(x * 255), 0, 255); with
// reduce == 2 the frames cover 2H x 2W and are area-reduced ((a + b + c + d + 2) >> 2, as cv2
// INTER_AREA on uint8).
int tgvc_cuda_frame_output(int dtype, const void* frames, int B, int Hp, int Wp, int H, int W,
                           int reduce, unsigned char* out, cudaStream_t stream);
}
#endif
