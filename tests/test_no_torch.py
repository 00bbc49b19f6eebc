"""`import tgvc_rt` and a diffusion decode with the tiny model set work with torch unavailable."""
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import sys
sys.modules["torch"] = None          # any `import torch` now raises ImportError
sys.path.insert(0, {tests!r})
import numpy as np
import tgvc_rt
from onnx_fixtures import build_tiny_model_set
from tgvc_rt.decoder.diffusion import DiffusionOptions, diffuse_group
from tgvc_rt.models import load_model_set
from tgvc_rt.types import Tracks
models = load_model_set(build_tiny_model_set({tmp!r}))
rng = np.random.default_rng(0)
frames = rng.integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
tracks = Tracks(rng.uniform(0, 16, (4, 5, 2)), np.ones((4, 5), bool))
out = diffuse_group(frames, frames[0], frames[-1], tracks, models, DiffusionOptions(steps=2), seed=3)
assert out.shape == frames.shape
assert not any(m == "torch" or m.startswith("torch.") for m, v in sys.modules.items() if v is not None)
print("ok")
"""


def test_decode_without_torch(tmp_path):
    code = SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path / "tiny"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")
