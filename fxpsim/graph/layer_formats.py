"""Per-layer formats from the command line (``formats.conv1=float``, ``formats.fc.w=4``):
a copy of the graph whose nodes carry the overrides, so the time plane and the training
plane read the same per-node formats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fxpsim.errors import ConfigError
from fxpsim.graph.ir import Graph


def float_ends(graph: Graph) -> list[tuple[str, str, int | str]]:
    """Formats keeping the first and the last conv2d/linear layer in float (weights,
    activations, gradients), as the LBT authors run ResNet-20 (run option ``float_ends``)."""
    gemms = [n.name for n in graph.nodes if n.is_gemm]
    ends = dict.fromkeys(gemms[:1] + gemms[-1:])
    return [(layer, kind, "float") for layer in ends for kind in ("w", "a", "g")]


def with_layer_formats(graph: Graph, formats: Sequence[tuple[str, str, int | str]],
                       source: str = "command line") -> Graph:
    """``graph`` with each ``(layer, kind, bits | "float")`` applied to that node's
    :class:`~fxpsim.graph.ir.OperandFormats` (kind ``w``/``a``/``g``). A name that is not a
    conv2d/linear node of the graph is a ConfigError naming the key."""
    if not formats:
        return graph
    gemms = {n.name for n in graph.nodes if n.is_gemm}
    per_node: dict[str, dict[str, int | str]] = {}
    for layer, kind, value in formats:
        if layer not in gemms:
            raise ConfigError(source, f"formats.{layer}",
                              f"no conv2d/linear layer {layer!r} in model {graph.name} "
                              f"(layers: {', '.join(sorted(gemms))})")
        per_node.setdefault(layer, {})[f"{kind}_bits"] = value
    nodes = tuple(replace(n, formats=replace(n.formats, **per_node[n.name]))  # type: ignore[arg-type]
                  if n.name in per_node else n for n in graph.nodes)
    return replace(graph, nodes=nodes)
