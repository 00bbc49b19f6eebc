"""The decoder's interpolator in the encoder's loop: instances it predicts by itself are dropped."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tgvc_rt.encoder.interp_probe import InterpolatorProbe, ProbeOptions, check_effort, prune_predicted
from tgvc_rt.errors import OptionError
from tgvc_rt.models import load_model_set
from tgvc_rt.types import Tracks

sys.path.insert(0, str(Path(__file__).parent))
import test_interp as scene  # noqa: E402


@pytest.fixture(scope="module")
def probe():
    return InterpolatorProbe(load_model_set("default").session("interpolator"), ProbeOptions(width=192))


def test_swing_is_missed_and_static_points_are_predicted(probe):
    frames, swing = scene._scene()
    errors = probe.track_errors(frames[0], frames[-1], swing)
    assert errors.min() > 20  # both keys show the square in place: RIFE cannot know it swung out
    static = Tracks(np.repeat(np.array([[[20.0, 20.0]], [[170.0, 100.0]]], np.float32), scene.F, axis=1),
                    np.ones((2, scene.F), bool))
    assert probe.track_errors(frames[0], frames[-1], static).max() < 1.5


def test_prune_keeps_missed_instances_in_order():
    xy = np.zeros((5, 4, 2), np.float32)
    tracks = Tracks(xy, np.ones((5, 4), bool), np.array([0, 0, 1, 1, -1]))
    kept = prune_predicted(tracks, np.array([5.0, 0.5, 0.2, 0.4, 3.0]), keep_error_px=2.0)
    assert kept.instance.tolist() == [0, 0, -1]  # instance 0's median (2.75) is above 2 px
    assert prune_predicted(Tracks.empty(4), np.zeros(0), 2.0).num_tracks == 0


def test_effort_is_checked():
    check_effort(0)
    check_effort(1)
    with pytest.raises(OptionError, match="--effort"):
        check_effort(3)


def test_effort_1_without_an_interpolator_is_an_error(tmp_path):
    """--effort 1 asks for the interpolator in the loop: a set without one is refused, not ignored."""
    import json

    from tgvc_rt.encoder.pipeline import EncodeOptions, _open_probe
    from tgvc_rt.errors import ModelSetError
    from tgvc_rt.models import resolve_model_set

    src = resolve_model_set("default")
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["models"] = {"tracker": manifest["models"]["tracker"]}
    (tmp_path / "tracker.onnx").symlink_to(src / "tracker.onnx")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert _open_probe(EncodeOptions(effort=0, model_set=str(tmp_path))) is None
    with pytest.raises(ModelSetError, match="--effort 0"):
        _open_probe(EncodeOptions(effort=1, model_set=str(tmp_path)))
