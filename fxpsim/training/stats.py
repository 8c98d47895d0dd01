"""What the quantized network executed (:class:`Counters`) and per-layer numerics
statistics (:class:`LayerStats`).

Counters: every GEMM the layers run is appended as a :class:`GemmRecord` (IR node name, pass
``forward`` / ``backward_data`` / ``backward_weight``, per-group ``m, k, n`` as in
:class:`fxpsim.timing.ops.GemmOp`), every vector-unit operation as a :class:`VectorRecord`
(IR node name, IR op, pass, kind, elements). Two sources: the quantizers of the GEMM layers
(:meth:`Counters.vector`; pass ``forward`` / ``backward``, kinds ``quantize_act`` /
``quantize_weight`` / ``quantize_grad``, ``quantize_weight_bwd``: the per-tensor weight copy a
per-channel config uses in backward-data, Octo's ``requant_x`` / ``requant_w``), which the
ExecLog decomposes into the time plane's ops; and the fp32 vector unit
(:mod:`fxpsim.training.vector_unit`, :meth:`Counters.record`), whose records are already in
the time plane's vocabulary with the role ``forward`` / ``backward_data`` /
``backward_weight`` as pass. Counters are reset by :meth:`Counters.reset`.

Statistics are always counted where they are free (accumulator overflow events from the
GEMM kernels, clipped elements from the quantizer). SQNR needs an extra pass over the tensor,
so it is measured only while :attr:`StatsConfig.enabled` is on and only on steps where
``step % every == 0``: ``SQNR = 10·log10(Σ x² / Σ (x − x̂)²)`` over all sampled elements,
``x`` the float value before quantization, ``x̂`` the dequantized codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PASSES = ("forward", "backward_data", "backward_weight")


@dataclass(frozen=True)
class GemmRecord:
    layer: str
    op: str  # "conv2d" | "linear"
    pass_name: str
    m: int
    k: int
    n: int
    groups: int
    integer: bool  # ran on integer codes (False: an fp32 GEMM)
    acc_events: int = 0  # accumulator (and psum) overflow events over all groups
    # what the kernel was given: operand precisions (None: fp32) and the array's registers
    a_bits: int | None = None
    b_bits: int | None = None
    acc_bits: int | None = None
    acc_overflow: str | None = None
    dataflow: str | None = None

    @property
    def shape(self) -> tuple[str, str, int, int, int, int]:
        """(layer, pass, m, k, n, groups): what the time plane's lowering must agree on."""
        return (self.layer, self.pass_name, self.m, self.k, self.n, self.groups)


@dataclass(frozen=True)
class VectorRecord:
    layer: str
    op: str  # IR op of the node
    pass_name: str  # "forward" | "backward"
    kind: str
    elems: int


@dataclass
class Counters:
    """Execution log of the value plane since the last :meth:`reset`."""

    gemms: list[GemmRecord] = field(default_factory=list)
    vector_ops: list[VectorRecord] = field(default_factory=list)

    def reset(self) -> None:
        self.gemms.clear()
        self.vector_ops.clear()

    def gemm(self, rec: GemmRecord) -> None:
        self.gemms.append(rec)

    def vector(self, layer: str, op: str, pass_name: str, kind: str, elems: int) -> None:
        self.vector_ops.append(VectorRecord(layer, op, pass_name, kind, int(elems)))

    def record(self, layer: str, pass_name: str, kind: str, elems: int) -> None:
        """A vector-unit op (:mod:`fxpsim.training.vector_unit`), already in the time plane's
        vocabulary; ``op`` is left empty."""
        self.vector_ops.append(VectorRecord(layer, "", pass_name, kind, int(elems)))


@dataclass
class StatsConfig:
    """``enabled``: measure SQNR at all; ``every``: only on steps divisible by it."""

    enabled: bool = False
    every: int = 1
    step: int = 0

    @property
    def active(self) -> bool:
        return self.enabled and self.step % max(self.every, 1) == 0


@dataclass(frozen=True)
class LayerStatsSummary:
    layer: str
    act_sqnr_db: float | None  # None: never sampled (or fp32 activations)
    grad_sqnr_db: float | None
    acc_events: dict[str, int]  # per pass
    grad_clipped: int
    grad_elems: int
    act_clipped: int
    act_elems: int
    out_saturated: int = 0  # forward output codes the requantizer saturated
    out_elems: int = 0

    @property
    def grad_clipped_fraction(self) -> float:
        return self.grad_clipped / self.grad_elems if self.grad_elems else 0.0


def _sqnr_db(signal: float, noise: float) -> float | None:
    if signal == 0.0 and noise == 0.0:
        return None
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


@dataclass
class LayerStats:
    """Running sums for one GEMM layer (mutable; summarised by :meth:`summary`)."""

    layer: str
    act_signal: float = 0.0
    act_noise: float = 0.0
    grad_signal: float = 0.0
    grad_noise: float = 0.0
    acc_events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASSES, 0))
    grad_clipped: int = 0
    grad_elems: int = 0
    act_clipped: int = 0
    act_elems: int = 0
    out_saturated: int = 0
    out_elems: int = 0

    def add_sqnr(self, kind: str, x: np.ndarray, xhat: np.ndarray) -> None:
        """Accumulate Σx² and Σ(x − x̂)² (float64) for ``kind`` ``act`` or ``grad``."""
        x = np.asarray(x, dtype=np.float64)
        err = x - np.asarray(xhat, dtype=np.float64)
        sig, noise = float(np.vdot(x, x)), float(np.vdot(err, err))
        if kind == "act":
            self.act_signal += sig
            self.act_noise += noise
        else:
            self.grad_signal += sig
            self.grad_noise += noise

    def reset(self) -> None:
        self.__init__(self.layer)  # type: ignore[misc]

    def summary(self) -> LayerStatsSummary:
        return LayerStatsSummary(
            self.layer, _sqnr_db(self.act_signal, self.act_noise),
            _sqnr_db(self.grad_signal, self.grad_noise), dict(self.acc_events),
            self.grad_clipped, self.grad_elems, self.act_clipped, self.act_elems,
            self.out_saturated, self.out_elems,
        )
