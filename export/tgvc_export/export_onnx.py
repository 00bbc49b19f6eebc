"""torch -> ONNX export of the model set, FP32 and FP16, with ORT-vs-torch checks.

Every graph keeps float32 inputs/outputs (docs/models.md). FP16 variants cast to half inside the
graph and keep every normalisation layer (GroupNorm, LayerNorm) as an FP32 island, where FP16
would overflow (sums of squares).
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn

OPSET = 18
STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata written by torch.onnx.export(dynamo=True)

TAESD_NOTICE = ("Made from TAEF2 (madebyollin/taesd @ 5cccb12), MIT licence, "
                "Copyright (c) 2023 Ollin Boer Bohan; see LICENSE-taesd.txt")


@dataclass
class ExportSpec:
    """What one ONNX file is: its module, example inputs, names and dynamic axes."""

    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]  # example inputs, in forward order
    outputs: list[str]
    dynamic: dict[str, dict[int, object]]  # per input: axis -> torch.export.Dim (or derived)
    licence: str = "MIT (tgvc-rt)"


class Float32Island(nn.Module):
    """Runs a normalisation layer in float32 inside a float16 network."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


class Half(nn.Module):
    """float32 I/O, float16 compute: casts every input to half, the outputs back to float."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = _with_fp32_norms(copy.deepcopy(module).half())

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.module(*[a.half() for a in args])
        if isinstance(out, tuple):
            return tuple(o.float() for o in out)
        return out.float()


def _with_fp32_norms(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, (nn.GroupNorm, nn.LayerNorm)):
            setattr(module, name, Float32Island(child))
        else:
            _with_fp32_norms(child)
    return module


def export(spec: ExportSpec, path: str | Path, fp16: bool = False, external_data: bool = False) -> Path:
    """Write ``spec`` to ``path`` (opset 18, dynamic axes); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = Half(spec.module) if fp16 else spec.module
    module.eval()
    names = list(spec.inputs)
    dyn = tuple(spec.dynamic.get(n, {}) for n in names)  # positional, matches forward order
    if fp16:  # Half.forward takes *args
        dyn = (dyn,)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, tuple(spec.inputs.values()), input_names=names,
                                 output_names=spec.outputs, opset_version=OPSET, dynamo=True,
                                 dynamic_shapes=dyn, external_data=external_data, verbose=False)
    props = {"tgvc.name": spec.name, "licence": spec.licence, "precision": "fp16" if fp16 else "fp32"}
    if external_data:  # > 2 GB protobuf limit: let the exporter stream the weights to <file>.data
        for old in (path, path.with_name(path.name + ".data")):
            old.unlink(missing_ok=True)
        prog.save(str(path), external_data=True)
        model = onnx.load(str(path), load_external_data=False)
        strip_stack_traces(model)
        onnx.helper.set_model_props(model, props)
        onnx.save_model(model, str(path))
    else:
        model = prog.model_proto
        strip_stack_traces(model)
        onnx.helper.set_model_props(model, props)
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def strip_stack_traces(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the exporter's per-node Python stack traces (they name the exporting machine's paths)."""

    def graph(g: onnx.GraphProto) -> None:
        for node in g.node:
            nodes(node)

    def nodes(node: onnx.NodeProto) -> None:
        keep = [p for p in node.metadata_props if p.key != STACK_TRACE]
        if len(keep) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
        for attr in node.attribute:
            if attr.HasField("g"):
                graph(attr.g)
            for sub in attr.graphs:
                graph(sub)

    graph(model.graph)
    for fn in model.functions:
        for node in fn.node:
            nodes(node)
    return model


def ort_session(path: str | Path, threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def max_abs_error(spec: ExportSpec, path: str | Path, inputs: dict[str, torch.Tensor] | None = None) -> float:
    """Max |ORT(path) - torch(spec.module)| over all outputs, at ``inputs`` (default: the examples)."""
    inputs = inputs or spec.inputs
    with torch.no_grad():
        ref = spec.module.eval()(*inputs.values())
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = ort_session(path).run(None, {k: v.numpy() for k, v in inputs.items()})
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))
