"""Build hook for the optional compiled CPU guidance; the project metadata lives in pyproject.toml.

``tgvc_rt._guidance_cpu`` is a plain shared object with a C ABI (runtime/cpp/include/tgvc/guidance.h),
loaded with ctypes by ``tgvc_rt.diffusion.guidance_native``, not a Python C-API module. It is
optional: without a working C++17 compiler ``pip install .`` / ``pip install -e .`` still succeed
(setuptools prints a warning) and the decoder uses the NumPy guidance.

Environment:
  TGVC_NATIVE_ARCH=1   compile for this machine only (-march=native) instead of the portable build
                       (x86-64 baseline plus an AVX2 variant picked at load time).
"""
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXPORTS = ["tgvc_guidance_f32_abi", "tgvc_guidance_f32_create", "tgvc_guidance_f32_step",
           "tgvc_guidance_f32_set_threads", "tgvc_guidance_f32_destroy"]


class BuildCtypesLibrary(build_ext):
    """Per-compiler flags, and the C functions (not ``PyInit_*``) as the exported symbols."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        native = os.environ.get("TGVC_NATIVE_ARCH", "") not in ("", "0")
        for ext in self.extensions:
            if msvc:
                ext.extra_compile_args = ["/O2", "/std:c++17"]
                ext.extra_link_args = []
            elif native:
                ext.extra_compile_args = ext.extra_compile_args + ["-march=native", "-DTGVC_GUIDANCE_NO_CLONES"]
        super().build_extensions()

    def get_export_symbols(self, ext):
        return EXPORTS


setup(
    ext_modules=[
        Extension(
            "tgvc_rt._guidance_cpu",
            sources=["runtime/cpp/src/guidance_cpu_f32.cpp", "runtime/cpp/src/guidance_cpu.cpp"],
            include_dirs=["runtime/cpp/include"],
            depends=["runtime/cpp/include/tgvc/guidance.h"],
            language="c++",
            extra_compile_args=["-O3", "-std=c++17", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildCtypesLibrary},
)
