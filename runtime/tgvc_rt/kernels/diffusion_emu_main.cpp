// CPU emulation of latent_affine.cu, gaussian_blur.cu and residual_output.cu (see cuda_emu.h),
// built as a shared library by tests/test_diffusion_kernels.py:
//   g++ -std=c++20 -O1 -pthread -ffp-contract=off -DTGVC_EMU -shared -fPIC diffusion_emu_main.cpp
// The tests call the C++ host launchers of the three sources (tgvc_cuda_*, tgvc_gaussian_taps) on
// host memory through ctypes, and put tgvc_emu_launch_named, an emulated cuLaunchKernel, behind the
// Python launcher (diffusion_kernels.DiffusionKernels) so that its argument packing runs against
// the kernels themselves.
#include "latent_affine.cu"
#include "gaussian_blur.cu"
#include "residual_output.cu"

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
    if (n == "tgvc_latent_normalise_f32" || n == "tgvc_latent_denormalise_f32") {
        tgvc_emu_launch(n == "tgvc_latent_normalise_f32" ? tgvc_latent_normalise_f32
                                                         : tgvc_latent_denormalise_f32,
                        grid, block, 0, arg<const float*>(p, 0), arg<int>(p, 1),
                        arg<const float*>(p, 2), arg<const float*>(p, 3), arg<float*>(p, 4));
    } else if (n == "tgvc_gaussian_rows_f32" || n == "tgvc_gaussian_cols_f32") {
        tgvc_emu_launch(n == "tgvc_gaussian_rows_f32" ? tgvc_gaussian_rows_f32 : tgvc_gaussian_cols_f32,
                        grid, block, 0, arg<const float*>(p, 0), arg<int>(p, 1), arg<int>(p, 2),
                        arg<const float*>(p, 3), arg<int>(p, 4), arg<float*>(p, 5));
    } else if (n == "tgvc_residual_change_f32" || n == "tgvc_residual_change_f16") {
        auto a = [&](auto kernel, auto* dz, auto* dw) {
            tgvc_emu_launch(kernel, grid, block, 0, dz, dw, arg<int>(p, 2), arg<int>(p, 3),
                            arg<int>(p, 4), arg<int>(p, 5), arg<float*>(p, 6));
        };
        if (n.back() == '2') a(tgvc_residual_change_f32, arg<const float*>(p, 0), arg<const float*>(p, 1));
        else a(tgvc_residual_change_f16, arg<const tgvc_half*>(p, 0), arg<const tgvc_half*>(p, 1));
    } else if (n == "tgvc_residual_compose_u8") {
        tgvc_emu_launch(tgvc_residual_compose_u8, grid, block, 0, arg<const float*>(p, 0),
                        arg<const unsigned char*>(p, 1), arg<int>(p, 2), arg<int>(p, 3),
                        arg<unsigned char*>(p, 4));
    } else {
        return 1;
    }
    return 0;
}
