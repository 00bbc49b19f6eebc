"""The TensorRT engine cache: one engine file per key, with an integrity sidecar beside it.

An engine is only valid for the exact ONNX file, TensorRT flavour and version, GPU architecture,
precision and profile shapes it was built for; ``EngineKey`` (in ``trt.py``) names the file after
all of them. What a name cannot say is whether the bytes behind it are whole: a build killed
half-way, a full disk or a copied cache can leave a truncated or damaged file. So every engine is
written with a sidecar ``<engine>.json`` holding the engine bytes' sha256 and size and the key's
fields, both written atomically (a temporary file, then ``os.replace``), engine first. A hit is a
file whose size and sha256 match its sidecar and whose sidecar names the expected key; anything
else (no sidecar, an unreadable one, other bytes) is a miss that says why and rebuilds. The check
needs no GPU; a GPU-side failure to deserialize verified bytes is handled by the runner, which asks
for one rebuild (``rebuild=True``).

The builder is a parameter: anything with ``flavour``, ``version`` and ``arch`` attributes that
maps ``(onnx_path, shapes, precision)`` to serialized engine bytes (``trt.TrtBuilder`` by default),
so tests can count builds with a fake one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import TgvcError

SIDECAR_FORMAT = 1
log = logging.getLogger(__name__)

Shapes = dict  # input name -> [min, opt, max] shapes


class EngineBuilder(Protocol):
    """What the cache needs of a builder: the target it builds for, and a build."""

    flavour: str  # "tensorrt_rtx" | "tensorrt" (or a fake's name)
    version: str
    arch: str  # "sm_XY" or "portable"

    def __call__(self, onnx_path: Path, shapes: Shapes, precision: str) -> bytes:
        """Serialized engine bytes for ``onnx_path`` at ``shapes`` and ``precision``."""


def sidecar_path(engine: Path) -> Path:
    """``<engine>.json``: the integrity record written beside ``engine``."""
    return engine.with_name(engine.name + ".json")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent builders do not collide
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_engine(path: Path, data: bytes, key_fields: dict) -> Path:
    """Store ``data`` at ``path`` and its sidecar (sha256, size, ``key_fields``), each atomically."""
    if not data:
        raise TgvcError(f"{path.name}: TensorRT returned an empty engine")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    record = {"format": SIDECAR_FORMAT, "engine": path.name, "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "key": key_fields}
    write_atomic(sidecar_path(path), json.dumps(record, indent=1, sort_keys=True).encode())
    return path


def verify_engine(path: Path, key_fields: dict | None = None) -> tuple[bytes | None, str]:
    """(engine bytes, "") when ``path`` is whole and matches its sidecar (and ``key_fields`` if
    given); (None, why not) otherwise. Never raises for a damaged cache entry."""
    if not path.is_file():
        return None, "not built yet"
    side = sidecar_path(path)
    try:
        record = json.loads(side.read_text())
        size, digest = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return None, f"no integrity record ({side.name})"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"unreadable integrity record {side.name} ({err})"
    if record.get("format") != SIDECAR_FORMAT:
        return None, f"integrity record of another format ({record.get('format')!r})"
    if key_fields is not None and record.get("key") != key_fields:
        return None, "integrity record names another engine key"
    try:
        actual = path.stat().st_size
        if actual != size:
            return None, f"engine is {actual} bytes, its record says {size} (truncated or replaced)"
        data = path.read_bytes()
    except OSError as err:
        return None, f"unreadable engine ({err})"
    if hashlib.sha256(data).hexdigest() != digest:
        return None, "engine bytes do not match their sha256 (damaged)"
    return data, ""


def cached_engine(out: Path, key_fields: dict, build: Callable[[], bytes], rebuild: bool = False,
                  report: Callable[[str], None] | None = None) -> tuple[Path, bytes]:
    """(path, verified bytes) of the engine at ``out``: the cached one when it verifies, else
    ``build()`` stored with a fresh sidecar. ``rebuild`` discards a cached engine that verifies but
    TensorRT could not load. ``report`` gets the one-line reason for every rebuild of an existing
    file (default: a logging warning)."""
    report = report or log.warning
    if rebuild:
        if out.is_file():
            report(f"{out.name}: rebuilding (TensorRT could not load the cached engine)")
    else:
        data, why = verify_engine(out, key_fields)
        if data is not None:
            return out, data
        if out.is_file() or sidecar_path(out).is_file():
            report(f"{out.name}: rebuilding ({why})")
    data = bytes(build())
    write_engine(out, data, key_fields)
    return out, data
