"""Export of the point tracker: torch exports one ``TrackStep``, ONNX ``Loop`` runs it over frames.

The outer graph (docs/models.md): ``frames`` [1, T, 1, H, W], ``queries`` [1, K, 2] ->
``tracks`` [1, T, K, 2], ``visibility`` [1, T, K]. The loop body gathers frames i and i+1 from the
outer-scope ``frames`` and inlines the step graph (its names prefixed, its weights lifted to the
outer graph's initializers).
"""
from __future__ import annotations

from pathlib import Path

import onnx
import onnx.inliner
import torch
from onnx import TensorProto, helper
from torch.export import Dim

from .export_onnx import OPSET, ExportSpec, export
from .tracker import TrackerConfig, TrackStep

PREFIX = "step/"


def step_spec(cfg: TrackerConfig = TrackerConfig()) -> ExportSpec:
    g = torch.Generator().manual_seed(0)
    h, w, k = Dim("H", min=16, max=8192), Dim("W", min=16, max=8192), Dim("K", min=1, max=1 << 20)
    inputs = {"prev": torch.rand(1, 1, 48, 64, generator=g), "nxt": torch.rand(1, 1, 48, 64, generator=g),
              "pts": torch.rand(5, 2, generator=g) * 40, "vis": torch.ones(5)}
    dyn = {"prev": {2: h, 3: w}, "nxt": {2: h, 3: w}, "pts": {0: k}, "vis": {0: k}}
    return ExportSpec("tracker_step", TrackStep(cfg).eval(), inputs, ["pts_out", "vis_out"], dyn)


def _rename(graph: onnx.GraphProto, keep: set[str]) -> None:
    """Prefix every value name of graph (and its subgraphs) except those in keep."""
    def ren(name: str) -> str:
        return name if (not name or name in keep) else PREFIX + name

    for node in graph.node:
        node.input[:] = [ren(n) for n in node.input]
        node.output[:] = [ren(n) for n in node.output]
        node.name = PREFIX + node.name
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, keep)
    for coll in (graph.input, graph.output, graph.value_info):
        for v in coll:
            v.name = ren(v.name)
    for init in graph.initializer:
        init.name = ren(init.name)


def wrap_in_loop(step: onnx.ModelProto, licence: str) -> onnx.ModelProto:
    """The full tracker graph around an exported step model (inputs prev, nxt, pts, vis)."""
    step = onnx.inliner.inline_local_functions(step)
    sg = step.graph
    _rename(sg, keep=set())
    names = [i.name for i in sg.input]  # prefixed prev, nxt, pts, vis
    outs = [o.name for o in sg.output]
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    body_nodes = [
        helper.make_node("Constant", [], ["one_i"], value=helper.make_tensor("c1", i64, [], [1])),
        helper.make_node("Add", ["i", "one_i"], ["i_next"]),
        helper.make_node("Gather", ["frames", "i"], [names[0]], axis=1),
        helper.make_node("Gather", ["frames", "i_next"], [names[1]], axis=1),
        helper.make_node("Identity", ["pts_in"], [names[2]]),
        helper.make_node("Identity", ["vis_in"], [names[3]]),
        *sg.node,
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Identity", [outs[0]], ["pts_carry"]),
        helper.make_node("Identity", [outs[1]], ["vis_carry"]),
        helper.make_node("Identity", [outs[0]], ["pts_scan"]),
        helper.make_node("Identity", [outs[1]], ["vis_scan"]),
    ]
    body = helper.make_graph(
        body_nodes, "track_loop",
        [helper.make_tensor_value_info("i", i64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("pts_in", f32, ["K", 2]), helper.make_tensor_value_info("vis_in", f32, ["K"])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("pts_carry", f32, ["K", 2]), helper.make_tensor_value_info("vis_carry", f32, ["K"]),
         helper.make_tensor_value_info("pts_scan", f32, ["K", 2]), helper.make_tensor_value_info("vis_scan", f32, ["K"])])
    def c(name: str, value, dt=i64, vector: bool = False):
        t = helper.make_tensor(name + "_v", dt, [1] if vector else [], [value])
        return helper.make_node("Constant", [], [name], value=t)

    nodes = [
        c("axes0s", 0, vector=True), c("one", 1), c("true", True, TensorProto.BOOL),
        helper.make_node("Shape", ["frames"], ["fshape"], start=1, end=2),
        helper.make_node("Squeeze", ["fshape", "axes0s"], ["T"]),
        helper.make_node("Sub", ["T", "one"], ["M"]),
        helper.make_node("Squeeze", ["queries", "axes0s"], ["pts0"]),
        helper.make_node("ReduceSum", ["pts0", "one_axes"], ["qsum"], keepdims=0),
        c("one_axes", 1, vector=True),
        helper.make_node("Mul", ["qsum", "zero_f"], ["zeros_k"]),
        c("zero_f", 0.0, f32), c("one_f", 1.0, f32),
        helper.make_node("Add", ["zeros_k", "one_f"], ["vis0"]),
        helper.make_node("Loop", ["M", "true", "pts0", "vis0"], ["pts_last", "vis_last", "pts_seq", "vis_seq"], body=body),
        helper.make_node("Unsqueeze", ["pts0", "axes0s"], ["pts0_1"]),
        helper.make_node("Unsqueeze", ["vis0", "axes0s"], ["vis0_1"]),
        helper.make_node("Concat", ["pts0_1", "pts_seq"], ["tracks_t"], axis=0),
        helper.make_node("Concat", ["vis0_1", "vis_seq"], ["vis_t"], axis=0),
        helper.make_node("Unsqueeze", ["tracks_t", "axes0s"], ["tracks"]),
        helper.make_node("Unsqueeze", ["vis_t", "axes0s"], ["visibility"]),
    ]
    nodes = _topo(nodes)
    graph = helper.make_graph(
        nodes, "tracker",
        [helper.make_tensor_value_info("frames", f32, [1, "T", 1, "H", "W"]),
         helper.make_tensor_value_info("queries", f32, [1, "K", 2])],
        [helper.make_tensor_value_info("tracks", f32, [1, "T", "K", 2]),
         helper.make_tensor_value_info("visibility", f32, [1, "T", "K"])],
        initializer=list(sg.initializer))
    model = helper.make_model(graph, opset_imports=list(step.opset_import), producer_name="tgvc_export")
    model.ir_version = step.ir_version
    helper.set_model_props(model, {"tgvc.name": "tracker", "licence": licence, "precision": "fp32"})
    return model


def _topo(nodes: list) -> list:
    """Order outer nodes so every input is produced before use (Constants first)."""
    consts = [n for n in nodes if n.op_type == "Constant"]
    rest = [n for n in nodes if n.op_type != "Constant"]
    return consts + rest


def export_tracker(path: str | Path, cfg: TrackerConfig = TrackerConfig(), licence: str = "MIT (tgvc-rt)") -> Path:
    """Write the tracker ONNX (fp32) to path; returns it."""
    path = Path(path)
    tmp = path.with_name(path.stem + "_step.onnx")
    export(step_spec(cfg), tmp)
    model = wrap_in_loop(onnx.load(str(tmp)), licence)
    tmp.unlink()
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


assert OPSET >= 17
