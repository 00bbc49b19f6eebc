"""TEST-ONLY stand-in model runtime for the GPU check machine, which has torch but neither onnxruntime-gpu
nor TensorRT: the model set's exported ONNX graphs, converted to torch modules by onnx2torch (carried as a
wheel), run on the GPU and wrapped as a ``DeviceModel`` (tgvc_rt/backends/device.py) that reads and writes
the decode loop's own device buffers. Never a runtime dependency: nothing in ``runtime/`` imports it, and
every result made with it names it ("torch-standin").

onnx2torch 1.5 needs five patches for our graphs, all semantics-preserving here:
* torchvision is imported at module level for the NMS / RoIAlign converters our graphs never use: a stub
  module stands in when torchvision is missing;
* converters are registered per opset "since" version; where ours is newer than the newest converter
  (Resize-18, ...), the newest older converter is used (the attributes we use are unchanged);
* GridSample has no converter: ``torch.nn.functional.grid_sample`` with the node's attributes;
* GatherND indexes with int32 indices, which torch refuses: they are made int64;
* ``Reshape(allowzero=1)`` is rejected: it differs from allowzero=0 only for a 0 in the target shape,
  which our graphs never have (every axis is >= 1), so it is rewritten to 0.
"""
from __future__ import annotations

import sys
import types

import numpy as np


def _stub_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # noqa: BLE001 - missing or broken: both mean "stub it"
        pass

    def missing(*_a, **_k):
        raise RuntimeError("torchvision op called in the torch stand-in")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.roi_align = ops.nms = ops.box_convert = missing
    tv.ops = ops
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops


def _alias_newer_opsets(model) -> None:
    from onnx import defs
    from onnx2torch.node_converters import registry

    opset = {o.domain or "": o.version for o in model.opset_import}
    reg = registry._CONVERTER_REGISTRY
    for node in model.graph.node:
        domain = node.domain or ""
        try:
            since = defs.get_schema(node.op_type, max_inclusive_version=opset.get(domain, 18),
                                    domain=domain).since_version
        except Exception:  # noqa: BLE001
            continue
        key = registry.OperationDescription(domain=domain, operation_type=node.op_type, version=since)
        if key in reg:
            continue
        older = sorted((d.version, c) for d, c in reg.items()
                       if d.operation_type == node.op_type and d.domain == domain and d.version < since)
        if older:
            reg[key] = older[-1][1]


def _register_grid_sample() -> None:
    """GridSample (opset 16/20) as ``torch.nn.functional.grid_sample``: onnx2torch 1.5 has no converter."""
    import torch
    from onnx2torch.node_converters import registry
    from onnx2torch.utils.common import OnnxToTorchModule, OperationConverterResult, onnx_mapping_from_node

    modes = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
             "bicubic": "bicubic"}

    class GridSample(torch.nn.Module, OnnxToTorchModule):
        def __init__(self, mode: str, padding: str, align: bool):
            super().__init__()
            self.mode, self.padding, self.align = mode, padding, align

        def forward(self, x, grid):
            return torch.nn.functional.grid_sample(x, grid, mode=self.mode, padding_mode=self.padding,
                                                   align_corners=self.align)

    def convert(node, graph):  # noqa: ARG001
        a = node.attributes
        mode = a.get("mode", "linear")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        padding = a.get("padding_mode", "zeros")
        padding = padding.decode() if isinstance(padding, bytes) else padding
        return OperationConverterResult(torch_module=GridSample(modes[mode], padding, bool(a.get("align_corners", 0))),
                                        onnx_mapping=onnx_mapping_from_node(node))

    for version in (16, 20, 22):
        key = registry.OperationDescription(domain="", operation_type="GridSample", version=version)
        registry._CONVERTER_REGISTRY.setdefault(key, convert)


def _long_gather_indices() -> None:
    """ONNX GatherND takes int32 or int64 indices; onnx2torch indexes with them as given, which torch
    accepts for int64 only."""
    from onnx2torch.node_converters import gather

    cls = gather.OnnxGatherND
    if getattr(cls, "_standin_long", False):
        return
    plain = cls._gather_nd

    def gather_nd(data, indices, batch_dims):
        return plain(data, indices.long(), batch_dims)

    cls._gather_nd = staticmethod(gather_nd)
    cls._standin_long = True


def _clear_allowzero(model) -> None:
    for node in model.graph.node:
        if node.op_type == "Reshape":
            for attr in node.attribute:
                if attr.name == "allowzero":
                    attr.i = 0


def convert_onnx(path):
    """A torch module computing the ONNX graph at ``path`` (float32 weights)."""
    import onnx

    _stub_torchvision()
    from onnx2torch import convert

    model = onnx.load(str(path))
    _register_grid_sample()
    _long_gather_indices()
    _alias_newer_opsets(model)
    _clear_allowzero(model)
    return convert(model).eval()


class TorchStandinModel:
    """``DeviceModel`` over a converted module: inputs are the loop's device buffers (viewed as torch tensors
    through CuPy/DLPack, zero copy), outputs are copied into buffers we own, on the loop's stream."""

    backend = "torch-standin"

    def __init__(self, path, device, input_names, output_names, half: bool = False):
        import torch

        self.torch = torch
        self.device = device
        self.inputs, self.outputs = list(input_names), list(output_names)
        self.module = convert_onnx(path).to("cuda")
        self.half = half
        if half:
            self.module = self.module.half()
        self.stream = torch.cuda.ExternalStream(int(device.stream)) if device.stream else None
        self._out: dict = {}
        self._key = None

    def _tensor(self, buf):
        import cupy

        mem = cupy.cuda.UnownedMemory(int(buf.ptr), int(buf.nbytes), self)
        arr = cupy.ndarray(tuple(buf.shape), dtype=buf.dtype, memptr=cupy.cuda.MemoryPointer(mem, 0))
        return self.torch.from_dlpack(arr)

    def run(self, inputs: dict) -> dict:
        torch = self.torch
        ctx = torch.cuda.stream(self.stream) if self.stream is not None else torch.cuda.stream(None)
        with torch.inference_mode(), ctx:
            args = [self._tensor(inputs[n]) for n in self.inputs]
            if self.half:
                args = [a.half() if a.is_floating_point() else a for a in args]
            res = self.module(*args)
            res = res if isinstance(res, (tuple, list)) else [res]
            key = tuple((n, tuple(inputs[n].shape)) for n in self.inputs)
            if key != self._key:
                self.device.release(*self._out.values())
                self._out = {n: self.device.empty(tuple(r.shape), np.float32) for n, r in zip(self.outputs, res)}
                self._key = key
            for n, r in zip(self.outputs, res):
                self._tensor(self._out[n]).copy_(r.float())
        return self._out
