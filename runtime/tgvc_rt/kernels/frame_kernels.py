"""Python launcher of the frame kernels: NVRTC at first use, driver-API launches, no PyTorch.

The host work of the interpolating decoder (``tgvc_rt.decoder.interpolate``) around the
interpolator model, on the GPU, so that key frames go up once and only finished frames come back:

* ``image_input.cu``: uint8 key frame [H, W, 3] -> the model's ``img0``/``img1`` [3, Hp, Wp];
* ``flow_upsample.cu``: dense-motion grids [n, h, w, C] -> slots of ``flow_init`` [B, 4, Hp, Wp] and
  ``init_weight`` [B, 1, Hp, Wp];
* ``frame_output.cu``: the model's ``frame`` [B, 3, Hp, Wp] -> uint8 [B, H, W, 3] (optionally
  area-reduced by 2 for frames the model ran at twice their size).

``FrameKernels`` methods take raw device addresses (ints) and a raw ``CUstream`` handle, enqueue one
launch and return at once; nothing is copied or synchronised. The ``run_*`` methods are the
host-array path for tests. ``frame_reference`` has the NumPy reference of every op. Importing this
module needs neither CUDA nor cuda-python; constructing ``FrameKernels`` does.
"""
from __future__ import annotations

import ctypes

import numpy as np

from tgvc_rt.errors import OptionError
from tgvc_rt.kernels import nvrtc_cache
from tgvc_rt.kernels.kernel_set import KernelSet

SOURCES = {name: nvrtc_cache.KERNEL_DIR / f"{name}.cu" for name in ("image_input", "flow_upsample", "frame_output")}
DTYPES = {"float32": (np.float32, 4, "f32"), "float16": (np.float16, 2, "f16")}
MAX_GRID_YZ = 65535  # rows (grid.y) and frames (grid.z) of one launch

_I, _D = ctypes.c_int, ctypes.c_double


def _p(v) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(v) if v else None)


def _dtype(dtype: str) -> tuple[type, int, str]:
    if dtype not in DTYPES:
        raise OptionError(f"frame kernel dtype must be float32 or float16, got {dtype}")
    return DTYPES[dtype]


def _check_pad(height: int, width: int, hp: int, wp: int) -> None:
    if height < 1 or width < 1 or hp < height or wp < width or hp > MAX_GRID_YZ:
        raise OptionError(f"frame kernels: need 1 <= H <= Hp <= {MAX_GRID_YZ} and 1 <= W <= Wp, "
                          f"got H={height} W={width} Hp={hp} Wp={wp}")


