"""ONNX Runtime on the GPU with device I/O: a ``DeviceModel`` (backends/device.py) over an ``OrtSession`` on
the CUDA or TensorRT execution provider whose inputs and outputs are OUR device buffers.

Inputs are bound by address (``IOBinding.bind_input`` with "cuda", zero copy). Outputs: the first run at
a new input-shape signature lets ONNX Runtime allocate them on the device, which tells their shapes; our
buffers of those shapes are then allocated (the first results copied over on the device) and bound by
address from the next run on. The session shares the device's stream (``GpuOptions.stream``) and does not
synchronise after a run, so our kernels and the model are ordered on one stream and only a download waits.
Needs onnxruntime-gpu and a CUDA device; importing this module needs neither.
"""
from __future__ import annotations

import numpy as np

from tgvc_rt.backends.cuda import bind_ort_buffer, ort_value_ptr
from tgvc_rt.backends.ort import _NP_TYPES
from tgvc_rt.errors import ModelSetError


class OrtDeviceModel:
    """An ``OrtSession`` (backend "ort-cuda" or "ort-tensorrt") reading and writing device buffers."""

    def __init__(self, session, device, device_id: int = 0, device_type: str = "cuda"):
        import onnxruntime

        self.session, self.device, self.device_id = session, device, int(device_id)
        self.device_type = device_type  # "cpu" binds host memory (tests of the binding logic)
        self.backend = session.backend
        self._sess = session._sess
        self._binding = self._sess.io_binding()
        self._run_options = onnxruntime.RunOptions()
        self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self._key = None
        self._outputs: dict = {}

    def run(self, inputs: dict) -> dict:
        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        for name in self.session.inputs:
            if name not in inputs:
                raise ModelSetError(f"{self.session.path.name}: missing input {name!r}")
            bind_ort_buffer(b, name, inputs[name], device_id=self.device_id, device_type=self.device_type)
        key = tuple((n, tuple(inputs[n].shape)) for n in self.session.inputs)
        if key == self._key:
            for name, buf in self._outputs.items():
                bind_ort_buffer(b, name, buf, output=True, device_id=self.device_id, device_type=self.device_type)
            self._sess.run_with_iobinding(b, self._run_options)
            return self._outputs
        for name in self.session.outputs:  # learn the shapes: onnxruntime allocates on the device
            b.bind_output(name, self.device_type, self.device_id)
        self._sess.run_with_iobinding(b, self._run_options)
        values = b.get_outputs()
        self.device.release(*self._outputs.values())
        self._outputs = {}
        for name, value in zip(self.session.outputs, values):
            buf = self.device.empty(tuple(value.shape()), _NP_TYPES.get(value.data_type(), np.float32))
            self.device.copy(buf, ort_value_ptr(value, self.device_type))
            self._outputs[name] = buf
        self._key = key
        return self._outputs
