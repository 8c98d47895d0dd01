"""Shape inference and validation: a list of node specs -> a :class:`~fxpsim.graph.ir.Graph`.

Every front-end (YAML, torch.fx, SCALE-Sim CSV) produces :class:`NodeSpec` s and calls
:func:`build_graph`, so all of them get the same checks and the same error messages. A spec's
``key`` is the key path used in errors (``nodes[3]``); attribute errors append
``.attrs.<name>``.

Shape rules (batch excluded; ``floor`` division as in PyTorch with ``ceil_mode=False``):

* conv2d / maxpool / avgpool: ``out = (in + 2*pad - kernel) // stride + 1`` per spatial dim;
  the kernel must fit the padded input.
* global_avgpool: ``(C, H, W) -> (C, 1, 1)`` (like ``AdaptiveAvgPool2d(1)``).
* flatten: any shape -> ``(prod(shape),)``; linear needs a 1-D input.
* batchnorm, relu, relu6: shape unchanged (batchnorm on ``(C, H, W)`` or ``(F,)``).
* add: two or more inputs of identical shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fxpsim.errors import ConfigError
from fxpsim.graph.ir import (
    Attrs,
    BatchNormAttrs,
    Conv2dAttrs,
    Graph,
    InputAttrs,
    LinearAttrs,
    NoAttrs,
    Node,
    OperandFormats,
    PoolAttrs,
)

OPS: tuple[str, ...] = (
    "input", "conv2d", "linear", "batchnorm", "relu", "relu6",
    "maxpool", "avgpool", "global_avgpool", "add", "flatten",
)

_REQ = object()  # marks a required attribute

# allowed attribute keys per op (with their defaults, applied when the key is absent)
_ATTR_KEYS: dict[str, dict[str, Any]] = {
    "input": {"shape": _REQ},
    "conv2d": {"out_channels": _REQ, "kernel": _REQ, "stride": 1, "padding": 0, "groups": 1,
               "bias": False},
    "linear": {"out_features": _REQ, "bias": True},
    "batchnorm": {"eps": 1e-5, "momentum": 0.1},
    "maxpool": {"kernel": _REQ, "stride": None, "padding": 0},
    "avgpool": {"kernel": _REQ, "stride": None, "padding": 0},
}


@dataclass(frozen=True)
class NodeSpec:
    """One node as written by a front-end, before shape inference.

    ``inputs=None`` means "the previous node". ``attrs`` holds plain values (ints, pairs,
    bools, floats) checked by :func:`build_graph`. ``key`` is the key path for errors.
    """

    name: str
    op: str
    inputs: tuple[str, ...] | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    formats: OperandFormats = field(default_factory=OperandFormats)
    key: str = ""


class _Ctx:
    """Raises ConfigErrors located at one spec."""

    def __init__(self, source: str, key: str) -> None:
        self.source, self.key = source, key

    def err(self, sub: str, message: str) -> ConfigError:
        path = f"{self.key}.{sub}" if sub and self.key else (sub or self.key)
        return ConfigError(self.source, path, message)


def _int(ctx: _Ctx, key: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.err(f"attrs.{key}", f"expected an integer >= {lo}, got {v!r}")
    if v < lo:
        raise ctx.err(f"attrs.{key}", f"expected an integer >= {lo}, got {v}")
    return v


def _pair(ctx: _Ctx, key: str, v: Any, lo: int) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ctx.err(f"attrs.{key}", f"expected an integer or [h, w], got {list(v)!r}")
        return (_int(ctx, key, v[0], lo), _int(ctx, key, v[1], lo))
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.err(f"attrs.{key}", f"expected an integer or [h, w], got {v!r}")
    x = _int(ctx, key, v, lo)
    return (x, x)


def _bool(ctx: _Ctx, key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ctx.err(f"attrs.{key}", f"expected true or false, got {v!r}")
    return v


def _float(ctx: _Ctx, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ctx.err(f"attrs.{key}", f"expected a non-negative number, got {v!r}")
    return float(v)


def _check_keys(ctx: _Ctx, op: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    allowed = _ATTR_KEYS.get(op, {})
    for k in attrs:
        if k not in allowed:
            names = ", ".join(allowed) or "none"
            raise ctx.err(f"attrs.{k}", f"unknown attribute for op '{op}' (allowed: {names})")
    out = dict(allowed)
    out.update(attrs)
    for k, v in out.items():
        if v is _REQ:
            raise ctx.err(f"attrs.{k}", f"required for op '{op}'")
    return out


def _window(ctx: _Ctx, in_shape: tuple[int, ...], kernel: tuple[int, int],
            stride: tuple[int, int], padding: tuple[int, int], what: str) -> tuple[int, int]:
    if len(in_shape) != 3:
        raise ctx.err("inputs", f"{what} needs a (C, H, W) input, got shape {in_shape}")
    out = []
    for d in range(2):
        size = in_shape[1 + d] + 2 * padding[d]
        if kernel[d] > size:
            raise ctx.err("attrs.kernel", f"kernel {kernel} larger than the padded input "
                          f"{in_shape[1] + 2 * padding[0]}x{in_shape[2] + 2 * padding[1]}")
        out.append((size - kernel[d]) // stride[d] + 1)
    return (out[0], out[1])


def _infer(ctx: _Ctx, op: str, raw: Mapping[str, Any],
           in_shapes: list[tuple[int, ...]]) -> tuple[Attrs, tuple[int, ...]]:
    """Attributes and output shape of one non-input node."""
    a = _check_keys(ctx, op, raw)
    n_in = len(in_shapes)
    if op == "add":
        if n_in < 2:
            raise ctx.err("inputs", f"add needs at least 2 inputs, got {n_in}")
        if any(s != in_shapes[0] for s in in_shapes[1:]):
            raise ctx.err("inputs", f"add: input shapes differ: {in_shapes}")
        return NoAttrs(), in_shapes[0]
    if n_in != 1:
        raise ctx.err("inputs", f"op '{op}' takes exactly 1 input, got {n_in}")
    x = in_shapes[0]
    if op == "conv2d":
        attrs = Conv2dAttrs(
            out_channels=_int(ctx, "out_channels", a["out_channels"], 1),
            kernel=_pair(ctx, "kernel", a["kernel"], 1),
            stride=_pair(ctx, "stride", a["stride"], 1),
            padding=_pair(ctx, "padding", a["padding"], 0),
            groups=_int(ctx, "groups", a["groups"], 1),
            bias=_bool(ctx, "bias", a["bias"]),
        )
        oh, ow = _window(ctx, x, attrs.kernel, attrs.stride, attrs.padding, "conv2d")
        if x[0] % attrs.groups or attrs.out_channels % attrs.groups:
            raise ctx.err("attrs.groups", f"groups={attrs.groups} must divide in_channels="
                          f"{x[0]} and out_channels={attrs.out_channels}")
        return attrs, (attrs.out_channels, oh, ow)
    if op == "linear":
        if len(x) != 1:
            raise ctx.err("inputs", f"linear needs a 1-D input (add a flatten), got {x}")
        return LinearAttrs(out_features=_int(ctx, "out_features", a["out_features"], 1),
                           bias=_bool(ctx, "bias", a["bias"])), (a["out_features"],)
    if op in ("maxpool", "avgpool"):
        kernel = _pair(ctx, "kernel", a["kernel"], 1)
        stride = kernel if a["stride"] is None else _pair(ctx, "stride", a["stride"], 1)
        pool = PoolAttrs(kernel=kernel, stride=stride,
                         padding=_pair(ctx, "padding", a["padding"], 0))
        if any(2 * p > k for p, k in zip(pool.padding, kernel, strict=True)):
            raise ctx.err("attrs.padding", "padding must be at most half the kernel")
        oh, ow = _window(ctx, x, pool.kernel, pool.stride, pool.padding, op)
        return pool, (x[0], oh, ow)
    if op == "global_avgpool":
        if len(x) != 3:
            raise ctx.err("inputs", f"global_avgpool needs a (C, H, W) input, got {x}")
        return NoAttrs(), (x[0], 1, 1)
    if op == "batchnorm":
        return BatchNormAttrs(eps=_float(ctx, "eps", a["eps"]),
                              momentum=_float(ctx, "momentum", a["momentum"])), x
    if op in ("relu", "relu6"):
        return NoAttrs(), x
    if op == "flatten":
        n = 1
        for d in x:
            n *= d
        return NoAttrs(), (n,)
    raise AssertionError(op)


def _shape(ctx: _Ctx, v: Any, key: str) -> tuple[int, ...]:
    ok = isinstance(v, (list, tuple)) and len(v) in (1, 3)
    if not ok or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in v):
        raise ctx.err(key, f"expected [C, H, W] or [F] of positive integers, got {v!r}")
    return tuple(v)


def build_graph(
    name: str,
    input_shape: Sequence[int] | None,
    node_specs: Sequence[NodeSpec],
    num_classes: int,
    source: str,
    *,
    pad_to: tuple[int, int] | None = None,
    workload_only: bool = False,
) -> Graph:
    """Infer every node's ``shape``/``in_shape``, validate, and return the :class:`Graph`.

    If ``input_shape`` is given, an ``input`` node named ``"input"`` (with
    ``InputAttrs(pad_to)``) is prepended and the specs must not contain ``input`` nodes.
    With ``workload_only=True`` (SCALE-Sim topologies) ``input_shape`` is ``None`` and the
    specs carry their own ``input`` nodes (``attrs: {shape: [...]}``), several allowed.
    Raises :class:`ConfigError` (source, ``<spec.key>.<field>``, message) on any bad spec.
    """
    nodes: list[Node] = []
    shapes: dict[str, tuple[int, ...]] = {}
    if input_shape is not None:
        ctx = _Ctx(source, "input")
        shp = _shape(ctx, list(input_shape), "shape")
        nodes.append(Node("input", "input", (), InputAttrs(pad_to=pad_to), shp))
        shapes["input"] = shp
    elif not node_specs or node_specs[0].op != "input":
        raise ConfigError(source, "input", "the model has no input shape")
    for i, spec in enumerate(node_specs):
        ctx = _Ctx(source, spec.key or f"nodes[{i}]")
        if not isinstance(spec.name, str) or not spec.name:
            raise ctx.err("name", f"expected a non-empty string, got {spec.name!r}")
        if spec.name in shapes:
            raise ctx.err("name", f"duplicate node name '{spec.name}'")
        if spec.op not in OPS:
            raise ctx.err("op", f"unknown op '{spec.op}' (known: {', '.join(OPS)})")
        if spec.op == "input":
            if not workload_only or input_shape is not None:
                raise ctx.err("op", "only the model's single input may be an 'input' node "
                              "(give the shape under 'input:')")
            a = _check_keys(ctx, "input", spec.attrs)
            shp = _shape(ctx, a["shape"], "attrs.shape")
            nodes.append(Node(spec.name, "input", (), InputAttrs(), shp))
            shapes[spec.name] = shp
            continue
        inputs = spec.inputs if spec.inputs is not None else (nodes[-1].name,)
        for j, ref in enumerate(inputs):
            if ref not in shapes:
                raise ctx.err(f"inputs[{j}]", f"unknown input '{ref}' (inputs must name an "
                              "earlier node)")
        in_shapes = [shapes[r] for r in inputs]
        attrs, shp = _infer(ctx, spec.op, spec.attrs, in_shapes)
        nodes.append(Node(spec.name, spec.op, tuple(inputs), attrs, shp,  # type: ignore[arg-type]
                          in_shape=in_shapes[0], formats=spec.formats))
        shapes[spec.name] = shp
    return Graph(name=name, nodes=tuple(nodes), num_classes=num_classes, source=source,
                 workload_only=workload_only)


def adapt_input(
    native: Sequence[int], requested: Sequence[int] | None, source: str
) -> tuple[tuple[int, ...], tuple[int, int] | None]:
    """Input shape to build a model at, and the ``pad_to`` to record, for a requested shape.

    ``requested=None`` keeps ``native``. Otherwise the channels (and for vector inputs the
    features) come from ``requested``; a spatial size not smaller than the native one is
    used as is (shape inference then decides whether it is valid), while a smaller one keeps
    the native size per dimension and returns ``pad_to=(H, W)`` of the data, which the data
    plane zero-pads (see :class:`~fxpsim.graph.ir.InputAttrs`).
    """
    nat = tuple(native)
    if requested is None:
        return nat, None
    req = tuple(requested)
    if len(req) != len(nat) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                   for d in req):
        raise ConfigError(source, "input_shape", f"expected {len(nat)} positive integers "
                          f"like {list(nat)}, got {list(req)}")
    if len(req) != 3:
        return req, None
    h, w = max(req[1], nat[1]), max(req[2], nat[2])
    pad = None if (h, w) == req[1:] else (req[1], req[2])
    return (req[0], h, w), pad
