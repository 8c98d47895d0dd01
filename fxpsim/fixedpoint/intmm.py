"""The MAC-array GEMM as the training layers call it: torch code tensors in, the exact
register contents of :func:`fxpsim.fixedpoint.macarray.array_gemm` out.

:func:`array_matmul` takes one exact shortcut before the array model: ``torch._int_mm``
(exact int32 dot products) when ``terms·max|a|·max|b|`` fits every register the array uses
and int32 (:func:`static_limit`). Then no partial sum, in any order, leaves a register, so
the hardware value is the exact sum and there are no overflow events -- the same proof
``array_gemm``'s own static path rests on, minus its int64 widening. Everything else (narrow
or overflowing accumulators, wide codes) runs ``array_gemm``: one implementation of each
dataflow's add order.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from fxpsim.fixedpoint.gemm_kernels import register_range
from fxpsim.fixedpoint.macarray import ArrayModel, array_gemm

INT32_MAX = 2**31 - 1


def static_limit(model: ArrayModel) -> int:
    """Largest K·max|a|·max|b| for which no partial sum can leave any register the array
    uses (accumulator, and the psum register of a weight/input-stationary array) or int32."""
    lo, hi = register_range(model.acc_bits, model.acc_overflow)
    limit = min(INT32_MAX, hi, -lo)
    if model.dataflow != "output_stationary":
        plo, phi = register_range(model.psum_bits_eff, model.psum_overflow_eff)
        limit = min(limit, phi, -plo)
    return limit


@cache
def int_mm_is_exact() -> bool:
    """Whether ``torch._int_mm`` returns exact int32 sums here (checked once per process on
    operands that would expose saturating int16 pair sums or int8 compensation errors)."""
    k = 512
    a = np.full((24, k), 127, dtype=np.int8)
    a[1::2] = -127
    a[2::3, ::2] = -128
    b = np.full((k, 24), 127, dtype=np.int8)
    b[:, 1::2] = -127
    b[::3] = -128
    got = torch._int_mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    return bool(np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)))


def static_ok(terms: int, max_a: int, max_b: int, model: ArrayModel, int8: bool = True) -> bool:
    """True when ``terms`` products of magnitude <= max_a·max_b can be summed by
    ``torch._int_mm`` with the exact result of every register ``model`` uses (no events)."""
    return int8 and terms * max_a * max_b <= static_limit(model) and int_mm_is_exact()


def operand_bits(max_abs: int) -> int:
    """The narrowest operand precision ``array_gemm`` accepts for codes within ±max_abs."""
    return next(b for b in (4, 8, 16) if max_abs <= (1 << (b - 1)) - 1)


def array_matmul(a: torch.Tensor, b: torch.Tensor, model: ArrayModel, max_a: int, max_b: int,
                 terms: int | None = None, out: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, int]:
    """(values (M, N) as int32 or int64, overflow events) of the codes ``a`` (M, K) x ``b``
    (K, N) (any strides; ``a`` streamed, ``b`` mapped on the array) on ``model``.
    ``max_a``/``max_b`` bound |a| and |b|; ``terms`` bounds the nonzero products per output
    (default K). ``out``: an int32 (M, N) buffer the direct path may write (ignored when it
    does not fit)."""
    int8 = a.dtype == torch.int8 and b.dtype == torch.int8
    if static_ok(a.shape[1] if terms is None else terms, max_a, max_b, model, int8):
        shape = (a.shape[0], b.shape[1])
        if out is not None and tuple(out.shape) == shape and out.dtype == torch.int32 \
                and out.is_contiguous():
            return torch._int_mm(a, b, out=out), 0
        return torch._int_mm(a, b), 0
    if a.shape[0] < b.shape[1]:
        # the transposed problem adds every output's products in the same k order (same
        # values and events) and gives the exact GEMMs of the bound checks a tall operand
        # views, not copies: the kernels lay operands out as they need them
        res = array_gemm(b.numpy().T, a.numpy().T,
                         model, a_bits=operand_bits(max_b), w_bits=operand_bits(max_a))
        return torch.from_numpy(np.ascontiguousarray(res.values.T)), res.total_events
    res = array_gemm(np.ascontiguousarray(a.numpy()), np.ascontiguousarray(b.numpy()), model,
                     a_bits=operand_bits(max_a), w_bits=operand_bits(max_b))
    return torch.from_numpy(res.values), res.total_events
