#!/usr/bin/env bash
# One device call for the CUDA guidance path: GPU pytest, CMake build + ctest (sm_90 only, for
# time), benchmark (+ the previous kernel from .bench/guidance_prev.cu when carried). Logs and the
# benchmark JSON go to $OUT (default /tmp/tgvc-gpu-out).
#   bash benchmarks/run_gpu_checks.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/tgvc-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/runtime:$PWD/export${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TGVC_KERNEL_CACHE=/tmp/tgvc-kc
PY=${PY:-python3}
# NVRTC from the nvidia-cuda-nvrtc wheel, if cuda-pathfinder does not find it by itself
NVRTC_DIRS=$($PY - <<'PYEOF' 2>/dev/null
import glob, os, site
dirs = {os.path.dirname(p) for sp in site.getsitepackages() for p in glob.glob(sp + "/nvidia/**/libnvrtc.so*", recursive=True)}
print(":".join(sorted(dirs)))
PYEOF
)
export LD_LIBRARY_PATH=${NVRTC_DIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
  nvcc --version | tail -1
  $PY -c "import torch, numpy, scipy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
  $PY -c "import cuda.bindings as b; print('cuda-bindings', b.__version__)"
} 2>&1 | tee "$OUT/env.log"
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
