"""Exact integer GEMM with a hardware accumulator (output-stationary order).

``matmul(a, b, acc_bits, overflow)`` returns, for every output, the value of a signed
``acc_bits`` register that starts at 0 and adds ``a[m,k]*b[k,n]`` for k = 0..K-1 in that
order, applying ``overflow`` after every add (one PE of an output-stationary array). The
result is bit-identical to :func:`fxpsim.fixedpoint.oracle_gemm.matmul_oracle`; three exact
paths get there:

1. ``static``: if K * max|a| * max|b| fits the register, no prefix can leave its range: the
   value is the exact sum (``torch._int_mm`` when both operands fit int8, else float64 BLAS
   on k-chunks short enough that every partial sum is an integer below 2^53), events = 0.
2. ``bound``: per output and k-chunk j, every prefix inside chunk j lies in
   [S_<j + N_j, S_<j + P_j] (S = exact chunk sums, P/N = sums of the positive/negative
   products, themselves GEMMs of the operands' sign parts). Outputs whose bounds stay in
   range take the exact sum with 0 events; the others go to the sequential kernel.
3. ``sequential``: the Numba kernel in hardware order (gemm_kernels).

Wrap mode is no exception: its value is the sum mod 2^bits, but its event count depends on
the order, so it goes through the same bound check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

from fxpsim.fixedpoint import gemm_kernels as _k
from fxpsim.fixedpoint.gemm_kernels import MODE_CODES, register_range

OVERFLOW_MODES = tuple(MODE_CODES)
_PATHS = ("auto", "static", "bound", "sequential")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class GemmResult:
    """``values``: (M, N) register contents (int32 for registers of <= 32 bits, else int64);
    ``events``: int64 (M, N) number of adds at
    which the register left its range (the overflow mode acted)."""

    values: np.ndarray
    events: np.ndarray

    @property
    def total_events(self) -> int:
        return int(self.events.sum())


@dataclass(frozen=True)
class Operand:
    """A validated GEMM operand: the array, and bounds lo <= data <= hi (tight for a checked
    input, inherited -- so still valid -- for slices of it); max_abs = max(-lo, hi)."""

    data: np.ndarray
    lo: int
    hi: int

    @property
    def max_abs(self) -> int:
        return max(-self.lo, self.hi, 0)

    def like(self, data: np.ndarray) -> Operand:
        """Another array whose values lie within this operand's bounds (a slice of it)."""
        return Operand(data, self.lo, self.hi)


def check_operand(x: object, name: str, ndim: int = 2) -> Operand:
    """Validate integer codes that fit int32; ValueError naming ``name`` otherwise.

    For dtypes of at most 32 bits the dtype's limits serve as (loose, valid) bounds and no
    pass over the data is made; :func:`tighten` computes the actual min/max when a proof
    needs them. Wider dtypes are scanned here to check the int32 range."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        return Operand(arr, 0, 0)
    info = np.iinfo(arr.dtype)
    if info.min >= _INT32_MIN and info.max <= _INT32_MAX:
        return Operand(arr, int(info.min), int(info.max))
    lo, hi = int(arr.min()), int(arr.max())
    if lo < _INT32_MIN or hi > _INT32_MAX:
        raise ValueError(f"{name}: values must fit int32, got range [{lo}, {hi}]")
    return Operand(arr, lo, hi)


def tighten(op: Operand) -> Operand:
    """The operand with its actual min/max as bounds."""
    if op.data.size == 0:
        return Operand(op.data, 0, 0)
    return Operand(op.data, int(op.data.min()), int(op.data.max()))


def check_acc(bits: object, overflow: object, bits_name: str = "acc_bits",
              overflow_name: str = "overflow") -> None:
    """Validate a register width (2..64) and overflow mode."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 64:
        raise ValueError(f"{bits_name}: expected an integer in [2, 64], got {bits!r}")
    if overflow not in MODE_CODES:
        raise ValueError(f"{overflow_name}: expected one of {OVERFLOW_MODES}, got {overflow!r}")


