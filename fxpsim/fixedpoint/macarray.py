"""Bit-exact MAC-array GEMM: where and in which order the hardware adds.

``array_gemm(a, b, model)`` computes C = A (M, K) x B (K, N) as an array of ``rows x cols``
PEs would, with its registers' widths and overflow modes. ``a`` is the streamed operand
(activations in the forward pass, precision ``a_bits``), ``b`` the operand mapped on the
array (weights, precision ``w_bits``); codes must fit those signed widths.

Add order per dataflow:

- ``output_stationary``: each PE owns one output and adds all of K, in k order, into its
  ``acc_bits`` register (overflow ``acc_overflow`` after every add) -- exactly
  :func:`fxpsim.fixedpoint.gemm.matmul`. ``psum_*`` are unused; ``events_psum`` is zero.
- ``weight_stationary`` and ``input_stationary``: the reduction dim K is spatial on the
  array rows. K is cut into consecutive tiles of ``rows`` k's (the last may be shorter).
  Within a tile, the partial sum flows down a column in a ``psum_bits`` register that starts
  at 0 and applies ``psum_overflow`` after every add, in k order. Each tile's column result
  is then added, tile after tile in k order, into the accumulator-memory entry of the output
  (``acc_bits``, ``acc_overflow``, starting at 0). WS keeps a rows x cols block of B in the
  PEs and streams A; IS keeps a block of A (K on rows, M on cols) and streams B. That changes
  what is reloaded, not the order of the adds, so both give identical values and events.
  ``psum_bits``/``psum_overflow`` default to ``acc_bits``/``acc_overflow``.

Statistics: ``events_psum``/``events_acc`` are per-output int64 (M, N) counts of adds at
which that register left its range. ``tile_events`` sums both over output tiles:
OS: a tile is a ``rows x cols`` block of outputs -> shape (ceil(M/rows), ceil(N/cols));
WS: a tile is ``cols`` output columns (N) x all M -> shape (1, ceil(N/cols));
IS: a tile is ``cols`` output rows (M, the columns of the array) x all N -> (ceil(M/cols), 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxpsim.fixedpoint import gemm_kernels as _k
from fxpsim.fixedpoint.gemm import (
    Operand,
    bound_flags,
    check_acc,
    check_operand,
    default_chunk,
    exact_sum,
    matmul_ops,
    register_range,
    tighten,
    zero_events,
)

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")
OPERAND_BITS = (4, 8, 16)


@dataclass(frozen=True)
class ArrayModel:
    """A MAC array: ``rows x cols`` PEs, its dataflow and its two register levels."""

    rows: int
    cols: int
    dataflow: str
    acc_bits: int = 32
    acc_overflow: str = "saturate"
    psum_bits: int | None = None
    psum_overflow: str | None = None

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow: expected one of {DATAFLOWS}, got {self.dataflow!r}")
        check_acc(self.acc_bits, self.acc_overflow, "acc_bits", "acc_overflow")
        check_acc(self.psum_bits_eff, self.psum_overflow_eff, "psum_bits", "psum_overflow")

    @property
    def psum_bits_eff(self) -> int:
        return self.acc_bits if self.psum_bits is None else self.psum_bits

    @property
    def psum_overflow_eff(self) -> str:
        return self.acc_overflow if self.psum_overflow is None else self.psum_overflow


@dataclass(frozen=True)
class ArrayGemmResult:
    """values (M, N) int64; per-output event counts of the psum and accumulator registers;
    tile_events: events summed per output tile (see the module docstring for the tiling)."""

    values: np.ndarray
    events_psum: np.ndarray
    events_acc: np.ndarray
    tile_events: np.ndarray

    @property
    def total_psum_events(self) -> int:
        return int(self.events_psum.sum())

    @property
    def total_acc_events(self) -> int:
        return int(self.events_acc.sum())

    @property
    def total_events(self) -> int:
        return self.total_psum_events + self.total_acc_events


def _check_bits(op: Operand, bits: object, name: str, arg: str) -> Operand:
    """The operand (bounds tightened if its dtype alone does not prove the fit)."""
    if bits not in OPERAND_BITS:
        raise ValueError(f"{name}: expected one of {OPERAND_BITS}, got {bits!r}")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if op.lo < lo or op.hi > hi:
        op = tighten(op)
    if op.lo < lo or op.hi > hi:
        raise ValueError(f"{arg}: codes must fit signed {bits}-bit [{lo}, {hi}] ({name}), "
                         f"got range [{op.lo}, {op.hi}]")
    return op


def tile_sums(events: np.ndarray, tile_m: int, tile_n: int) -> np.ndarray:
    """Sum an (M, N) array over blocks of tile_m x tile_n (edge blocks may be smaller)."""
    m_rows, n_cols = events.shape
    if m_rows == 0 or n_cols == 0:
        return np.zeros((-(-m_rows // tile_m), -(-n_cols // tile_n)), dtype=np.int64)
    # block sums without a padded copy of the (M, N) array
    rows = np.add.reduceat(events, np.arange(0, m_rows, tile_m), axis=0, dtype=np.int64)
    return np.add.reduceat(rows, np.arange(0, n_cols, tile_n), axis=1, dtype=np.int64)


def two_level_sequential(a: Operand, b: Operand, tile: int, psum_bits: int, psum_overflow: str,
                         acc_bits: int, acc_overflow: str
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, psum events, acc events) in hardware order: per k-tile a sequential psum,
    then a register add of the tile's psum into the accumulator (one fused kernel)."""
    return _k.two_level(a.data, b.data, tile, psum_bits, psum_overflow, acc_bits, acc_overflow,
                        a.max_abs, b.max_abs)


