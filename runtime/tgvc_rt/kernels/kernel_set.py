"""What the launchers of the frame and diffusion kernels share: NVRTC compilation of a few ``.cu`` sources
for one device (through ``nvrtc_cache``), function lookup, the launch grid of the row-wise kernels, and the
host-array path their ``run_*`` test helpers use. Importing it needs no CUDA."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import cuda_api, nvrtc_cache


class KernelSet:
    """``SOURCES`` (module name -> .cu path) compiled for one device; subclasses add the launch methods."""

    SOURCES: dict[str, Path] = {}

    def __init__(self, api=None, *, device: int = 0, block: int = 128, prefer: str = "cuda-python",
                 defines: tuple[str, ...] = ()):
        if block % 32 or not 32 <= block <= 1024:
            raise OptionError(f"block must be a multiple of 32 in [32, 1024], got {block}")
        self.block = block
        self.api = api or cuda_api.open_api(device, prefer)
        arch, _ = nvrtc_cache.pick_target(self.api.compute_capability())
        self.kernels = {name: nvrtc_cache.cached_compile(arch, tuple(defines), source_path=path)
                        for name, path in self.SOURCES.items()}
        self.modules = {name: self.api.load(k.image if not k.is_ptx else k.image.rstrip(b"\0 ") + b"\0")
                        for name, k in self.kernels.items()}
        self._fn: dict[str, object] = {}

    def fn(self, module: str, name: str):
        if name not in self._fn:
            self._fn[name] = self.api.function(self.modules[module], name)
        return self._fn[name]

    def _grid(self, n: int, rows: int, frames: int) -> tuple[int, int, int]:
        """Blocks of ``block`` threads along a row of ``n``, one grid row per image row, one layer per frame."""
        return -(-n // self.block), rows, frames

    # -- host-array convenience path (tests) --------------------------------------------
    def _to_device(self, array: np.ndarray) -> int:
        a = np.ascontiguousarray(array)
        ptr = self.api.alloc(a.nbytes)
        self.api.h2d(ptr, a)
        return ptr

    def _run(self, inputs: list[np.ndarray], outputs: list[np.ndarray], launch) -> list[np.ndarray]:
        """Upload ``inputs`` and ``outputs``, ``launch(*input_ptrs, *output_ptrs)``, read ``outputs`` back."""
        ins = [self._to_device(a) for a in inputs]
        outs = []
        try:
            for o in outputs:
                outs.append(self._to_device(o))
            launch(*ins, *outs)
            self.api.sync()
            for o, p in zip(outputs, outs):
                self.api.d2h(o, p)
        finally:
            for p in ins + outs:
                self.api.free(p)
        return outputs
