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
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/runtime:$PYTHONPATH PYTHONUNBUFFERED=1 TGVC_KERNEL_CACHE=/tmp/tgvc-kc
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
  $PY -c "import torch, numpy, onnxruntime, cupy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__, 'cupy', cupy.__version__)"
  $PY -c "import cuda.bindings as b; print('cuda-bindings', b.__version__)"
} 2>&1 | tee "$OUT/env.log"
echo "== kernel tests"
timeout 240 $PY -m pytest -q -rs -p no:cacheprovider tests/test_frame_kernels.py tests/test_guidance_kernel.py \
  tests/test_trt_runner.py 2>&1 | tee "$OUT/pytest.log" | tail -15
echo "== cmake + ctest"
( cmake -S . -B /tmp/tgvc-build -G Ninja -DTGVC_CUDA_ARCHS=90 -DTGVC_CUDA_PTX_ARCH=90 && cmake --build /tmp/tgvc-build \
  && ctest --test-dir /tmp/tgvc-build --output-on-failure ) > "$OUT/ctest.log" 2>&1
echo "ctest rc=$?"; grep -E "tests passed|Failed|Skipped|Error" "$OUT/ctest.log" | head -10
echo "== decode loop"
timeout 300 $PY benchmarks/gpu/decode_loop.py --out "$OUT" 2>&1 | grep -v Warning | tee "$OUT/decode_loop.log" | tail -20
