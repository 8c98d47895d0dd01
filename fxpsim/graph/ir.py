"""The hardware-independent network IR shared by the value plane and the time plane.

A :class:`Graph` is a topologically ordered tuple of :class:`Node` s. Shapes exclude the
batch dimension: feature maps are ``(C, H, W)``, vectors ``(F,)``. Every node carries its
output shape (filled by shape inference in :mod:`fxpsim.graph.build`), so both planes read
sizes without recomputing them. Formats are per-operand bit widths that override the run's
defaults for one node (e.g. an 8-bit first layer in a 4-bit network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

Op = Literal[
    "input",
    "conv2d",
    "linear",
    "batchnorm",
    "relu",
    "relu6",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "add",
    "flatten",
]

#: ops that run on the MAC array (GEMMs after lowering); the rest run on the vector unit
GEMM_OPS: frozenset[str] = frozenset({"conv2d", "linear"})


@dataclass(frozen=True)
class Conv2dAttrs:
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    bias: bool = False


@dataclass(frozen=True)
class LinearAttrs:
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class PoolAttrs:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class BatchNormAttrs:
    eps: float = 1e-5
    momentum: float = 0.1


@dataclass(frozen=True)
class NoAttrs:
    pass


@dataclass(frozen=True)
class InputAttrs(NoAttrs):
    """Attributes of an ``input`` node (a subclass of :class:`NoAttrs`, so code that treats
    inputs as attribute-less keeps working).

    ``pad_to``: ``None``, or the ``(H, W)`` of the *data* when it is smaller than the node's
    shape (e.g. 28x28 MNIST into a model defined at 32x32). The data plane must then zero-pad
    each sample to the node's ``(H, W)``: ``(size - data) // 2`` rows/columns before, the rest
    after (see :attr:`Graph.input_padding`).
    """

    pad_to: tuple[int, int] | None = None


Attrs = Conv2dAttrs | LinearAttrs | PoolAttrs | BatchNormAttrs | InputAttrs | NoAttrs


@dataclass(frozen=True)
class OperandFormats:
    """Per-node bit-width overrides (None = the run's default for that tensor kind;
    ``"float"`` = not quantized at this node)."""

    w_bits: int | Literal["float"] | None = None
    a_bits: int | Literal["float"] | None = None
    g_bits: int | Literal["float"] | None = None


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]
    attrs: Attrs
    shape: tuple[int, ...]  # output shape, batch excluded
    in_shape: tuple[int, ...] = ()  # shape of the first input (empty for "input")
    formats: OperandFormats = field(default_factory=OperandFormats)

    @property
    def is_gemm(self) -> bool:
        return self.op in GEMM_OPS

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """(K, C/groups, kh, kw) for conv2d, (out, in) for linear, (C,) for batchnorm."""
        a = self.attrs
        if isinstance(a, Conv2dAttrs):
            return (a.out_channels, self.in_shape[0] // a.groups, *a.kernel)
        if isinstance(a, LinearAttrs):
            return (a.out_features, self.in_shape[0])
        if isinstance(a, BatchNormAttrs):
            return (self.shape[0],)
        return ()

    @property
    def params(self) -> int:
        """Trainable parameters (BatchNorm: gamma and beta)."""
        a = self.attrs
        if isinstance(a, Conv2dAttrs):
            k, cg, kh, kw = self.weight_shape
            return k * cg * kh * kw + (k if a.bias else 0)
        if isinstance(a, LinearAttrs):
            o, i = self.weight_shape
            return o * i + (o if a.bias else 0)
        if isinstance(a, BatchNormAttrs):
            return 2 * self.shape[0]
        return 0

    @property
    def macs(self) -> int:
        """Forward multiply-accumulates for one sample."""
        a = self.attrs
        if isinstance(a, Conv2dAttrs):
            k, oh, ow = self.shape
            _, cg, kh, kw = self.weight_shape
            return k * oh * ow * cg * kh * kw
        if isinstance(a, LinearAttrs):
            o, i = self.weight_shape
            return o * i
        return 0

    @property
    def out_elems(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: tuple[Node, ...]
    num_classes: int
    source: str = ""  # file the graph came from (for error messages and reports)
    #: True for GEMM-only workloads (SCALE-Sim topologies): several independent ``input``
    #: nodes, no classifier (``num_classes`` 0). The time plane can run them; training cannot.
    workload_only: bool = False

    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.nodes[0].shape

    @property
    def input_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.op == "input")

    @property
    def pad_to(self) -> tuple[int, int] | None:
        """The data's ``(H, W)`` when smaller than the graph input (see :class:`InputAttrs`)."""
        a = self.nodes[0].attrs
        return a.pad_to if isinstance(a, InputAttrs) else None

    @property
    def input_padding(self) -> tuple[int, int, int, int] | None:
        """Zero padding ``(top, bottom, left, right)`` that brings data of size
        :attr:`pad_to` to the input node's ``(H, W)``; ``None`` when no padding is needed."""
        hw = self.pad_to
        if hw is None:
            return None
        _, h, w = self.nodes[0].shape
        top, left = (h - hw[0]) // 2, (w - hw[1]) // 2
        return (top, h - hw[0] - top, left, w - hw[1] - left)

    @cached_property
    def _by_name(self) -> dict[str, Node]:
        # built once: a lookup per node (lowering, fx import) must not scan the whole graph
        return {n.name: n for n in self.nodes}

    def node(self, name: str) -> Node:
        return self._by_name[name]

    @property
    def gemm_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_gemm)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)
