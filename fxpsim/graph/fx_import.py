"""A user's ``torch.nn.Module`` (``model=path/to/file.py:ClassName``) -> IR via torch.fx.

The file is imported under a private module name (``sys.path`` is not touched), the class is
instantiated with no arguments and traced with ``torch.fx.symbolic_trace``. Supported:

* modules: ``Conv2d`` (dilation 1, zero padding), ``Linear``, ``BatchNorm1d/2d`` (affine),
  ``ReLU``, ``ReLU6``, ``MaxPool2d``/``AvgPool2d`` (no ceil_mode, dilation 1),
  ``AdaptiveAvgPool2d`` (output 1, or equal to its input: then it is the identity),
  ``Flatten`` (start_dim 1), ``Identity`` and ``Dropout*`` (dropped: no arithmetic);
* functions: ``operator.add/iadd``, ``torch.add`` (tensor + tensor), ``torch.flatten(x, 1)``,
  ``F.relu``/``torch.relu``, ``F.relu6``, ``F.adaptive_avg_pool2d(x, 1)``, ``F.max_pool2d``/
  ``F.avg_pool2d`` with constant sizes;
* methods: ``.relu()``, ``.add()``, ``.flatten(1)``, ``.view/.reshape(N, -1)`` (a flatten; the
  ``x.size(0)`` feeding it is bookkeeping), ``.contiguous()``.

Anything else raises :class:`~fxpsim.errors.UnsupportedError` naming the op and the fx node.
Node names are the module paths (``layer1.0.conv1``) for modules and fx names otherwise.
The input shape comes from a class attribute ``input_shape`` (native size; a requested
``input_shape`` then adapts it as for YAML models, see :func:`~fxpsim.graph.build.adapt_input`)
or, without one, from the requested ``input_shape``. ``num_classes`` is the output width.
Every inferred shape is checked against a torch forward of one zero sample.
"""

from __future__ import annotations

import importlib.util
import operator
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from fxpsim.errors import ConfigError, UnsupportedError, clip
from fxpsim.graph.build import NodeSpec, adapt_input, build_graph
from fxpsim.graph.ir import Graph
from fxpsim.graph.user_code import DEFAULT_TIMEOUT_S, user_code

_ADD = {operator.add, operator.iadd, torch.add}
_RELU = {F.relu, torch.relu, torch.relu_}
_ALIAS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def _qualname(fn: Any) -> str:
    mod = getattr(fn, "__module__", None) or "torch"
    mod = {"_operator": "operator", "torch.nn.functional": "F", "torch._C._nn": "F",
           "torch._C._VariableFunctions": "torch"}.get(mod, mod)
    return f"{mod}.{getattr(fn, '__name__', repr(fn))}"


def _import_class(path: Path, class_name: str, source: str, timeout_s: float) -> type:
    if not path.is_file():
        raise ConfigError(source, "model", f"no such file: {path}")
    mod_name = f"_fxpsim_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(source, "model", f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses etc. look their module up while executing
    try:
        with user_code(source, "model", f"importing {path.name}", timeout_s):
            spec.loader.exec_module(module)
    finally:
        sys.modules.pop(mod_name, None)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = sorted(k for k, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == mod_name)
        raise ConfigError(source, "model", f"no nn.Module class '{class_name}' in {path.name} "
                          f"(found: {', '.join(found) or 'none'})")
    return cls


def _int_or_pair(v: Any) -> Any:
    return list(v) if isinstance(v, (tuple, list)) else v


