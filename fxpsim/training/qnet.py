"""IR :class:`~fxpsim.graph.ir.Graph` -> trainable torch module with bit-exact quantized GEMMs.

:func:`build_qnet` makes one module per IR node: conv2d / linear become quantized layers
(:mod:`fxpsim.training.qlayers`, formats from the :class:`NumericsConfig` with the node's
per-operand overrides); batchnorm, relu, relu6, pooling, add, flatten run as plain torch
fp32 ops (the vector unit computes in fp32). ``forward`` walks the nodes in order, feeding
each node the outputs named by its ``inputs`` (residual adds included).

Initialisation is deterministic from ``seed`` with one ``torch.Generator`` (no global RNG),
parameters drawn in node order: conv weights ``kaiming_normal_`` (fan_in, ReLU gain), conv
bias 0; linear weight ``kaiming_uniform_(a=√5)`` and bias ``U(±1/√fan_in)`` (torch's
defaults); batchnorm γ = 1, β = 0.

Input adaptation: a batch whose (H, W) equals the graph's ``pad_to`` is zero-padded to the
input node's size (:attr:`Graph.input_padding`); a 1-channel batch fed to a multi-channel
input is repeated over channels. Any other mismatch is a ValueError naming ``x``.

Stochastic rounding draws from the hardware RNG of ``numerics.rng``; streams
(:meth:`RngSpec.build`): ``never`` -> stream 0 for the whole run, ``per_step`` ->
stream ``1 + step``, ``per_layer`` -> stream ``(step << 20) + layer_index + 1`` (the layer
index counts GEMM nodes from 0). Call :meth:`QNet.begin_step` at the start of every
training step so ``per_step``/``per_layer`` reseed and sampled statistics know the step.

Counters (:attr:`QNet.counters`) log every GEMM and vector op executed: the GEMMs and
quantizations from the layers' kernel wrappers, the fp32 nodes (batchnorm, activations,
pooling, residual adds, bias gradients, gradient sums of fan-out) from the vector unit that
runs them (:mod:`fxpsim.training.vector_unit`), with element counts read from the tensors
they touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fxpsim.graph.ir import (
    BatchNormAttrs,
    Conv2dAttrs,
    Graph,
    LinearAttrs,
    Node,
    PoolAttrs,
)
from fxpsim.training import vector_unit as vu
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.fwdscales import initial_clips, nonnegative_nodes
from fxpsim.training.qlayers import ConvGeom, LayerRuntime, QConv2dFn, QLinearFn
from fxpsim.training.stats import Counters, LayerStats, LayerStatsSummary, StatsConfig
from fxpsim.vocab import VECTOR_OPS


class QConv2d(nn.Module):
    def __init__(self, node: Node, rt: LayerRuntime, gen: torch.Generator) -> None:
        super().__init__()
        a = node.attrs
        assert isinstance(a, Conv2dAttrs)
        self.rt = rt
        self.geom = ConvGeom(a.kernel, a.stride, a.padding, a.groups)
        self.weight = nn.Parameter(torch.empty(node.weight_shape))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu", generator=gen)
        self.bias = nn.Parameter(torch.zeros(a.out_channels)) if a.bias else None
        _add_clips(self, rt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = QConv2dFn.apply(x, self.weight, self.rt, self.geom, _clips(self, x))
        if self.bias is not None:
            y = vu.bias_add(self.rt.counters, self.rt.name, y, self.bias, (1, -1, 1, 1))
        return y


class QLinear(nn.Module):
    def __init__(self, node: Node, rt: LayerRuntime, gen: torch.Generator) -> None:
        super().__init__()
        a = node.attrs
        assert isinstance(a, LinearAttrs)
        self.rt = rt
        self.weight = nn.Parameter(torch.empty(node.weight_shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=gen)
        self.bias = None
        if a.bias:
            bound = 1.0 / math.sqrt(node.weight_shape[1])
            self.bias = nn.Parameter(torch.empty(a.out_features).uniform_(-bound, bound,
                                                                          generator=gen))
        _add_clips(self, rt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = QLinearFn.apply(x, self.weight, self.rt, _clips(self, x))
        if self.bias is not None:
            y = vu.bias_add(self.rt.counters, self.rt.name, y, self.bias)
        return y


def _add_clips(mod: Any, rt: LayerRuntime) -> None:
    """Learned forward clips ``(s_W, u_A)`` of a layer (``forward_scales=learned``; see
    :mod:`fxpsim.training.fwdscales`), set from the first training batch."""
    nc = rt.numerics
    if nc.learned_scales and not (nc.weights.is_float and nc.activations.is_float):
        mod.clips = nn.Parameter(torch.ones(2))
        mod.register_buffer("clips_ready", torch.tensor(False))
    else:
        mod.clips = None


def _clips(mod: Any, x: torch.Tensor) -> torch.Tensor | None:
    clips: torch.Tensor | None = mod.clips
    if clips is None:
        return None
    if not bool(mod.clips_ready):
        sw, sx = initial_clips(mod.weight, x, mod.rt.numerics.activations.signed)
        with torch.no_grad():
            clips.copy_(torch.tensor([sw, sx]))
            mod.clips_ready.fill_(True)
    return clips


class VectorNode(nn.Module):
    """An fp32 vector-unit node (batchnorm holds parameters; the rest are functions), run
    by :mod:`fxpsim.training.vector_unit`, which records it into ``sink`` (default: nowhere,
    for fp32 reference networks)."""

    def __init__(self, node: Node, sink: vu.VectorSink = vu.NULL_SINK) -> None:
        super().__init__()
        self.node, self.sink = node, sink
        self.bn: nn.Module | None = None
        a = node.attrs
        if node.op == "batchnorm":
            assert isinstance(a, BatchNormAttrs)
            cls = nn.BatchNorm2d if len(node.shape) == 3 else nn.BatchNorm1d
            self.bn = cls(node.shape[0], eps=a.eps, momentum=a.momentum)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        op, a, x, sink, name = self.node.op, self.node.attrs, xs[0], self.sink, self.node.name
        if op == "batchnorm":
            assert self.bn is not None  # built for batchnorm nodes
            return vu.batchnorm(sink, name, self.bn, x)
        if op == "relu":
            return vu.relu(sink, name, x)
        if op == "relu6":
            return vu.relu6(sink, name, x)
        if op in ("maxpool", "avgpool"):
            assert isinstance(a, PoolAttrs)
            return vu.pool(sink, name, op, x, a.kernel, a.stride, a.padding)
        if op == "global_avgpool":
            return vu.global_avgpool(sink, name, x)
        if op == "add":
            return vu.add(sink, name, xs)
        if op == "flatten":  # a view: no vector-unit work
            return x.flatten(1)
        raise ValueError(f"graph: op {op!r} of node {self.node.name!r} is not supported")


def _key(name: str) -> str:
    return name.replace(".", "_")


def _node_numerics(numerics: NumericsConfig, node: Node, nonneg_input: bool) -> NumericsConfig:
    """A node's numerics: its per-operand overrides, and unsigned activation codes when the
    run asks for them and the node's input comes from a ReLU (up to 15 bits: 16-bit
    unsigned codes would not fit the 16-bit code registers, so 16 bits stay signed)."""
    nc = numerics.for_node(node.formats)
    a = nc.activations
    if nc.a_codes == "unsigned" and nonneg_input and a.bits is not None and a.bits <= 15:
        nc = replace(nc, activations=replace(a, signed=False))
    return nc


class QuantizedNet(Protocol):
    """What the training algorithms use of a :class:`QNet` (its torch module interface plus
    the execution log, statistics switch and step hook)."""

    graph: Graph
    counters: Counters
    stats_config: StatsConfig
    layers: nn.ModuleDict

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...

    def modules(self) -> Iterator[nn.Module]: ...

    def begin_step(self, step: int) -> None: ...


class QNet(nn.Module):
    """The quantized network (see the module docstring). Build with :func:`build_qnet`."""

    def __init__(self, graph: Graph, numerics: NumericsConfig, *, seed: int) -> None:
        super().__init__()
        if graph.workload_only or len(graph.input_nodes) != 1:
            raise ValueError(f"graph: {graph.name!r} is a GEMM-only workload and cannot be "
                             "trained (it needs exactly one input node)")
        self.graph, self.numerics, self.seed = graph, numerics, int(seed)
        self.counters = Counters()
        self.stats_config = StatsConfig()
        self.layer_stats: dict[str, LayerStats] = {}
        self.runtimes: dict[str, LayerRuntime] = {}
        self.step = 0
        self._rngs: dict[int, object] = {}
        self._gemm_index: dict[str, int] = {}
        gen = torch.Generator().manual_seed(self.seed)
        self.layers = nn.ModuleDict()
        nonneg = nonnegative_nodes(graph)
        for node in graph.nodes[1:]:
            if node.is_gemm:
                idx = len(self._gemm_index)
                self._gemm_index[node.name] = idx
                stats = LayerStats(node.name)
                self.layer_stats[node.name] = stats
                rt = LayerRuntime(node.name, node.op,
                                  _node_numerics(numerics, node, node.inputs[0] in nonneg),
                                  self.counters, stats, self.stats_config,
                                  self._rng_getter(idx))
                self.runtimes[node.name] = rt
                mod: nn.Module = (QConv2d if node.op == "conv2d" else QLinear)(node, rt, gen)
            elif node.op in VECTOR_OPS:
                mod = VectorNode(node, self.counters)
            else:
                raise ValueError(f"graph: op {node.op!r} of node {node.name!r} is not "
                                 "supported by the value plane")
            self.layers[_key(node.name)] = mod
        self._last_use = self._last_uses()
        self._consumers = {n.name: 0 for n in graph.nodes}
        for n in graph.nodes:
            for ref in n.inputs:
                self._consumers[ref] += 1
        self._stochastic = any(
            rt.numerics.weights.stochastic or rt.numerics.activations.stochastic
            or rt.numerics.gradients.stochastic for rt in self.runtimes.values())

    # ---- RNG streams ------------------------------------------------------------------
    def _rng_getter(self, idx: int):
        return lambda: self._rng_for(idx)

    def _rng_for(self, idx: int) -> object:
        if not self._stochastic:
            return None
        spec = self.numerics.rng
        if spec.reseed == "per_layer":
            stream = (self.step << 20) + idx + 1
        elif spec.reseed == "per_step":
            stream = 1 + self.step
        else:
            stream = 0
        rng = self._rngs.get(stream)
        if rng is None:
            rng = self._rngs[stream] = spec.build(self.seed, stream)
        return rng

    def begin_step(self, step: int) -> None:
        """Mark the start of training step ``step`` (reseeding and stats sampling)."""
        self.step = int(step)
        self.stats_config.step = self.step
        if self.numerics.rng.reseed != "never":
            self._rngs.clear()

    # ---- LBT / statistics hooks -------------------------------------------------------
    def set_gamma(self, layer: str, gamma: float) -> None:
        """LBT's per-layer clip factor γ (used when ``grad_interval == "lbt"``)."""
        self.runtimes[layer].gamma = float(gamma)

    def gamma(self, layer: str) -> float:
        return self.runtimes[layer].gamma

    def set_grad_observer(self, fn) -> None:
        """``fn(layer, dY)`` sees every layer's float dY before it is quantized."""
        for rt in self.runtimes.values():
            rt.grad_observer = fn

    def stats_summary(self) -> dict[str, LayerStatsSummary]:
        return {name: s.summary() for name, s in self.layer_stats.items()}

    def reset_stats(self) -> None:
        for s in self.layer_stats.values():
            s.reset()

    # ---- forward ----------------------------------------------------------------------
    def _last_uses(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for i, node in enumerate(self.graph.nodes):
            for ref in node.inputs:
                last[ref] = i
        return last

    def adapt_input(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.graph.input_shape
        if len(shape) == 3 and x.dim() == 4:
            if self.graph.pad_to is not None and tuple(x.shape[2:]) == self.graph.pad_to \
                    and tuple(x.shape[2:]) != tuple(shape[1:]):
                top, bottom, left, right = self.graph.input_padding  # type: ignore[misc]
                x = F.pad(x, (left, right, top, bottom))
            if x.shape[1] == 1 and shape[0] > 1:
                x = x.expand(-1, shape[0], -1, -1)
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"x: expected a batch of shape (B, {', '.join(map(str, shape))})"
                             f", got {tuple(x.shape)}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = self.graph.nodes
        vals: dict[str, torch.Tensor] = {nodes[0].name: self.adapt_input(x)}
        y = vals[nodes[0].name]
        for i, node in enumerate(nodes[1:], start=1):
            xs = [vals[r] for r in node.inputs]
            y = self.layers[_key(node.name)](*xs)
            vu.grad_sum(self.counters, node.name, y, self._consumers[node.name])
            vals[node.name] = y
            for r in node.inputs:
                if self._last_use.get(r) == i:
                    del vals[r]
        return y


def build_qnet(graph: Graph, numerics: NumericsConfig, *, seed: int) -> QNet:
    """A :class:`QNet` for ``graph`` with ``numerics``, parameters initialised from ``seed``."""
    return QNet(graph, numerics, seed=seed)
