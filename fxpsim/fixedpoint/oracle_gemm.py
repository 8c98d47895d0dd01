"""Plain-Python-int twins of the GEMM kernels (nested loops; tiny shapes only).

These define the semantics the fast kernels must reproduce exactly:

- :func:`register_add`: one add into a signed ``bits`` register followed by the overflow
  mode; returns the new value and whether the mode acted (an overflow event).
- :func:`matmul_oracle`: output-stationary order, every output adds ``a[m,k]*b[k,n]`` for
  k = 0..K-1 into its own register starting at 0.
- :func:`two_level_oracle`: weight/input-stationary order: the k axis is cut into
  consecutive tiles of ``tile`` k's; inside a tile a ``psum_bits`` register (starting at 0)
  adds the products in k order; each tile's psum is then added, tile after tile, into an
  ``acc_bits`` accumulator (starting at 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

OVERFLOW_MODES = ("wrap", "saturate", "saturate_symmetric", "numeric_std")


def register_add(acc: int, p: int, bits: int, overflow: str) -> tuple[int, bool]:
    """``acc + p`` narrowed to a signed ``bits`` register; returns (value, event).

    wrap: two's complement low ``bits`` bits; saturate: clamp to [-2^(b-1), 2^(b-1)-1];
    saturate_symmetric: clamp to +-(2^(b-1)-1); numeric_std: keep the sign of the unbounded
    sum and its low b-1 bits (VHDL ``resize`` of a signed). The event is True when the
    unbounded sum was outside the register's range (the mode changed the value).
    """
    s = acc + p
    hi = (1 << (bits - 1)) - 1
    lo = -hi if overflow == "saturate_symmetric" else -(1 << (bits - 1))
    if lo <= s <= hi:
        return s, False
    if overflow in ("saturate", "saturate_symmetric"):
        return (hi if s > hi else lo), True
    if overflow == "wrap":
        r = s % (1 << bits)
        return (r - (1 << bits) if r > hi else r), True
    if overflow == "numeric_std":
        low = s % (1 << (bits - 1))
        return (low - (1 << (bits - 1)) if s < 0 else low), True
    raise ValueError(f"overflow: unknown mode {overflow!r}")


def _as_lists(x: object) -> list[list[int]]:
    return [[int(v) for v in row] for row in x]  # type: ignore[attr-defined]


def matmul_oracle(a: Sequence, b: Sequence, acc_bits: int,
                  overflow: str) -> tuple[list[list[int]], list[list[int]]]:
    """(values, events) as nested lists of Python ints; output-stationary k order."""
    a_l, b_l = _as_lists(a), _as_lists(b)
    m_rows, k_len = len(a_l), len(b_l)
    n_cols = int(np.shape(b)[1])
    values = [[0] * n_cols for _ in range(m_rows)]
    events = [[0] * n_cols for _ in range(m_rows)]
    for m in range(m_rows):
        for n in range(n_cols):
            acc, ev = 0, 0
            for k in range(k_len):
                acc, e = register_add(acc, a_l[m][k] * b_l[k][n], acc_bits, overflow)
                ev += e
            values[m][n] = acc
            events[m][n] = ev
    return values, events


def two_level_oracle(a: Sequence, b: Sequence, tile: int, psum_bits: int, psum_overflow: str,
                     acc_bits: int, acc_overflow: str
                     ) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """(values, psum events, accumulator events); see the module docstring for the order."""
    a_l, b_l = _as_lists(a), _as_lists(b)
    m_rows, k_len = len(a_l), len(b_l)
    n_cols = int(np.shape(b)[1])
    values = [[0] * n_cols for _ in range(m_rows)]
    ev_p = [[0] * n_cols for _ in range(m_rows)]
    ev_a = [[0] * n_cols for _ in range(m_rows)]
    for m in range(m_rows):
        for n in range(n_cols):
            acc = 0
            for k0 in range(0, k_len, tile):
                psum = 0
                for k in range(k0, min(k0 + tile, k_len)):
                    psum, e = register_add(psum, a_l[m][k] * b_l[k][n], psum_bits,
                                           psum_overflow)
                    ev_p[m][n] += e
                acc, e = register_add(acc, psum, acc_bits, acc_overflow)
                ev_a[m][n] += e
            values[m][n] = acc
    return values, ev_p, ev_a