class _Mapper:
    """Walks an fx graph and emits NodeSpecs; ``alias`` maps fx names to IR names."""

    def __init__(self, gm: fx.GraphModule, source: str) -> None:
        self.gm, self.source = gm, source
        self.specs: list[NodeSpec] = []
        self.alias: dict[str, str] = {}
        self.bookkeeping: set[str] = set()  # x.size() and indexing into it
        self.used: set[str] = {"input"}

    def unsupported(self, node: fx.Node, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.source}: unsupported op '{what}' at node '{node.name}'")

    def ref(self, node: fx.Node, arg: Any) -> str:
        if not isinstance(arg, fx.Node) or arg.name not in self.alias:
            raise UnsupportedError(f"{self.source}: node '{node.name}': operand {arg!r} is not "
                                   "a tensor computed by a supported op")
        return self.alias[arg.name]

    def emit(self, node: fx.Node, op: str, inputs: Sequence[Any], **attrs: Any) -> None:
        name = str(node.target) if node.op == "call_module" else node.name
        if name in self.used:
            name = node.name
        self.used.add(name)
        refs = tuple(self.ref(node, a) for a in inputs)
        self.specs.append(NodeSpec(name, op, refs, attrs, key=f"node '{node.name}'"))
        self.alias[node.name] = name

    def pool(self, node: fx.Node, op: str, kernel: Any, stride: Any, padding: Any,
             dilation: Any = 1, ceil_mode: bool = False, what: str = "") -> None:
        consts = (kernel, stride, padding, dilation)
        if any(isinstance(v, fx.Node) for v in consts) or ceil_mode or dilation not in (1, (1, 1)):
            raise self.unsupported(node, f"{what} (needs constant sizes, dilation 1, no "
                                   "ceil_mode)")
        self.emit(node, op, [node.args[0]], kernel=_int_or_pair(kernel),
                  stride=_int_or_pair(stride or kernel), padding=_int_or_pair(padding))

    def module(self, node: fx.Node, shapes: dict[str, tuple[int, ...]]) -> None:
        m = self.gm.get_submodule(str(node.target))
        x = node.args[0] if node.args else None
        kind = f"nn.{type(m).__name__}" if type(m).__module__.startswith("torch.nn") else \
            f"{type(m).__module__}.{type(m).__name__}"
        if isinstance(m, _ALIAS_MODULES):
            self.alias[node.name] = self.ref(node, x)
        elif type(m) is nn.Conv2d:
            if m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str) \
                    and m.padding != "valid":
                raise self.unsupported(node, f"{kind} with dilation/padding_mode/padding='same'")
            pad = 0 if isinstance(m.padding, str) else list(m.padding)
            self.emit(node, "conv2d", [x], out_channels=m.out_channels,
                      kernel=list(m.kernel_size), stride=list(m.stride), padding=pad,
                      groups=m.groups, bias=m.bias is not None)
        elif type(m) is nn.Linear:
            self.emit(node, "linear", [x], out_features=m.out_features,
                      bias=m.bias is not None)
        elif type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) and m.affine:
            self.emit(node, "batchnorm", [x], eps=m.eps, momentum=m.momentum or 0.0)
        elif type(m) is nn.ReLU:
            self.emit(node, "relu", [x])
        elif type(m) is nn.ReLU6:
            self.emit(node, "relu6", [x])
        elif type(m) is nn.MaxPool2d and not m.return_indices:
            self.pool(node, "maxpool", m.kernel_size, m.stride, m.padding, m.dilation,
                      m.ceil_mode, kind)
        elif type(m) is nn.AvgPool2d and m.divisor_override is None:
            self.pool(node, "avgpool", m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, kind)
        elif type(m) is nn.AdaptiveAvgPool2d:
            self.adaptive(node, m.output_size, x, shapes, kind)
        elif type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
            self.emit(node, "flatten", [x])
        else:
            raise self.unsupported(node, kind)

    def adaptive(self, node: fx.Node, size: Any, x: Any, shapes: dict[str, tuple[int, ...]],
                 what: str) -> None:
        out = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if out == (1, 1):
            self.emit(node, "global_avgpool", [x])
        elif isinstance(x, fx.Node) and shapes.get(x.name, ())[1:] == out:
            self.alias[node.name] = self.ref(node, x)  # output size == input size: identity
        else:
            raise self.unsupported(node, f"{what}({size}) on input {shapes.get(x.name)}")

    def function(self, node: fx.Node, shapes: dict[str, tuple[int, ...]]) -> None:
        fn, args, kw = node.target, node.args, node.kwargs
        if fn in _ADD and len(args) == 2 and not kw:
            self.emit(node, "add", list(args))
        elif fn in _RELU:
            self.emit(node, "relu", [args[0]])
        elif fn is F.relu6:
            self.emit(node, "relu6", [args[0]])
        elif fn is torch.flatten and self._flat_args(args[1:], kw):
            self.emit(node, "flatten", [args[0]])
        elif fn is F.adaptive_avg_pool2d:
            self.adaptive(node, kw.get("output_size", args[1] if len(args) > 1 else None),
                          args[0], shapes, _qualname(fn))
        elif fn in (F.max_pool2d, F.avg_pool2d):
            is_max = fn is F.max_pool2d
            names = ("kernel_size", "stride", "padding") + (
                ("dilation", "ceil_mode", "return_indices") if is_max
                else ("ceil_mode", "count_include_pad", "divisor_override"))
            vals = dict(zip(names, args[1:], strict=False)) | dict(kw)
            if vals.get("return_indices") or vals.get("divisor_override") is not None \
                    or set(vals) - set(names):
                raise self.unsupported(node, f"{_qualname(fn)} with return_indices/"
                                       "divisor_override")
            self.pool(node, "maxpool" if is_max else "avgpool", vals.get("kernel_size"),
                      vals.get("stride"), vals.get("padding", 0), vals.get("dilation", 1),
                      bool(vals.get("ceil_mode")), what=_qualname(fn))
        elif fn is operator.getitem and isinstance(args[0], fx.Node) \
                and args[0].name in self.bookkeeping:
            self.bookkeeping.add(node.name)
        else:
            raise self.unsupported(node, _qualname(fn))

    @staticmethod
    def _flat_args(args: Sequence[Any], kw: dict[str, Any]) -> bool:
        start = kw.get("start_dim", args[0] if args else 0)
        end = kw.get("end_dim", args[1] if len(args) > 1 else -1)
        return start == 1 and end == -1

    def method(self, node: fx.Node) -> None:
        name, args = str(node.target), node.args
        if name == "size":
            self.bookkeeping.add(node.name)
        elif name in ("relu", "relu_"):
            self.emit(node, "relu", [args[0]])
        elif name in ("add", "add_") and len(args) == 2 and not node.kwargs:
            self.emit(node, "add", list(args))
        elif name == "contiguous":
            self.alias[node.name] = self.ref(node, args[0])
        elif name == "flatten" and self._flat_args(args[1:], dict(node.kwargs)):
            self.emit(node, "flatten", [args[0]])
        elif name in ("view", "reshape"):
            dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            if len(dims) != 2:
                raise self.unsupported(node, f"Tensor.{name} to {len(dims)} dims (only the "
                                       "(N, -1) flatten is supported)")
            self.emit(node, "flatten", [args[0]])
        else:
            raise self.unsupported(node, f"Tensor.{name}")


