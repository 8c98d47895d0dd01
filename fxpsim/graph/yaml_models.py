"""Models written as YAML: the IR written down, one node per list entry.

Format::

    name: resnet20                 # optional; defaults to the file name
    description: free text         # optional
    input: {shape: [3, 32, 32]}    # (C, H, W) of one sample, batch excluded
    num_classes: 10
    nodes:
      - {name: conv1, op: conv2d, attrs: {out_channels: 16, kernel: 3, padding: 1}}
      - {name: bn1, op: batchnorm}
      - {name: add1, op: add, inputs: [bn2, relu1]}
      - {name: fc, op: linear, attrs: {out_features: num_classes}}

Node keys: ``name``, ``op`` (one of :data:`fxpsim.graph.build.OPS` except ``input``),
``inputs`` (a name or a list; default: the previous node, the input for the first),
``attrs`` (per op; ``kernel``/``stride``/``padding`` take an integer or ``[h, w]``) and
``formats`` (``{w_bits, a_bits, g_bits}`` bit-width overrides for this node).
Attributes: conv2d ``out_channels, kernel, stride=1, padding=0, groups=1, bias=false``;
linear ``out_features, bias=true``; maxpool/avgpool ``kernel, stride=kernel, padding=0``;
batchnorm ``eps=1e-5, momentum=0.1``; relu, relu6, global_avgpool, add, flatten: none.
Any attribute written as the string ``num_classes`` takes the model's class count.

The last node must output ``(num_classes,)``. Errors name the file and key path
(``models/x.yaml: nodes[3].attrs.kernel: ...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from fxpsim.errors import ConfigError
from fxpsim.graph.build import NodeSpec, adapt_input, build_graph
from fxpsim.graph.ir import Graph, OperandFormats

_TOP_KEYS = ("name", "description", "input", "num_classes", "nodes")
_NODE_KEYS = ("name", "op", "inputs", "attrs", "formats")


def _formats(source: str, key: str, v: Any) -> OperandFormats:
    if not isinstance(v, dict):
        raise ConfigError(source, key, f"expected a mapping of w_bits/a_bits/g_bits, got {v!r}")
    out: dict[str, int | Literal["float"]] = {}
    for k, bits in v.items():
        if k not in ("w_bits", "a_bits", "g_bits"):
            raise ConfigError(source, f"{key}.{k}", "unknown format (allowed: w_bits, a_bits, "
                              "g_bits)")
        # the ranges training accepts: weights 1..16 (1 = binary), activations/gradients 2..16
        lo = 1 if k == "w_bits" else 2
        if bits != "float" and (isinstance(bits, bool) or not isinstance(bits, int)
                                or not lo <= bits <= 16):
            raise ConfigError(source, f"{key}.{k}",
                              f"expected bits in {lo}..16 or float, got {bits!r}")
        out[k] = bits
    return OperandFormats(**out)


def _node_spec(source: str, i: int, raw: Any, num_classes: int) -> NodeSpec:
    key = f"nodes[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(source, key, f"expected a mapping with name and op, got {raw!r}")
    for k in raw:
        if k not in _NODE_KEYS:
            raise ConfigError(source, f"{key}.{k}", f"unknown key (allowed: "
                              f"{', '.join(_NODE_KEYS)}; attributes go under 'attrs')")
    for k in ("name", "op"):
        if not isinstance(raw.get(k), str):
            raise ConfigError(source, f"{key}.{k}", f"expected a string, got {raw.get(k)!r}")
    inputs = raw.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if inputs is not None and (not isinstance(inputs, list) or
                               not all(isinstance(x, str) for x in inputs)):
        raise ConfigError(source, f"{key}.inputs", f"expected a node name or a list of names, "
                          f"got {inputs!r}")
    attrs = raw.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise ConfigError(source, f"{key}.attrs", f"expected a mapping, got {attrs!r}")
    attrs = {k: (num_classes if v == "num_classes" else v) for k, v in attrs.items()}
    fmts = _formats(source, f"{key}.formats", raw["formats"]) if "formats" in raw else \
        OperandFormats()
    return NodeSpec(name=raw["name"], op=raw["op"],
                    inputs=None if inputs is None else tuple(inputs),
                    attrs=attrs, formats=fmts, key=key)


def graph_from_dict(
    doc: Any,
    source: str,
    *,
    default_name: str = "model",
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Graph:
    """Build a :class:`Graph` from a parsed YAML document (see the module docstring).

    ``input_shape`` / ``num_classes`` override the file's values; a spatial size smaller
    than the file's is handled by :func:`fxpsim.graph.build.adapt_input` (``pad_to``).
    """
    if not isinstance(doc, dict):
        raise ConfigError(source, "", "expected a mapping with input, num_classes and nodes")
    for k in doc:
        if k not in _TOP_KEYS:
            raise ConfigError(source, str(k), f"unknown key (allowed: {', '.join(_TOP_KEYS)})")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(source, "name", f"expected a string, got {name!r}")
    inp = doc.get("input")
    if not isinstance(inp, dict) or set(inp) != {"shape"}:
        raise ConfigError(source, "input", f"expected {{shape: [C, H, W]}}, got {inp!r}")
    native = inp["shape"]
    if not isinstance(native, list) or len(native) not in (1, 3) or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in native):
        raise ConfigError(source, "input.shape", f"expected [C, H, W] or [F] of positive "
                          f"integers, got {native!r}")
    ncls = doc.get("num_classes")
    if isinstance(ncls, bool) or not isinstance(ncls, int) or ncls < 1:
        raise ConfigError(source, "num_classes", f"expected a positive integer, got {ncls!r}")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(source, "num_classes", f"expected a positive integer, got "
                              f"{num_classes!r}")
        ncls = num_classes
    nodes = doc.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ConfigError(source, "nodes", "expected a non-empty list of nodes")
    shape, pad_to = adapt_input(native, input_shape, source)
    specs = [_node_spec(source, i, raw, ncls) for i, raw in enumerate(nodes)]
    graph = build_graph(name, shape, specs, ncls, source, pad_to=pad_to)
    last = graph.nodes[-1]
    if last.shape != (ncls,):
        raise ConfigError(source, f"nodes[{len(nodes) - 1}]", f"the last node must output "
                          f"(num_classes,) = ({ncls},), got {last.shape} (write "
                          "out_features: num_classes)")
    return graph


def load_yaml_model(
    path: str | Path,
    *,
    source: str | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Graph:
    """Read a model YAML file (see the module docstring); errors name ``source`` (default:
    the path as given)."""
    import yaml  # pyyaml is light, but keep `import fxpsim.graph` free of it

    p = Path(path)
    src = source or str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(src, "", f"cannot read model file: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(src, "", f"invalid YAML: {e}") from None
    return graph_from_dict(doc, src, default_name=p.stem, input_shape=input_shape,
                           num_classes=num_classes)
