"""The one place the quantized layers call the integer kernels, and the forward output stage.

:class:`PassGemms` wraps :func:`fxpsim.fixedpoint.intmm.array_matmul` (the MAC-array model
of :mod:`fxpsim.fixedpoint.macarray`): every call runs one group's GEMM of a pass and notes
the operand shapes, precisions and accumulator settings it was actually given; :meth:`emit`
files them as one :class:`~fxpsim.training.stats.GemmRecord` (groups = calls). The recipe
test compares these records, not formulas, with the time plane's lowering.

:func:`forward_output` is the configured requantizer on the forward accumulators
(``NumericsConfig.scale_format``, see :mod:`fxpsim.fixedpoint.outstage`): per tensor, the
output step ``Δy`` is the activation scale of the largest real output
(``max_c max|acc_c|·Δx·Δw_c``, rounded as the run's activation scales are); each channel's
real multiplier ``Δx·Δw_c/Δy`` is stored in the configured representation, and the codes
(``a_bits``, rounding ``rounding.a``, saturating) go to the vector unit as ``fp32(code·Δy)``.
Backward outputs stay at accumulator precision (``fp32(acc·scale)``): dX is re-quantized by
the gradient quantizer of the layer below, and dW feeds the fp32 master weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.intmm import array_matmul
from fxpsim.fixedpoint.modes import rounding_id
from fxpsim.fixedpoint.outstage import StoredScales, output_stage, stored_scales
from fxpsim.training.formats import NumericsConfig
from fxpsim.training.qkernels import (
    col_minmax,
    pix_to_nchw,
    requant_pix_to_nchw,
    scaled_flat,
)
from fxpsim.training.quantizers import scale_from_clip
from fxpsim.training.stats import Counters, GemmRecord, LayerStats

#: elements from which a one-pass parallel kernel beats numpy's single-threaded passes
PARALLEL_MIN = 1 << 16

#: ``probe(pass_name, k0, acc, codes, scales, delta_y)``: sees each group's accumulators
#: (int, channels last), the output codes and the stored scales (tests, debugging)
Probe = Callable[[str, int, np.ndarray, np.ndarray, StoredScales, float], None]


@dataclass
class PassGemms:
    """The GEMM calls of one pass of one layer (one per group)."""

    layer: str
    op: str
    pass_name: str
    numerics: NumericsConfig
    shapes: list[tuple[int, int, int]] = field(default_factory=list)
    bits: tuple[int | None, int | None] = (None, None)
    events: int = 0

    def run(self, a: torch.Tensor, b: torch.Tensor, max_a: int, max_b: int, *,
            swap: bool = False, out: torch.Tensor | None = None,
            signed: tuple[bool, bool] = (True, True)) -> torch.Tensor:
        """Values (int32 or int64) of ``a`` (M, K) x ``b`` (K, N) on the configured array.
        ``swap``: the call computes the pass's GEMM transposed (``a`` holds its N side).
        ``signed``: False for an operand of unsigned codes (0..max: its precision is
        ``max.bit_length()`` bits, no sign bit)."""
        vals, ev = array_matmul(a, b, self.numerics.array_model, max_a, max_b, out=out)
        m, k, n = int(a.shape[0]), int(a.shape[1]), int(b.shape[1])
        self.shapes.append((n, k, m) if swap else (m, k, n))
        qa, qb = _bits(max_a, signed[0]), _bits(max_b, signed[1])
        self.bits = (qb, qa) if swap else (qa, qb)
        self.events += ev
        return vals

    def float_gemm(self, m: int, k: int, n: int, groups: int) -> None:
        """Note an fp32 GEMM (torch op) of ``groups`` x (m, k, n) from the operands' shapes."""
        self.shapes.extend([(m, k, n)] * groups)

    def emit(self, counters: Counters, stats: LayerStats) -> None:
        if len(set(self.shapes)) != 1:
            raise AssertionError(f"{self.layer} {self.pass_name}: groups ran different GEMM "
                                 f"shapes {sorted(set(self.shapes))}")
        m, k, n = self.shapes[0]
        integer = self.bits != (None, None)
        nc = self.numerics
        counters.gemm(GemmRecord(
            self.layer, self.op, self.pass_name, m, k, n, len(self.shapes), integer,
            self.events, *self.bits,
            nc.acc_bits if integer else None, nc.acc_overflow if integer else None,
            nc.dataflow if integer else None))
        stats.acc_events[self.pass_name] += self.events


def _bits(max_abs: int, signed: bool = True) -> int:
    """Bits of symmetric codes within ±max_abs (qmax = 2^(b-1) - 1), or of unsigned codes
    within 0..max_abs (qmax = 2^b - 1)."""
    return int(max_abs).bit_length() + (1 if signed else 0)


