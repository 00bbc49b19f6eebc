"""A tiny, random-initialised model set built without torch (onnx.helper graphs), for tests.

``build_tiny_model_set(path)`` writes ``vae_encoder.onnx``, ``vae_decoder.onnx``, ``unet.onnx`` and
``manifest.json`` following docs/models.md (names, shapes, dynamic axes). The VAE is linear:
SpaceToDepth(8) + 1x1 Conv (192 -> 32, orthonormal low-frequency DCT rows, randomly mixed) and its
transpose 1x1 Conv + DepthToSpace(8) + Clip, so decode(encode(x)) is a per-8x8-block low-pass
projection of the image. The UNet mixes sample and cond with
two convolutions over the reshaped ``[B*F, C, h, w]`` tensor plus a timestep term.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
LATENT = 32


def _model(nodes, inputs, outputs, inits, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tgvc-rt tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _vae_weights(rng):
    """Orthonormal encoder rows spanning low-frequency 8x8 DCT patterns of each colour, randomly
    mixed across the 32 channels; the decoder is the transpose (a blocky but faithful autoencoder)."""
    freqs = sorted(((u, v) for u in range(8) for v in range(8)), key=lambda p: (p[0] + p[1], p))
    y = np.arange(8)
    basis = []
    for (u, v) in freqs:
        cu = np.cos(np.pi * (2 * y + 1) * u / 16) * (np.sqrt(1 / 8) if u == 0 else np.sqrt(2 / 8))
        cv = np.cos(np.pi * (2 * y + 1) * v / 16) * (np.sqrt(1 / 8) if v == 0 else np.sqrt(2 / 8))
        for c in range(3):
            row = np.zeros((8, 8, 3))
            row[:, :, c] = np.outer(cu, cv)
            basis.append(row.reshape(192))  # SpaceToDepth channel = (by * 8 + bx) * 3 + c
            if len(basis) == LATENT:
                break
        if len(basis) == LATENT:
            break
    q, _ = np.linalg.qr(rng.standard_normal((LATENT, LATENT)))
    enc = (q @ np.stack(basis)).astype(np.float32)  # [32, 192], orthonormal rows
    return enc, enc.T.copy()


def vae_encoder_model(enc):
    f32 = TensorProto.FLOAT
    nodes = [helper.make_node("SpaceToDepth", ["image"], ["s2d"], blocksize=8),
             helper.make_node("Conv", ["s2d", "W"], ["latent"])]
    return _model(nodes, [helper.make_tensor_value_info("image", f32, ["B", 3, "H", "W"])],
                  [helper.make_tensor_value_info("latent", f32, ["B", LATENT, "h", "w"])],
                  [numpy_helper.from_array(enc.reshape(LATENT, 192, 1, 1), "W")], "vae_encoder")


def vae_decoder_model(dec):
    f32 = TensorProto.FLOAT
    nodes = [helper.make_node("Conv", ["latent", "W"], ["blocks"]),
             helper.make_node("DepthToSpace", ["blocks"], ["d2s"], blocksize=8, mode="DCR"),
             helper.make_node("Clip", ["d2s", "lo", "hi"], ["image"])]
    inits = [numpy_helper.from_array(dec.reshape(192, LATENT, 1, 1), "W"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(1.0, np.float32), "hi")]
    return _model(nodes, [helper.make_tensor_value_info("latent", f32, ["B", LATENT, "h", "w"])],
                  [helper.make_tensor_value_info("image", f32, ["B", 3, "H", "W"])], inits, "vae_decoder")


def unet_model(rng, hidden: int = 16):
    f32 = TensorProto.FLOAT
    cin = LATENT + 65
    w1 = (rng.standard_normal((hidden, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(hidden)).astype(np.float32)
    w2 = (rng.standard_normal((LATENT, hidden, 1, 1)) / np.sqrt(hidden)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(b1, "B1"),
             numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(np.array([-1, LATENT], np.int64), "head_s"),
             numpy_helper.from_array(np.array([-1, 65], np.int64), "head_c"),
             numpy_helper.from_array(np.array([3], np.int64), "i3"),
             numpy_helper.from_array(np.array([5], np.int64), "i5"),
             numpy_helper.from_array(np.array([-1, 1, 1, 1, 1], np.int64), "tshape"),
             numpy_helper.from_array(np.array(0.002, np.float32), "tscale"),
             numpy_helper.from_array(np.array(0.05, np.float32), "tamp")]
    nodes = [
        helper.make_node("Shape", ["sample"], ["shp"]),
        helper.make_node("Slice", ["shp", "i3", "i5"], ["hw"]),
        helper.make_node("Concat", ["head_s", "hw"], ["shape_s"], axis=0),
        helper.make_node("Concat", ["head_c", "hw"], ["shape_c"], axis=0),
        helper.make_node("Reshape", ["sample", "shape_s"], ["s4"]),
        helper.make_node("Reshape", ["cond", "shape_c"], ["c4"]),
        helper.make_node("Concat", ["s4", "c4"], ["x"], axis=1),
        helper.make_node("Conv", ["x", "W1", "B1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["h1"], ["a1"]),
        helper.make_node("Conv", ["a1", "W2"], ["e4"]),
        helper.make_node("Reshape", ["e4", "shp"], ["e5"]),
        helper.make_node("Reshape", ["timestep", "tshape"], ["t5"]),
        helper.make_node("Mul", ["t5", "tscale"], ["ts"]),
        helper.make_node("Sin", ["ts"], ["tsin"]),
        helper.make_node("Mul", ["tsin", "tamp"], ["temb"]),
        helper.make_node("Add", ["e5", "temb"], ["eps"]),
    ]
    return _model(nodes,
                  [helper.make_tensor_value_info("sample", f32, ["B", "F", LATENT, "h", "w"]),
                   helper.make_tensor_value_info("timestep", f32, ["B"]),
                   helper.make_tensor_value_info("cond", f32, ["B", "F", 65, "h", "w"])],
                  [helper.make_tensor_value_info("eps", f32, ["B", "F", LATENT, "h", "w"])], inits, "unet")


def build_tiny_model_set(path, seed: int = 0, name: str = "tiny") -> Path:
    """Write a tiny random model set (3 ONNX files + manifest.json) into ``path``; returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    enc, dec = _vae_weights(rng)
    models = {"vae_encoder": (vae_encoder_model(enc), {"image": ["B", 3, "H", "W"]}, {"latent": ["B", LATENT, "h", "w"]}),
              "vae_decoder": (vae_decoder_model(dec), {"latent": ["B", LATENT, "h", "w"]}, {"image": ["B", 3, "H", "W"]}),
              "unet": (unet_model(rng), {"sample": ["B", "F", LATENT, "h", "w"], "timestep": ["B"],
                                         "cond": ["B", "F", 65, "h", "w"]}, {"eps": ["B", "F", LATENT, "h", "w"]})}
    entries = {}
    for key, (model, ins, outs) in models.items():
        data = model.SerializeToString()
        (path / f"{key}.onnx").write_bytes(data)
        entries[key] = {"file": f"{key}.onnx", "sha256": hashlib.sha256(data).hexdigest(), "precision": "fp32",
                        "inputs": ins, "outputs": outs, "licence": "test fixture (random weights)"}
    # latent statistics of mid-grey-ish images: mean of the encoder on 0.5, unit-ish spread
    mean = (enc.sum(axis=1) * 0.5).astype(float)
    std = np.full(LATENT, 0.5)
    manifest = {"format": 1, "name": name, "latent_channels": LATENT,
                "latent_mean": [round(float(m), 6) for m in mean], "latent_std": [float(s) for s in std],
                "schedule": {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                             "num_train_timesteps": 1000, "prediction": "epsilon"},
                "models": entries, "training": {"command": "tests/onnx_fixtures.py (random)", "val_loss": 0.0}}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return path
