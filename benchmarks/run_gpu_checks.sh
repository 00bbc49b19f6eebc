#!/usr/bin/env bash
# One device call for the CUDA guidance path: GPU pytest, CMake build + ctest (sm_90 only, for
# time), benchmark (+ the previous kernel from .bench/guidance_prev.cu when carried). Logs and the
# benchmark JSON go to $OUT (default /tmp/tgvc-gpu-out).
#   bash benchmarks/run_gpu_checks.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/tgvc-gpu-out}
mkdir -p "$OUT"
source benchmarks/gpu/env.sh
if [ -z "${TGVC_BENCH_ONLY:-}" ]; then
echo "== pytest"
timeout 120 $PY -m pytest -q -rs -p no:cacheprovider tests/test_guidance_kernel.py 2>&1 | tee "$OUT/pytest.log" | tail -25
echo "== cmake + ctest"
( cmake -S . -B /tmp/tgvc-build -G Ninja -DTGVC_CUDA_ARCHS=90 -DTGVC_CUDA_PTX_ARCH=90 && cmake --build /tmp/tgvc-build \
  && ctest --test-dir /tmp/tgvc-build --output-on-failure ) > "$OUT/ctest.log" 2>&1
echo "ctest rc=$?"; grep -E "tgvc:|tests passed|gpu vs cpu|Failed|Skipped|Error" "$OUT/ctest.log" | head -20
fi
echo "== benchmark"
# the previous kernel source, if carried (.bench/ is git-ignored locally), is timed alongside
LEGACY=${TGVC_LEGACY_CU:-.bench/guidance_prev.cu}
timeout 200 $PY benchmarks/gpu_guidance.py --out "$OUT" --legacy "$LEGACY" --unet default 2>&1 | tee "$OUT/bench.log" | tail -40
