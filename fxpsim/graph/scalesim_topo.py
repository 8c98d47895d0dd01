"""SCALE-Sim topology CSV files -> a GEMM-only :class:`~fxpsim.graph.ir.Graph`.

Two formats, told apart by the header:

* convolution (SCALE-Sim's default)::

      Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
      Conv1, 34, 34, 3, 3, 3, 64, 1,

  SCALE-Sim's IFMAP sizes already include the padding, so every conv has ``padding=0``; the
  output is ``(IFMAP - Filter) // Stride + 1`` per dimension. An optional ninth column gives
  a separate width stride (``Strides`` is then the height stride).
* GEMM (``Layer, M, N, K``): ``C[M, N] = A[M, K] @ B[K, N]``. The IR's ``linear`` computes one
  row per sample, so a GEMM row becomes the exactly equivalent 1x1 conv: input ``(K, M, 1)``,
  ``N`` filters, output ``(N, M, 1)``, ``M*N*K`` MACs (the mapping SCALE-Sim itself uses).

Each row is an independent layer: it gets its own ``input`` node named ``<layer>.input``
followed by a conv2d node named ``<layer>``. The graph has ``workload_only=True`` and
``num_classes=0``: the time plane can schedule it, training cannot run it. Trailing commas
and whitespace are ignored. Errors name the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fxpsim.errors import ConfigError, clip
from fxpsim.graph.build import NodeSpec, build_graph
from fxpsim.graph.ir import Graph

CONV_COLUMNS: tuple[str, ...] = (
    "Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width",
    "Channels", "Num Filter", "Strides",
)
GEMM_COLUMNS: tuple[str, ...] = ("Layer", "M", "N", "K")


def _cells(row: list[str]) -> list[str]:
    cells = [c.strip() for c in row]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def parse_scalesim_topology(text: str, source: str, *, name: str = "topology") -> Graph:
    """Parse the CSV ``text`` (see the module docstring); ``source`` names it in errors."""
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [(reader.line_num, _cells(r)) for r in reader]
    except csv.Error as exc:  # a field over the csv module's limit, a NUL byte, ...
        raise ConfigError(source, f"line {reader.line_num}", f"malformed CSV: {exc}") from None
    rows = [(ln, r) for ln, r in rows if r]
    if not rows:
        raise ConfigError(source, "", "empty topology file")
    hdr_line, header = rows[0]
    hdr = [_norm(h) for h in header]
    if hdr[:4] == [_norm(c) for c in GEMM_COLUMNS]:
        columns, gemm = GEMM_COLUMNS, True
    elif hdr[:8] == [_norm(c) for c in CONV_COLUMNS]:
        columns, gemm = CONV_COLUMNS, False
    else:
        raise ConfigError(source, f"line {hdr_line}", "header must start with '"
                          + ", ".join(CONV_COLUMNS) + "' or '" + ", ".join(GEMM_COLUMNS) + "'")
    n_max = len(columns) + (0 if gemm else 1)
    specs: list[NodeSpec] = []
    seen: set[str] = set()
    for line, cells in rows[1:]:
        where = f"line {line}"
        if not len(columns) <= len(cells) <= n_max:
            raise ConfigError(source, where, f"expected {len(columns)} columns ("
                              f"{', '.join(columns)}), got {len(cells)}")
        layer = cells[0]
        if not layer or layer in seen:
            raise ConfigError(source, f"{where}, column '{columns[0]}'",
                              f"layer names must be non-empty and unique, got {clip(repr(layer), 60)}")
        seen.add(layer)
        vals: list[int] = []
        for j, cell in enumerate(cells[1:], 1):
            col = columns[j] if j < len(columns) else "Stride Width"
            try:
                v = int(cell)
            except ValueError:
                v = 0
            if v < 1:
                raise ConfigError(source, f"{where}, column '{col}'",
                                  f"expected a positive integer, got {clip(repr(cell), 60)}")
            vals.append(v)
        key = f"{where} ({layer})"
        attrs: dict[str, object]
        if gemm:
            m, n, k = vals
            shape, attrs = [k, m, 1], {"out_channels": n, "kernel": 1}
        else:
            ih, iw, fh, fw, c, nf, sh = vals[:7]
            sw = vals[7] if len(vals) == 8 else sh
            for f, i, col in ((fh, ih, "Filter Height"), (fw, iw, "Filter Width")):
                if f > i:
                    raise ConfigError(source, f"{where}, column '{col}'", f"filter {f} larger "
                                      f"than the IFMAP {i} (SCALE-Sim IFMAP sizes include padding)")
            shape = [c, ih, iw]
            attrs = {"out_channels": nf, "kernel": [fh, fw], "stride": [sh, sw]}
        specs.append(NodeSpec(f"{layer}.input", "input", attrs={"shape": shape}, key=key))
        specs.append(NodeSpec(layer, "conv2d", (f"{layer}.input",), attrs, key=key))
    if not specs:
        raise ConfigError(source, "", "the topology has no layers")
    return build_graph(name, None, specs, 0, source, workload_only=True)


def load_scalesim_topology(path: str | Path, *, source: str | None = None) -> Graph:
    """Read a SCALE-Sim topology CSV file; the graph is named after the file's stem."""
    p = Path(path)
    src = source or str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(src, "", f"cannot read topology file: {e.strerror}") from None
    return parse_scalesim_topology(text, src, name=p.stem)
