"""Point tracking with the model set's exported tracker (``tracker.onnx``), onnxruntime only.

The tracker (docs/models.md) is a pyramidal Lucas-Kanade tracker exported from ``export/``:
``frames`` [1, T, 1, H, W] grey in [0, 1], ``queries`` [1, K, 2] pixel (x, y) at frame 0 ->
``tracks`` [1, T, K, 2], ``visibility`` [1, T, K] (cumulative: once lost, a point stays lost).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelSetError

DEFAULT_TRACKER = Path(__file__).resolve().parents[1] / "models" / "default" / "tracker.onnx"
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 grey of RGB


@dataclass(frozen=True)
class TrackerOnnxOptions:
    visibility_threshold: float = 0.5  # a point is visible at t when the model's visibility > this
    threads: int = 2  # onnxruntime intra-op threads


@lru_cache(maxsize=4)
def _session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ModelSetError(f"cannot open tracker model {path}: {err}") from err


def to_grey(frames: np.ndarray) -> np.ndarray:
    """RGB uint8 [T, H, W, 3] -> float32 [1, T, 1, H, W] in [0, 1]."""
    grey = frames.astype(np.float32) @ (LUMA / 255.0)
    return grey[None, :, None]


def track_points_onnx(frames: np.ndarray, queries: np.ndarray, model_path: str | Path = DEFAULT_TRACKER,
                      options: TrackerOnnxOptions = TrackerOnnxOptions()) -> tuple[np.ndarray, np.ndarray]:
    """Track ``queries`` (float32 [K, 2] pixel (x, y) at frame 0) through ``frames`` (uint8 [T, H, W, 3]).

    Returns (xy float32 [K, T, 2], vis bool [K, T]).
    """
    frames = np.asarray(frames)
    queries = np.asarray(queries, np.float32).reshape(-1, 2)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"tracker frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, k = frames.shape[0], queries.shape[0]
    if t == 0:
        raise InputError("tracker needs at least one frame")
    if k == 0 or t == 1:
        return np.repeat(queries[:, None], t, axis=1), np.ones((k, t), bool)
    path = Path(model_path)
    if not path.is_file():
        raise ModelSetError(f"tracker model {path} not found")
    sess = _session(str(path), options.threads)
    tracks, vis = sess.run(None, {"frames": to_grey(frames), "queries": queries[None]})
    xy = np.ascontiguousarray(tracks[0].transpose(1, 0, 2), dtype=np.float32)
    return xy, vis[0].T > options.visibility_threshold