class FrameKernels(KernelSet):
    """The three frame kernels compiled for one device; cheap to call."""

    SOURCES = SOURCES

    # -- device-pointer API -------------------------------------------------------------
    def image_input(self, frame: int, height: int, width: int, hp: int, wp: int, out: int, *, copies: int = 1,
                    dtype: str = "float32", stream: int = 0) -> None:
        """Enqueue uint8 ``frame`` [height, width, 3] (RGB) -> ``out`` [copies, 3, hp, wp] of ``dtype``
        in [0, 1], edge-padded; ``copies`` > 1 repeats the image along the batch axis (img0/img1
        of a batch)."""
        _, _, sfx = _dtype(dtype)
        _check_pad(height, width, hp, wp)
        if not 1 <= copies <= MAX_GRID_YZ:
            raise OptionError(f"copies must lie in [1, {MAX_GRID_YZ}], got {copies}")
        self.api.launch(self.fn("image_input", "tgvc_image_input_" + sfx), self._grid(wp, hp, copies),
                        (self.block, 1, 1), 0, stream,
                        [_p(frame), _I(height), _I(width), _I(hp), _I(wp), _p(out)])

    def flow_upsample(self, grid: int, h: int, w: int, height: int, width: int, hp: int, wp: int,
                      flow_init: int, init_weight: int, *, index: int = 0, count: int = 1, channels: int = 5,
                      unit_weight: bool = False, dtype: str = "float32", stream: int = 0) -> None:
        """Enqueue ``count`` float32 motion grids ``grid`` [count, h, w, channels] -> batch slots
        ``index .. index + count - 1`` of ``flow_init`` [B, 4, hp, wp] and ``init_weight`` [B, 1, hp, wp]
        (base addresses of the whole batch tensors, of ``dtype``; either may be 0: not written).
        Bilinear to height x width exactly as cv2.resize(INTER_LINEAR), edge-padded to hp x wp.
        ``channels`` 5: flow_a (2), flow_b (2), weight; ``unit_weight`` or ``channels`` 4: weight 1
        everywhere (the decoder's ``camera`` case)."""
        _, es, sfx = _dtype(dtype)
        _check_pad(height, width, hp, wp)
        if channels not in (4, 5) or h < 1 or w < 1 or index < 0 or not 0 <= count <= MAX_GRID_YZ:
            raise OptionError(f"flow_upsample: bad grid h={h} w={w} C={channels} index={index} count={count}")
        if count == 0 or not (flow_init or init_weight):
            return
        plane = hp * wp * es
        flow = flow_init + index * 4 * plane if flow_init else 0
        weight = init_weight + index * plane if init_weight else 0
        self.api.launch(self.fn("flow_upsample", "tgvc_flow_upsample_" + sfx), self._grid(wp, hp, count),
                        (self.block, 1, 1), 0, stream,
                        [_p(grid), _I(h), _I(w), _I(channels), _I(height), _I(width), _I(hp), _I(wp),
                         _D(1.0 / (width / w)), _D(1.0 / (height / h)),  # OpenCV's scales, in double
                         _p(flow), _p(weight), _I(int(bool(unit_weight)))])

    def frame_output(self, frames: int, batch: int, hp: int, wp: int, height: int, width: int, out: int, *,
                     reduce: int = 1, dtype: str = "float32", stream: int = 0) -> None:
        """Enqueue the model output ``frames`` [batch, 3, hp, wp] of ``dtype`` in [0, 1] -> uint8 ``out``
        [batch, height, width, 3] = clip(rint(x * 255), 0, 255); ``reduce`` 2: the frames cover
        2 height x 2 width and are area-reduced (cv2 INTER_AREA of the uint8 frames)."""
        _, _, sfx = _dtype(dtype)
        if reduce not in (1, 2):
            raise OptionError(f"reduce must be 1 or 2, got {reduce}")
        if height < 1 or width < 1 or reduce * height > hp or reduce * width > wp or height > MAX_GRID_YZ:
            raise OptionError(f"frame_output: {reduce}x({height} x {width}) does not fit {hp} x {wp}")
        if not 0 <= batch <= MAX_GRID_YZ:
            raise OptionError(f"batch must lie in [0, {MAX_GRID_YZ}], got {batch}")
        if batch == 0:
            return
        self.api.launch(self.fn("frame_output", "tgvc_frame_output_" + sfx), self._grid(width, height, batch),
                        (self.block, 1, 1), 0, stream,
                        [_p(frames), _I(hp), _I(wp), _I(height), _I(width), _I(reduce), _p(out)])

    # -- host-array convenience path (tests) --------------------------------------------
    def run_image_input(self, frame: np.ndarray, hp: int, wp: int, *, copies: int = 1,
                        dtype: str = "float32") -> np.ndarray:
        """uint8 [H, W, 3] -> [copies, 3, hp, wp] (NumPy in and out)."""
        frame = np.ascontiguousarray(frame, np.uint8)
        h, w = frame.shape[:2]
        out = np.zeros((copies, 3, hp, wp), _dtype(dtype)[0])
        return self._run([frame], [out], lambda f, o: self.image_input(f, h, w, hp, wp, o, copies=copies,
                                                                        dtype=dtype))[0]

    def run_flow_upsample(self, grids: np.ndarray, height: int, width: int, hp: int, wp: int, *, batch: int = 0,
                          index: int = 0, unit_weight: bool = False,
                          dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
        """float32 [n, h, w, C] -> (flow_init [B, 4, hp, wp], init_weight [B, 1, hp, wp]) with slots
        index .. index + n - 1 written and the others NaN; B = ``batch`` or n + index."""
        grids = np.ascontiguousarray(grids, np.float32)
        n, h, w, c = grids.shape
        b = batch or n + index
        np_dtype = _dtype(dtype)[0]
        flow, weight = np.full((b, 4, hp, wp), np.nan, np_dtype), np.full((b, 1, hp, wp), np.nan, np_dtype)
        return tuple(self._run([grids], [flow, weight], lambda g, f, wt: self.flow_upsample(
            g, h, w, height, width, hp, wp, f, wt, index=index, count=n, channels=c, unit_weight=unit_weight,
            dtype=dtype)))

    def run_frame_output(self, frames: np.ndarray, height: int, width: int, *, reduce: int = 1) -> np.ndarray:
        """[B, 3, hp, wp] float32 or float16 -> uint8 [B, height, width, 3]."""
        frames = np.ascontiguousarray(frames)
        dtype = "float16" if frames.dtype == np.float16 else "float32"
        frames = frames.astype(_dtype(dtype)[0], copy=False)
        b, _, hp, wp = frames.shape
        out = np.zeros((b, height, width, 3), np.uint8)
        return self._run([frames], [out], lambda f, o: self.frame_output(f, b, hp, wp, height, width, o,
                                                                          reduce=reduce, dtype=dtype))[0]
