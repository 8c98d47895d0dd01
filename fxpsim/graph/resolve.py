"""``model=...`` -> :class:`~fxpsim.graph.ir.Graph`, and the list of built-in models.

A reference is, in this order:

* ``path/to/file.py:ClassName`` - a torch module traced with torch.fx (torch is imported
  only then);
* a path ending in ``.yaml``/``.yml`` (a model file) or ``.csv`` (a SCALE-Sim topology);
* a built-in name ``<name>``: ``./models/<name>.yaml`` (or ``.csv``) under the current
  directory first, so users can edit or add models there, then the copy packaged with
  fxpsim (``fxpsim.builtin_models``).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxpsim.errors import ConfigError
from fxpsim.graph.ir import Graph

_SUFFIXES = (".yaml", ".yml", ".csv")


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``fxpsim list``: a built-in model's name and size."""

    name: str
    input_shape: tuple[int, ...]
    macs: int  # forward MACs per sample
    params: int
    source: str  # the file it was read from


def _builtin_dirs() -> list[Any]:
    """Folders searched for built-in names: ./models, then the packaged models."""
    dirs: list[Any] = [Path("models")]
    try:
        dirs.append(importlib.resources.files("fxpsim.builtin_models"))
    except ModuleNotFoundError:  # a source checkout that is not installed
        pass
    return dirs


def _builtin_files() -> dict[str, Any]:
    """name -> file (Path or Traversable); earlier folders win."""
    found: dict[str, Any] = {}
    for d in _builtin_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir(), key=lambda f: f.name):
            stem, dot, ext = f.name.rpartition(".")
            if dot and "." + ext in _SUFFIXES and f.is_file():
                found.setdefault(stem, f)
    return found


def _load_file(f: Any, source: str, input_shape: Sequence[int] | None,
               num_classes: int | None) -> Graph:
    # the hardened readers of hwconfigs: size limit, UTF-8, no YAML aliases or duplicate keys,
    # every failure a one-line ConfigError naming the file
    from fxpsim.config.load import parse_yaml, read_text

    text = read_text(source, f)
    if f.name.endswith(".csv"):
        from fxpsim.graph.scalesim_topo import parse_scalesim_topology

        if input_shape is not None or num_classes is not None:
            raise ConfigError(source, "model", "a SCALE-Sim topology has fixed layer sizes: "
                              "input_shape/num_classes cannot be changed")
        return parse_scalesim_topology(text, source, name=f.name.rpartition(".")[0])
    from fxpsim.graph.yaml_models import graph_from_dict

    try:
        doc = parse_yaml(text, source)
    except ConfigError as e:
        if not (e.key_path and e.message.startswith("invalid YAML: ")):
            raise
        # model errors read "<file>: invalid YAML at line L, column C: <problem>"
        raise ConfigError(source, "", f"invalid YAML at {e.key_path}: "
                          f"{e.message.removeprefix('invalid YAML: ')}") from None
    return graph_from_dict(doc, source, default_name=f.name.rpartition(".")[0],
                           input_shape=input_shape, num_classes=num_classes)


def load_model(
    ref: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    timeout_s: float | None = None,
) -> Graph:
    """Resolve ``ref`` (see the module docstring) and build its graph.

    ``input_shape`` (C, H, W) adapts the model to a dataset: channels follow it; a smaller
    H or W keeps the model's native size and records ``pad_to`` (the data is zero-padded, see
    :class:`~fxpsim.graph.ir.InputAttrs`); a larger one rebuilds the model at that size.
    ``num_classes`` replaces ``num_classes`` in YAML models (for a torch model it must match
    the model's output). ``timeout_s`` bounds each step of a ``file.py:Class`` model's user
    code (see :mod:`fxpsim.graph.user_code`). Raises ConfigError (unknown name: lists the built-in names).
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError("command line", "model", f"expected a model name or file, got {ref!r}")
    ref = ref.strip()
    path_part, colon, cls = ref.rpartition(":")
    if colon and path_part.endswith(".py"):
        from fxpsim.graph.fx_import import load_fx_model

        if not cls.isidentifier():
            raise ConfigError("command line", "model", f"expected file.py:ClassName, got {ref!r}")
        extra = {} if timeout_s is None else {"timeout_s": timeout_s}
        return load_fx_model(path_part, cls, source=ref, input_shape=input_shape,
                             num_classes=num_classes, **extra)
    if ref.endswith(".py"):
        raise ConfigError("command line", "model", f"{ref}: name the class as {ref}:ClassName")
    if ref.endswith(_SUFFIXES) or "/" in ref or "\\" in ref:
        p = Path(ref)
        if not p.is_file():
            raise ConfigError("command line", "model", f"no such model file: {ref}")
        return _load_file(p, ref, input_shape, num_classes)
    files = _builtin_files()
    if ref not in files:
        from fxpsim.suggest import did_you_mean

        names = ", ".join(sorted(files)) or "none found"
        raise ConfigError("command line", "model", f"unknown model '{ref}' (built-in: {names}; "
                          f"or give a .yaml/.csv path or file.py:ClassName)"
                          f"{did_you_mean(ref, files)}")
    f = files[ref]
    source = f"models/{f.name}" if isinstance(f, Path) else f"fxpsim.builtin_models/{f.name}"
    return _load_file(f, source, input_shape, num_classes)


def list_models() -> list[ModelInfo]:
    """Every built-in model (``./models`` then packaged), sorted by name, with its size."""
    out = []
    for name in sorted(_builtin_files()):
        g = load_model(name)
        out.append(ModelInfo(name=name, input_shape=g.input_shape, macs=g.macs,
                             params=g.params, source=g.source))
    return out
