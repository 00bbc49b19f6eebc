# Sourced by the GPU check scripts: carried wheels, PYTHONPATH, NVRTC from the nvidia-cuda-nvrtc wheel (if
# cuda-pathfinder does not find it by itself), and the machine's description in $OUT/env.log.
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/runtime:$PWD/export${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TGVC_KERNEL_CACHE=/tmp/tgvc-kc
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
  $PY -c "import torch, numpy, onnxruntime; print('torch', torch.__version__, 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)"
  $PY -c "import cuda.bindings as b; print('cuda-bindings', b.__version__)"
} 2>&1 | tee "$OUT/env.log"