def _static_ok(a: Operand, b: Operand, model: ArrayModel) -> bool:
    plo, phi = register_range(model.psum_bits_eff, model.psum_overflow_eff)
    alo, ahi = register_range(model.acc_bits, model.acc_overflow)
    k_len, max_prod = a.data.shape[1], a.max_abs * b.max_abs
    return (min(model.rows, k_len) * max_prod <= min(phi, -plo)
            and k_len * max_prod <= min(ahi, -alo))


def _two_level_flags(a: Operand, b: Operand, model: ArrayModel, chunk: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(flags, exact sums): flags[m,n] where some psum or accumulator prefix MAY leave its
    register (chunks aligned to tiles; see :func:`_two_level`)."""
    return bound_flags(a, b, model.acc_bits, model.acc_overflow, chunk,
                       inner=register_range(model.psum_bits_eff, model.psum_overflow_eff))


def _two_level(a: Operand, b: Operand, model: ArrayModel, path: str
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Two-level accumulation with the same exact fast paths as matmul.

    Static: a tile's psum prefixes are within rows*max|ab|, accumulator prefixes within
    K*max|ab|. Bound check on k-chunks aligned to tiles: a psum prefix of a tile inside chunk
    J lies in [N_J, P_J]; an accumulator value after a tile of chunk J lies in
    [S_<J + N_J, S_<J + P_J].
    """
    tile, k_len = model.rows, a.data.shape[1]
    if not _static_ok(a, b, model):
        a, b = tighten(a), tighten(b)  # the proofs and the lane choice need actual bounds
    shape = (a.data.shape[0], b.data.shape[1])
    pb, po = model.psum_bits_eff, model.psum_overflow_eff
    ab, ao = model.acc_bits, model.acc_overflow
    max_prod = a.max_abs * b.max_abs
    static_ok = _static_ok(a, b, model)
    chunk = default_chunk(k_len, align=tile)
    checked = None
    if path == "auto":
        # the bound check costs ~4 exact GEMMs per k-chunk (slow for thin outputs) plus the
        # sequential kernel on flagged outputs: only worth it on big, mostly clean problems
        bound_ok = (k_len * max_prod < 2**63 and k_len >= 64 and min(shape) >= 32
                    and shape[0] * shape[1] * k_len >= 2**27)
        if static_ok:
            path = "static"
        elif bound_ok:
            pick = np.unique(np.linspace(0, shape[0] - 1, num=min(shape[0], 32)).astype(np.int64))
            sample = _two_level_flags(a.like(a.data[pick]), b, model, chunk)
            path = "bound" if sample[0].mean() <= 0.25 else "sequential"
            checked = sample if pick.size == shape[0] else None
        else:
            path = "sequential"
    if path == "static":
        if not static_ok:
            raise ValueError("path: 'static' needs the bounds to fit both registers")
        return exact_sum(a, b), None, None

    def seq(sa: Operand, sb: Operand):
        return two_level_sequential(sa, sb, tile, pb, po, ab, ao)

    if path == "sequential":
        return seq(a, b)
    if k_len * max_prod >= 2**63:
        raise ValueError("path: 'bound' needs K*max|a|*max|b| < 2^63")
    flags, total = checked or _two_level_flags(a, b, model, chunk)
    ev_p, ev_a = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    rows = np.flatnonzero(flags.any(axis=1))
    if rows.size:
        cols = np.flatnonzero(flags.any(axis=0))
        sub = seq(a.like(np.ascontiguousarray(a.data[rows])),
                  b.like(np.ascontiguousarray(b.data[:, cols])))
        for full, part in zip((total, ev_p, ev_a), sub, strict=True):
            full[np.ix_(rows, cols)] = part
    return total, ev_p, ev_a


def array_gemm(a: object, b: object, model: ArrayModel, *, w_bits: int = 8, a_bits: int = 8,
               _path: str = "auto") -> ArrayGemmResult:
    """A (M, K) x B (K, N) on ``model``; see the module docstring for the exact add order."""
    if not isinstance(model, ArrayModel):
        raise ValueError(f"model: expected an ArrayModel, got {type(model).__name__}")
    op_a, op_b = check_operand(a, "a"), check_operand(b, "b")
    if op_a.data.shape[1] != op_b.data.shape[0]:
        raise ValueError(f"b: shape {op_b.data.shape} does not match a's {op_a.data.shape}")
    op_a, op_b = _check_bits(op_a, a_bits, "a_bits", "a"), _check_bits(op_b, w_bits, "w_bits", "b")
    if model.dataflow == "output_stationary":
        values, ev_a = matmul_ops(op_a, op_b, model.acc_bits, model.acc_overflow, _path)
        ev_p = None
        tile_m, tile_n = model.rows, model.cols
    else:
        values, ev_p, ev_a = _two_level(op_a, op_b, model, _path)
        m_rows, n_cols = values.shape
        if model.dataflow == "weight_stationary":
            tile_m, tile_n = max(m_rows, 1), model.cols
        else:
            tile_m, tile_n = model.cols, max(n_cols, 1)
    both = sum(e for e in (ev_p, ev_a) if e is not None)
    if isinstance(both, np.ndarray):
        tiles = tile_sums(both, tile_m, tile_n)
    else:  # no events possible: skip touching (M, N) arrays
        tiles = np.zeros((-(-values.shape[0] // tile_m), -(-values.shape[1] // tile_n)),
                         dtype=np.int64)
    ev_p = zero_events(values.shape) if ev_p is None else ev_p
    ev_a = zero_events(values.shape) if ev_a is None else ev_a
    return ArrayGemmResult(values, ev_p, ev_a, tiles)