def scaled(values: np.ndarray, scale: np.ndarray | float) -> torch.Tensor:
    """fp32(values·scale) with the product formed in float64 (one rounding). A product beyond
    fp32's range becomes inf, as in an fp32 output stage; the training loop reports that as
    a divergence, so numpy's overflow warning is silenced here."""
    if np.ndim(scale) == 0 and values.size >= PARALLEL_MIN:  # one pass, no float64 temporary
        out = np.empty(values.shape, dtype=np.float32)
        scaled_flat(np.ascontiguousarray(values).reshape(-1), float(scale), out.reshape(-1))
        return torch.from_numpy(out)
    with np.errstate(over="ignore"):
        return torch.from_numpy((values.astype(np.float64) * scale).astype(np.float32))


@dataclass(frozen=True)
class OutputPlan:
    """The forward output stage of one layer and step: ``Δy`` and the stored scales of every
    output channel."""

    delta_y: float
    scales: StoredScales | None  # None: every accumulator is 0


def plan_output(acc: np.ndarray, in_scale: np.ndarray, nc: NumericsConfig) -> OutputPlan:
    """``acc``: pixel-major accumulators (M, N), channels last; ``in_scale``: ``Δx·Δw_c``
    per output channel (float64)."""
    bits = nc.activations.bits
    assert bits is not None
    if acc.size == 0:
        return OutputPlan(1.0, None)
    # max and min per column (no |acc| copy; exact for every int64 but the minimum); numpy's
    # axis-0 reductions are single-threaded and slow on big accumulators, a thread-pool
    # launch costs more than they do on small ones
    if acc.size >= PARALLEL_MIN:
        lo, hi = np.empty(acc.shape[1], np.int64), np.empty(acc.shape[1], np.int64)
        col_minmax(np.ascontiguousarray(acc), lo, hi)
    else:
        lo, hi = acc.min(axis=0), acc.max(axis=0)
    amax = np.maximum(hi.astype(np.float64), -lo.astype(np.float64))
    real_max = float((amax * in_scale).max(initial=0.0))
    if real_max == 0.0:
        return OutputPlan(1.0, None)
    delta_y = float(scale_from_clip(np.asarray(real_max), bits, nc.activations.scale))
    return OutputPlan(delta_y, stored_scales(in_scale / delta_y, nc.scale_format))


def forward_output(plan: OutputPlan, acc: np.ndarray, nc: NumericsConfig, rng: object,
                   stats: LayerStats, probe: Probe | None) -> np.ndarray:
    """Output codes (int64, like ``acc`` (M, N), channels last) of a layer's forward."""
    bits = nc.activations.bits
    assert bits is not None
    if plan.scales is None:
        codes = np.zeros(acc.shape, dtype=np.int64)
        if probe is not None:
            probe("forward", 0, acc, codes, stored_scales(np.ones(acc.shape[1]),
                                                          nc.scale_format), plan.delta_y)
        return codes
    res = output_stage(acc, plan.scales, QFormat(bits, 0), nc.activations.rounding, rng,
                       random_bits=nc.random_bits)
    stats.out_saturated += res.n_overflow
    stats.out_elems += acc.size
    if probe is not None:
        probe("forward", 0, acc, res.codes, plan.scales, plan.delta_y)
    return res.codes


def fused_output(plan: OutputPlan, acc: np.ndarray, nc: NumericsConfig, stats: LayerStats,
                 probe: Probe | None, out: np.ndarray) -> bool:
    """The forward output stage and NCHW write in one kernel when that kernel computes what
    :func:`forward_output` would: an integer scale format, a deterministic rounding, and
    ``|acc·multiplier| < 2^63``; returns False (nothing done) otherwise, or with a probe."""
    s = plan.scales
    bits = nc.activations.bits
    if probe is not None or s is None or s.multiplier is None or s.shift is None \
            or bits is None or nc.activations.stochastic or acc.dtype != np.int32:
        return False
    if int(np.abs(s.multiplier).max(initial=0)) >= 2**31:  # int32 acc: |acc·mult| < 2^62
        return False
    qmax = (1 << (bits - 1)) - 1
    n_ovf = requant_pix_to_nchw(acc, s.multiplier, s.shift, rounding_id(nc.activations.rounding),
                                -qmax - 1, qmax, plan.delta_y, out)
    stats.out_saturated += int(n_ovf)
    stats.out_elems += acc.size
    return True


def codes_to_nchw(codes: np.ndarray, delta_y: float, out: np.ndarray) -> None:
    """out[b, n, y, z] = fp32(code·Δy) of pixel-major codes (B·OH·OW, N)."""
    pix_to_nchw(codes, np.full(codes.shape[1], delta_y), 0, out)
