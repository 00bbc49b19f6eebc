"""The two pipelines stay apart: decoder/ never imports encoder/, encoder/ never imports decoder/, and the
formats they share (codec/) import neither.

Every .py file is parsed with ``ast``; every import anywhere in it (module level or inside a function) is
resolved to absolute module names: ``import tgvc_rt.encoder.x``, ``from tgvc_rt.encoder import x``,
``from tgvc_rt import encoder``, the relative forms (``from ..encoder.x import y``, ``from .. import encoder``)
and ``importlib.import_module("tgvc_rt.encoder.x")`` / ``__import__`` with a literal name.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "runtime" / "tgvc_rt"
FORBIDDEN = {  # package -> the packages its modules must not import
    "decoder": ("encoder",),
    "encoder": ("decoder",),
    "codec": ("encoder", "decoder"),
}


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the code of module ``module`` (dotted;
    ``is_package``: an ``__init__.py``). ``from a import b`` gives ``a`` and ``a.b`` (b may be a module)."""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value))
    return out


def _violations(source: str, module: str, forbidden: tuple[str, ...], is_package: bool = False) -> list[str]:
    banned = tuple(f"tgvc_rt.{name}" for name in forbidden)
    return [f"line {line}: {name}" for line, name in imported_modules(source, module, is_package)
            if any(name == b or name.startswith(b + ".") for b in banned)]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_pipelines_do_not_import_each_other(folder):
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files, f"no modules found under {PACKAGE / folder}"
    bad = []
    for path in files:
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        is_package = rel.name == "__init__"
        module = ".".join(rel.parts[:-1] if is_package else rel.parts)
        bad += [f"{path.relative_to(PACKAGE.parent)} {v}"
                for v in _violations(path.read_text(), module, FORBIDDEN[folder], is_package)]
    assert not bad, f"{folder}/ must not import {' or '.join(FORBIDDEN[folder])}/:\n" + "\n".join(bad)


@pytest.mark.parametrize("source", [
    "import tgvc_rt.encoder.pipeline",
    "import tgvc_rt.encoder as enc",
    "from tgvc_rt.encoder.trajectories import decode_tracks",
    "from tgvc_rt import encoder",
    "from tgvc_rt import bitstream, encoder",
    "from ..encoder.keyframe_rate import encode_keyframes",
    "from ..encoder import ratecontrol",
    "from .. import encoder",
    "def f():\n    from ..encoder import pipeline\n    return pipeline",
    "import importlib\nmod = importlib.import_module('tgvc_rt.encoder.pipeline')",
    "mod = __import__('tgvc_rt.encoder')",
])
def test_checker_catches(source):
    assert _violations(source, "tgvc_rt.decoder.pipeline", ("encoder",))


@pytest.mark.parametrize("source", [
    "from ..codec.trajectories import decode_tracks",
    "from .. import codec",
    "from . import warp",
    "from .warp import interpolate_group",
    "import tgvc_rt.encoders_elsewhere",
    "x = 'tgvc_rt.encoder.pipeline'",
])
def test_checker_spares(source):
    assert not _violations(source, "tgvc_rt.decoder.pipeline", ("encoder",))


def test_checker_resolves_a_package_init():
    """In ``tgvc_rt/decoder/__init__.py`` one dot is ``tgvc_rt.decoder`` itself, two dots ``tgvc_rt``."""
    assert _violations("from ..encoder import x", "tgvc_rt.decoder", ("encoder",), is_package=True)
    assert not _violations("from .encoder import x", "tgvc_rt.decoder", ("encoder",), is_package=True)