def zero_events(shape: tuple[int, ...]) -> np.ndarray:
    """A read-only int64 zero array that allocates nothing (events proven absent)."""
    return np.broadcast_to(np.zeros((), dtype=np.int64), shape)


def _fits_int8(op: Operand) -> bool:
    return op.lo >= -128 and op.hi <= 127


def exact_sum(a: Operand, b: Operand, narrow: bool = False) -> np.ndarray:
    """Sum over k of a[m,k]*b[k,n] modulo 2^64 as int64 (exact whenever it fits int64).
    ``narrow``: int32 values are welcome where they are proven to fit (one ``_int_mm``
    chunk: its int32 result is returned as is, without an int64 widening pass)."""
    m_rows, k_len = a.data.shape
    n_cols = b.data.shape[1]
    max_prod = a.max_abs * b.max_abs
    if m_rows == 0 or n_cols == 0 or k_len == 0 or max_prod == 0:
        return np.zeros((m_rows, n_cols), dtype=np.int64)
    if _fits_int8(a) and _fits_int8(b):
        import torch

        ta = torch.from_numpy(np.ascontiguousarray(a.data, np.int8))
        tb = torch.from_numpy(np.ascontiguousarray(b.data, np.int8))
        chunk = _INT32_MAX // max_prod  # the int32 inside _int_mm cannot overflow
        if narrow and k_len <= chunk:
            return torch._int_mm(ta, tb).numpy()
        # torch's int32 -> int64 widening is multi-threaded (numpy's astype is not)
        out = torch._int_mm(ta[:, :chunk], tb[:chunk]).to(torch.int64).numpy()
        for k0 in range(chunk, k_len, chunk):
            out += torch._int_mm(ta[:, k0:k0 + chunk], tb[k0:k0 + chunk]).numpy()
        return out
    out = np.zeros((m_rows, n_cols), dtype=np.int64)
    if max_prod <= 2**53:
        chunk = 2**53 // max_prod  # every partial sum of a chunk is an integer < 2^53
        af = a.data.astype(np.float64)
        bf = b.data.astype(np.float64)
        for k0 in range(0, k_len, chunk):
            out += (af[:, k0:k0 + chunk] @ bf[k0:k0 + chunk]).astype(np.int64)
        return out
    return _k.wrapping_matmul(np.ascontiguousarray(a.data, np.int64),
                              np.ascontiguousarray(b.data, np.int64))


def _sign_parts(op: Operand) -> tuple[Operand, Operand]:
    pos = np.maximum(op.data, 0).astype(op.data.dtype, copy=False)
    neg = np.minimum(op.data, 0).astype(op.data.dtype, copy=False)
    return Operand(pos, 0, max(op.hi, 0)), Operand(neg, min(op.lo, 0), 0)


