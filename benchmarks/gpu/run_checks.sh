#!/usr/bin/env bash
# The GPU checks of the decode loop, in one call on a GPU machine (torch + CuPy + cuda-python there;
# onnx2torch and constriction carried as wheels in .whl/, the prepared stream in benchmarks/gpu/data/):
#   1. the CUDA kernel tests (frame kernels, guidance) and the TensorRT runner's GPU test where TensorRT exists;
#   2. the CMake build with ctest (one SASS arch, for time);
#   3. benchmarks/gpu/decode_loop.py: the whole default-mode decode on the device loop vs the CPU decode.
# Logs and JSON go to $OUT (default /tmp/tgvc-gpu-out).
#   bash benchmarks/gpu/run_checks.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tgvc-gpu-out}
mkdir -p "$OUT"
source benchmarks/gpu/env.sh
echo "== kernel tests"
timeout 240 $PY -m pytest -q -rs -p no:cacheprovider tests/test_frame_kernels.py tests/test_guidance_kernel.py \
  tests/test_trt_runner.py 2>&1 | tee "$OUT/pytest.log" | tail -15
echo "== cmake + ctest"
( cmake -S . -B /tmp/tgvc-build -G Ninja -DTGVC_CUDA_ARCHS=90 -DTGVC_CUDA_PTX_ARCH=90 && cmake --build /tmp/tgvc-build \
  && ctest --test-dir /tmp/tgvc-build --output-on-failure ) > "$OUT/ctest.log" 2>&1
echo "ctest rc=$?"; grep -E "tests passed|Failed|Skipped|Error" "$OUT/ctest.log" | head -10
echo "== decode loop"
timeout 300 $PY benchmarks/gpu/decode_loop.py --out "$OUT" 2>&1 | grep -v Warning | tee "$OUT/decode_loop.log" | tail -20
