"""Rounding and overflow modes: names, exact semantics, and the small integer ids the kernels use.

Every narrowing in fxpsim names one rounding mode and one overflow mode. Rounding maps an exact
real value ``v`` (``x * 2**frac`` for :func:`~fxpsim.fixedpoint.quantize`,
``acc * multiplier / 2**shift`` for :func:`~fxpsim.fixedpoint.requantize`) to an integer;
overflow then maps that (unbounded) integer into the code range of the output format.

Write ``v = n + f`` with ``n = floor(v)`` and the discarded fraction ``f`` in ``[0, 1)``
(``f`` is what the discarded low bits hold in two's complement). "Inexact" means ``f != 0``.

Rounding modes
==============

================== =====================================================================
name               result
================== =====================================================================
``floor``          ``n`` (toward −∞; two's-complement truncation of the low bits)
``ceil``           ``n + 1`` if inexact else ``n`` (toward +∞)
``trunc``          toward 0: ``ceil`` for ``v < 0``, ``floor`` for ``v >= 0``
``away``           away from 0: ``floor`` for ``v < 0``, ``ceil`` for ``v >= 0``
``half_up``        nearest; ties (``f == 1/2``) toward +∞
``half_down``      nearest; ties toward −∞
``half_zero``      nearest; ties toward 0
``half_away``      nearest; ties away from 0 (C ``round``; TFLite rounding divide)
``half_even``      nearest; ties to the even integer (IEEE default, ``np.rint``)
``half_odd``       nearest; ties to the odd integer
``jam``            ``n | 1``: floor with the LSB forced to 1, *even when exact* (von Neumann
                   rounding on the two's-complement code; ``v = 4`` gives 5)
``jam_unbiased``   ``n | 1`` if inexact, else ``n`` (exact values are kept)
``stochastic``     ``n + 1`` iff ``R < floor(f * 2**r)``, else ``n``; ``R`` is a uniform
                   ``r``-bit integer from the RNG (``r = random_bits``): the top ``r``
                   discarded bits are compared with ``r`` random bits, as SR hardware does.
                   P(up) = ``floor(f * 2**r) / 2**r``, so the expected error is the
                   truncation bias ``-(f - floor(f * 2**r) / 2**r)`` in ``(-2**-r, 0]`` LSB
                   (0 when ``f`` has at most ``r`` bits). Exact values never move.
``stochastic_equal`` ``n + 1`` iff inexact and the single random bit ``R`` is 0 (``R < 1``:
                   the ``stochastic`` rule with ``f`` replaced by 1/2 and ``r = 1``); up with
                   probability 1/2 whatever ``f`` is. Uses 1 random bit per element.
================== =====================================================================

Aliases (the names used in hardware configs): ``rne`` = ``half_even``, ``rna`` =
``half_away``, ``rtz`` = ``trunc``.

Stochastic modes draw exactly one random number per element, in C order of the input, whether
or not the element is exact (a hardware RNG steps once per rounding).

Overflow modes
==============

With ``lo..hi`` the code range (signed: ``-2**(bits-1)..2**(bits-1)-1``, unsigned:
``0..2**bits-1``) and ``q`` the rounded, unbounded integer:

====================== ================================================================
name                   result
====================== ================================================================
``wrap``               keep the low ``bits`` bits: ``((q - lo) % 2**bits) + lo``
                       (two's complement for signed, modulo ``2**bits`` for unsigned)
``saturate``           clamp to ``[lo, hi]``
``saturate_symmetric`` signed: clamp to ``[-hi, hi]`` (``-2**(bits-1)`` is never produced);
                       unsigned: same as ``saturate``
``numeric_std``        signed: keep the sign of ``q`` and its low ``bits-1`` bits (VHDL
                       ``numeric_std.resize`` on ``signed``): ``(q & (2**(bits-1)-1)) -
                       (2**(bits-1) if q < 0 else 0)``; unsigned: same as ``wrap``
====================== ================================================================

An element *overflows* when ``q`` lies outside the range the mode can represent unchanged
(``[lo, hi]``; for signed ``saturate_symmetric``, ``[-hi, hi]``, so ``q = -2**(bits-1)``
counts). Overflows are counted (``return_stats=True``), never silent.
"""

from __future__ import annotations

# One list for the whole project: it lives in the import-light vocabulary module so run
# options are validated without Numba; the kernel ids below index into it.
from fxpsim.vocab import ROUNDING_ALIASES  # noqa: E402, F401
from fxpsim.vocab import ROUNDING_CANONICAL as ROUNDING_MODES  # noqa: E402

OVERFLOW_MODES: tuple[str, ...] = ("wrap", "saturate", "saturate_symmetric", "numeric_std")

# Integer ids used inside the Numba kernels (index into the tuples above).
R_FLOOR, R_CEIL, R_TRUNC, R_AWAY = 0, 1, 2, 3
R_HALF_UP, R_HALF_DOWN, R_HALF_ZERO, R_HALF_AWAY, R_HALF_EVEN, R_HALF_ODD = 4, 5, 6, 7, 8, 9
R_JAM, R_JAM_UNBIASED, R_STOCHASTIC, R_STOCHASTIC_EQUAL = 10, 11, 12, 13
O_WRAP, O_SATURATE, O_SATURATE_SYMMETRIC, O_NUMERIC_STD = 0, 1, 2, 3

STOCHASTIC_MODES = frozenset({"stochastic", "stochastic_equal"})


def canonical_rounding(rounding: str) -> str:
    """The canonical name of ``rounding`` (aliases resolved); ValueError naming ``rounding``."""
    if isinstance(rounding, str):
        name = ROUNDING_ALIASES.get(rounding, rounding)
        if name in ROUNDING_MODES:
            return name
    valid = ", ".join(ROUNDING_MODES + tuple(ROUNDING_ALIASES))
    raise ValueError(f"rounding: unknown rounding mode {rounding!r}; valid: {valid}")


def canonical_overflow(overflow: str) -> str:
    """Check ``overflow`` is a known overflow mode; ValueError naming ``overflow``."""
    if isinstance(overflow, str) and overflow in OVERFLOW_MODES:
        return overflow
    raise ValueError(
        f"overflow: unknown overflow mode {overflow!r}; valid: {', '.join(OVERFLOW_MODES)}"
    )


def rounding_id(rounding: str) -> int:
    """Kernel id of a rounding mode name or alias."""
    return ROUNDING_MODES.index(canonical_rounding(rounding))


def overflow_id(overflow: str) -> int:
    """Kernel id of an overflow mode name."""
    return OVERFLOW_MODES.index(canonical_overflow(overflow))


def check_random_bits(random_bits: int) -> int:
    """``random_bits`` must be an int in 1..32; ValueError naming it otherwise."""
    if isinstance(random_bits, bool) or not isinstance(random_bits, int) or not (
        1 <= random_bits <= 32
    ):
        raise ValueError(f"random_bits: must be an int in 1..32, got {random_bits!r}")
    return random_bits
