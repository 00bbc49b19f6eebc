"""Interpolation with everything per frame on a device (``--mode interp`` on a GPU backend).

Per group the two keyframes go up once and become the model's ``img0``/``img1`` there
(``image_input``). Per model batch the host computes what depends on the tracks and is small (the
dense-motion grids at their reduced size, the track constraints, the timesteps:
``interpolate.iter_batch_inputs``, shared with the host decoder) and writes it into reused staging
buffers; the device upsamples the grids to ``flow_init``/``init_weight`` (``flow_upsample``), runs the
interpolator, and turns its frames into uint8 pictures (``frame_output``), all on one stream. Only the
finished frames come back. Same inputs, same order of operations as ``interpolate.iter_group``: on the
emulated device (``backends/device.py``) the frames are identical, on a GPU they differ by the kernels'
and the model runtime's rounding.

Frames whose longer side is above ``InterpOptions.max_side`` (the model works at half size and its flows
are applied at full size) are not handled here: ``supported`` says so and the decoder uses the host loop.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tgvc_rt.backends.device import Device, DeviceModel, Staging
from tgvc_rt.decoder.group import check_keys
from tgvc_rt.decoder.interpolate import InterpOptions, guide_input, iter_batch_inputs, scaled_inputs, work_scale
from tgvc_rt.models.interpolator import padded_size
from tgvc_rt.types import Tracks


def supported(height: int, width: int, options: InterpOptions) -> bool:
    """Whether frames of this size are interpolated on the device (not the half-size path)."""
    return work_scale(height, width, options) >= 1.0


def iter_group_device(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, device: Device, model: DeviceModel,
                      options: InterpOptions = InterpOptions()) -> Iterator[np.ndarray]:
    """The frames of one group in order, uint8 [H, W, 3] each, as ``interpolate.iter_group`` yields them."""
    key_a, key_b = check_keys(key_a, key_b, tracks.num_frames)
    yield key_a.copy()
    if tracks.num_frames == 1:
        return
    if tracks.num_frames > 2:
        yield from _inner_frames(key_a, key_b, tracks, device, model, options)
    yield key_b.copy()


def _inner_frames(key_a: np.ndarray, key_b: np.ndarray, tracks: Tracks, device: Device, model: DeviceModel,
                  options: InterpOptions) -> Iterator[np.ndarray]:
    height, width = key_a.shape[:2]
    work = work_scale(height, width, options)
    if work < 1.0:
        raise ValueError("the device loop does not take the half-size path (see supported())")
    ka, kb, scaled, (ww, wh) = scaled_inputs(key_a, key_b, tracks, work)
    hp, wp = padded_size(wh, ww, options.pad)
    most = min(options.batch, tracks.num_frames - 2)
    keys = [device.upload(ka), device.upload(kb)]
    images = [device.empty((most, 3, hp, wp)) for _ in keys]
    for key, image in zip(keys, images):
        device.image_input(key, image)
    flow, weight = device.empty((most, 4, hp, wp)), device.empty((most, 1, hp, wp))
    out = device.empty((most, height, width, 3), np.uint8)
    staging = Staging(device)
    guide = staging.put("guide", guide_input(scaled, options))
    zeroed = False
    try:
        for batch in iter_batch_inputs(scaled, wh, ww, options):
            b = len(batch.frames)
            if batch.grids is None:
                if not zeroed:
                    device.zero(flow)
                    device.zero(weight)
                    zeroed = True
            else:
                device.flow_upsample(staging.put("grids", batch.grids), flow, weight, wh, ww)
                zeroed = False
            inputs = {"img0": images[0].head(b), "img1": images[1].head(b), "timestep": staging.put("t", batch.timestep),
                      "flow_init": flow.head(b), "init_weight": weight.head(b),
                      "track_xy": staging.put("xy", batch.track_xy), "track_flow": staging.put("tf", batch.track_flow),
                      "track_weight": staging.put("tw", batch.track_weight), "guide": guide}
            outputs = model.run(inputs)
            device.frame_output(outputs["frame"], out.head(b), reduce=int(work))
            yield from device.download(out.head(b))
    finally:
        staging.release()
        device.release(*keys, *images, flow, weight, out)