class _ShapeProp:
    """``torch.fx``'s ShapeProp that remembers the node it is running, so an error in the
    user's forward names the module/op (ShapeProp's own message dumps the node's meta)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        from torch.fx.passes.shape_prop import ShapeProp

        outer = self
        self.current: fx.Node | None = None

        class Prop(ShapeProp):
            def run_node(self, n: fx.Node) -> Any:
                outer.current = n
                return super().run_node(n)

        self.prop = Prop(gm)

    def where(self, gm: fx.GraphModule) -> str:
        n = self.current
        if n is None:
            return ""
        if n.op == "call_module":
            m = gm.get_submodule(str(n.target))
            return f" at node '{n.name}' ({type(m).__name__} {n.target})"
        target = _qualname(n.target) if n.op == "call_function" else str(n.target)
        return f" at node '{n.name}' ({target})"


def _torch_shapes(gm: fx.GraphModule, shape: tuple[int, ...], source: str, timeout_s: float
                  ) -> dict[str, tuple[int, ...]]:
    """Per fx node, the output shape (batch dropped) of a forward of one zero sample."""
    gm.eval()  # batch statistics of 1 sample are undefined for BatchNorm1d
    prop = _ShapeProp(gm)
    try:
        with user_code(source, "input_shape", f"forward with input {list(shape)}", timeout_s), \
                torch.no_grad():
            try:
                prop.prop.propagate(torch.zeros((1, *shape)))
            except RuntimeError as e:  # ShapeProp's wrapper: report what the op raised
                raise (e.__cause__ or e) from None
    except ConfigError as e:
        raise ConfigError(e.source, e.key_path, e.message.replace(
            " failed: ", f"{prop.where(gm)} failed: ", 1)) from None
    out = {}
    for n in gm.graph.nodes:
        tm = n.meta.get("tensor_meta")
        if tm is not None and hasattr(tm, "shape"):
            out[n.name] = tuple(tm.shape)[1:]
    return out


def load_fx_model(
    path: str | Path,
    class_name: str,
    *,
    source: str | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Graph:
    """Import ``path``, trace ``class_name()`` with torch.fx and return its IR graph.

    The file's code runs isolated (:mod:`fxpsim.graph.user_code`): whatever it raises, and a
    step that takes longer than ``timeout_s`` seconds, is a one-line ConfigError."""
    p = Path(path)
    src = source or f"{p.name}:{class_name}"
    cls = _import_class(p, class_name, src, timeout_s)
    native = getattr(cls, "input_shape", None)
    if native is None and input_shape is None:
        raise ConfigError(src, "input_shape", "unknown input shape: give the class an attribute "
                          "input_shape = (C, H, W) or the run option input_shape=CxHxW "
                          "(e.g. input_shape=3x32x32)")
    given = native if native is not None else input_shape
    if not (isinstance(given, (tuple, list)) and given
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in given)):
        raise ConfigError(src, "input_shape", "expected (C, H, W) or (F,) of positive integers, "
                          f"got {clip(repr(given), 80)}")
    shape, pad_to = adapt_input(tuple(given), input_shape, src)
    with user_code(src, "model", f"{class_name}()", timeout_s):
        model = cls()
    try:
        with user_code(src, "model", "tracing with torch.fx", timeout_s):
            gm = fx.symbolic_trace(model)
    except ConfigError as e:  # data-dependent control flow and the like
        raise UnsupportedError(f"{src}: torch.fx cannot trace the model: "
                               f"{e.message.split(' failed: ', 1)[-1]}") from None
    shapes = _torch_shapes(gm, shape, src, timeout_s)
    mapper = _Mapper(gm, src)
    out_name = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if mapper.alias:
                raise mapper.unsupported(node, "a second forward() argument")
            mapper.alias[node.name] = "input"
        elif node.op == "call_module":
            mapper.module(node, shapes)
        elif node.op == "call_function":
            mapper.function(node, shapes)
        elif node.op == "call_method":
            mapper.method(node)
        elif node.op == "output":
            out_name = mapper.ref(node, node.args[0])
        else:
            raise mapper.unsupported(node, f"{node.op} {node.target}")
    if not mapper.specs or out_name != mapper.specs[-1].name:
        raise UnsupportedError(f"{src}: the output must be the last computed tensor")
    out_shape = shapes.get(next(n for n in gm.graph.nodes if n.op == "output").args[0].name)
    ncls = out_shape[0] if out_shape and len(out_shape) == 1 else 0
    if ncls == 0:
        raise UnsupportedError(f"{src}: the output must be a (N, num_classes) tensor, got "
                               f"shape {out_shape}")
    if num_classes is not None and num_classes != ncls:
        raise ConfigError(src, "num_classes", f"the model outputs {ncls} classes, the data "
                          f"has {num_classes}")
    graph = build_graph(class_name, shape, mapper.specs, ncls, src, pad_to=pad_to)
    for spec in mapper.specs:
        fx_name = spec.key[len("node '"):-1]
        ir_shape = graph.node(spec.name).shape
        if fx_name in shapes and shapes[fx_name] != ir_shape:
            raise UnsupportedError(f"{src}: node '{fx_name}': IR shape {ir_shape} differs from "
                                   f"torch's {shapes[fx_name]}")
    return graph