def chunk_sums(a: Operand, b: Operand, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, N): sums of the positive / negative products a[m,k]*b[k,n] for k in [k0, k1).

    One GEMM: [a+ | a-] (M, 2k) x [[b+, b-], [b-, b+]] (2k, 2N) = [P | N].
    """
    ap, an = _sign_parts(a.like(a.data[:, k0:k1]))
    bp, bn = _sign_parts(b.like(b.data[k0:k1]))
    lhs = Operand(np.concatenate([ap.data, an.data], axis=1), min(a.lo, 0), max(a.hi, 0))
    rhs = Operand(np.block([[bp.data, bn.data], [bn.data, bp.data]]), min(b.lo, 0), max(b.hi, 0))
    both = exact_sum(lhs, rhs)
    n_cols = b.data.shape[1]
    return both[:, :n_cols], both[:, n_cols:]


def static_safe(k_len: int, max_prod: int, bits: int, overflow: str) -> bool:
    """True when no prefix of K products of magnitude <= max_prod can leave the register."""
    lo, hi = register_range(bits, overflow)
    return k_len * max_prod <= min(hi, -lo)


def default_chunk(k_len: int, align: int = 1) -> int:
    """k-chunk for the bound check: ~16 chunks, at least 32 k's, a multiple of ``align``."""
    chunk = max(32, -(-k_len // 16))
    return -(-chunk // align) * align


def bound_flags(a: Operand, b: Operand, bits: int, overflow: str, chunk: int,
                inner: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flags, exact sums): flags[m,n] is True where some prefix MAY leave the register.

    ``inner``: the range of a register that restarts at 0 every chunk (the psum of a
    two-level array, with chunks aligned to its tiles); its prefixes lie in [N_J, P_J].
    Needs K * max|a*b| < 2^63 so every bound is exact in int64 (the caller checks).
    """
    lo, hi = register_range(bits, overflow)
    k_len = a.data.shape[1]
    shape = (a.data.shape[0], b.data.shape[1])
    total = np.zeros(shape, dtype=np.int64)
    flags = np.zeros(shape, dtype=bool)
    for k0 in range(0, k_len, chunk):
        pos, neg = chunk_sums(a, b, k0, min(k0 + chunk, k_len))
        flags |= (total + neg < lo) | (total + pos > hi)
        if inner is not None:
            flags |= (neg < inner[0]) | (pos > inner[1])
        total += pos + neg
    return flags, total


def _fill_flagged(a: Operand, b: Operand, flags: np.ndarray, values: np.ndarray,
                  events: np.ndarray, run) -> None:
    """Run ``run(sub_a, sub_b) -> (values, events)`` on the rows x cols holding flags."""
    rows = np.flatnonzero(flags.any(axis=1))
    cols = np.flatnonzero(flags.any(axis=0))
    if rows.size == 0:
        return
    sub_a = a.like(np.ascontiguousarray(a.data[rows]))
    sub_b = b.like(np.ascontiguousarray(b.data[:, cols]))
    sub_v, sub_e = run(sub_a, sub_b)
    values[np.ix_(rows, cols)] = sub_v
    events[np.ix_(rows, cols)] = sub_e


def _sample_flag_fraction(a: Operand, b: Operand, bits: int, overflow: str, chunk: int) -> float:
    """Fraction of flagged outputs on <= 32 evenly spaced rows (decides if `bound` pays)."""
    m_rows = a.data.shape[0]
    pick = np.unique(np.linspace(0, m_rows - 1, num=min(m_rows, 32)).astype(np.int64))
    sample = a.like(a.data[pick])
    # an output whose exact sum lies outside the register had an event for sure: when most
    # do (e.g. full-range random data), skip the chunked check (one GEMM instead of ~16)
    lo, hi = register_range(bits, overflow)
    total = exact_sum(sample, b)
    certain = float(((total < lo) | (total > hi)).mean()) if total.size else 0.0
    if certain > 0.5:
        return certain
    flags, _ = bound_flags(sample, b, bits, overflow, chunk)
    return float(flags.mean()) if flags.size else 0.0


def matmul_ops(a: Operand, b: Operand, acc_bits: int, overflow: str, path: str = "auto",
               chunk: int | None = None, narrow: bool = False
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, events) of checked operands; events is None when provably all zero (the
    static path), so callers that do not need them skip an (M, N) allocation. ``narrow``:
    see :func:`exact_sum`."""
    k_len = a.data.shape[1]
    if not static_safe(k_len, a.max_abs * b.max_abs, acc_bits, overflow):
        a, b = tighten(a), tighten(b)  # the proofs and the lane choice need actual bounds
    max_prod = a.max_abs * b.max_abs

    def seq(sa: Operand, sb: Operand) -> tuple[np.ndarray, np.ndarray]:
        return _k.sequential(sa.data, sb.data, acc_bits, overflow, sa.max_abs, sb.max_abs)

    safe = static_safe(k_len, max_prod, acc_bits, overflow)
    bound_ok = k_len * max_prod < 2**63
    if path == "static" and not safe:
        raise ValueError("path: 'static' needs K*max|a|*max|b| to fit the accumulator")
    if path == "bound" and not bound_ok:
        raise ValueError("path: 'bound' needs K*max|a|*max|b| < 2^63")
    if path == "auto":
        if safe:
            path = "static"
        elif bound_ok and k_len >= 64:
            chunk = chunk or default_chunk(k_len)
            frac = _sample_flag_fraction(a, b, acc_bits, overflow, chunk)
            path = "bound" if frac <= 0.5 else "sequential"
        else:
            path = "sequential"
    if path == "static":
        return exact_sum(a, b, narrow), None
    if path == "sequential":
        return seq(a, b)
    fine = chunk or default_chunk(k_len)
    return _bound_levels(a, b, acc_bits, overflow, [0, fine], seq)


def abs_flags(a: Operand, b: Operand, bits: int, overflow: str
              ) -> tuple[np.ndarray, np.ndarray]:
    """(flags, exact sums) from the whole-K bound |prefix| <= sum_k |a[m,k]|*|b[k,n]|: two
    GEMMs, cheaper than the chunked check and enough for data far from the rails."""
    lo, hi = register_range(bits, overflow)
    mag = exact_sum(Operand(np.abs(a.data.astype(np.int64)), 0, a.max_abs),
                    Operand(np.abs(b.data.astype(np.int64)), 0, b.max_abs))
    return mag > min(hi, -lo), exact_sum(a, b)


def _bound_levels(a: Operand, b: Operand, bits: int, overflow: str, chunks: list[int], seq
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bound check at chunks[0] (0: the whole-K |a|.|b| bound, else the chunked P/N check);
    flagged outputs retry with chunks[1:], then go to the sequential kernel."""
    if chunks[0] == 0:
        flags, total = abs_flags(a, b, bits, overflow)
    else:
        flags, total = bound_flags(a, b, bits, overflow, chunks[0])
    events = np.zeros(total.shape, dtype=np.int64)
    if len(chunks) > 1:
        def run(sa: Operand, sb: Operand) -> tuple[np.ndarray, np.ndarray]:
            return _bound_levels(sa, sb, bits, overflow, chunks[1:], seq)
    else:
        run = seq
    _fill_flagged(a, b, flags, total, events, run)
    return total, events


@overload
def matmul(a: object, b: object, acc_bits: int = 32, overflow: str = "saturate", *,
           return_events: Literal[False] = False, _path: str = "auto", _chunk: int | None = None
           ) -> np.ndarray: ...


@overload
def matmul(a: object, b: object, acc_bits: int = 32, overflow: str = "saturate", *,
           return_events: Literal[True], _path: str = "auto", _chunk: int | None = None
           ) -> GemmResult: ...


def matmul(a: object, b: object, acc_bits: int = 32, overflow: str = "saturate", *,
           return_events: bool = False, _path: str = "auto", _chunk: int | None = None
           ) -> np.ndarray | GemmResult:
    """Integer GEMM in a signed ``acc_bits`` accumulator with ``overflow`` after every add.

    ``a`` (M, K) and ``b`` (K, N) are integer codes (any int dtype, values within int32).
    Returns (M, N) values (int32 when ``acc_bits`` <= 32, as the register holds them;
    int64 otherwise), or a :class:`GemmResult` with per-output event counts when
    ``return_events``. ``_path``/``_chunk`` force an internal path (tests only).
    """
    op_a = check_operand(a, "a")
    op_b = check_operand(b, "b")
    if op_a.data.shape[1] != op_b.data.shape[0]:
        raise ValueError(f"b: shape {op_b.data.shape} does not match a's {op_a.data.shape} "
                         "(a.shape[1] must equal b.shape[0])")
    check_acc(acc_bits, overflow)
    if _path not in _PATHS:
        raise ValueError(f"_path: expected one of {_PATHS}, got {_path!r}")
    narrow = int(acc_bits) <= 32
    values, events = matmul_ops(op_a, op_b, int(acc_bits), overflow, _path, _chunk, narrow)
    if narrow:  # free on the direct _int_mm path, one cast after the exact kernels
        values = values.astype(np.int32, copy=False)
    if return_events:
        return GemmResult(values, zero_events(values.shape) if events is None else events)
    return values
