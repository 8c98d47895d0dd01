"""Fixed-point formats (:class:`QFormat`) and the result record of a narrowing (:class:`QuantResult`).

A ``QFormat(bits, frac, signed)`` code ``c`` (a Python/NumPy integer) stands for the real value
``c * 2**-frac``. Signed codes are two's complement in ``-2**(bits-1) .. 2**(bits-1)-1``;
unsigned codes are ``0 .. 2**bits-1``. ``bits`` is 2..32 and ``frac`` is -64..64: with these
limits every code times ``2**-frac`` is an exact float64, and scaling any float64 by
``2**frac`` is exact except for results below ``2**-1000`` in magnitude, which the quantize
kernel handles exactly (see :mod:`fxpsim.fixedpoint.quantize`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import SupportsIndex, cast

import numpy as np

MIN_BITS, MAX_BITS = 2, 32
MIN_FRAC, MAX_FRAC = -64, 64


def as_int(value: object, name: str) -> int:
    """``value`` as a Python int (bool rejected); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    try:
        return operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise ValueError(f"{name}: must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class QFormat:
    """Fixed-point format: ``bits`` total bits (sign included), ``frac`` fractional bits.

    ``value = code * 2**-frac``. ``frac`` may be negative (coarser than 1) or larger than
    ``bits`` (all-fraction formats).
    """

    bits: int
    frac: int = 0
    signed: bool = True

    def __post_init__(self) -> None:
        bits = as_int(self.bits, "bits")
        frac = as_int(self.frac, "frac")
        if not MIN_BITS <= bits <= MAX_BITS:
            raise ValueError(f"bits: must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
        if not MIN_FRAC <= frac <= MAX_FRAC:
            raise ValueError(f"frac: must be in {MIN_FRAC}..{MAX_FRAC}, got {frac}")
        if not isinstance(self.signed, bool | np.bool_):
            raise ValueError(f"signed: must be a bool, got {self.signed!r}")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "frac", frac)
        object.__setattr__(self, "signed", bool(self.signed))

    @property
    def lo(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def lsb(self) -> float:
        """Value of one code step, ``2**-frac``."""
        return 2.0**-self.frac

    @property
    def min_value(self) -> float:
        return self.lo * self.lsb

    @property
    def max_value(self) -> float:
        return self.hi * self.lsb

    def __str__(self) -> str:
        kind = "s" if self.signed else "u"
        return f"{kind}Q{self.bits - self.frac}.{self.frac}"


@dataclass(frozen=True)
class QuantResult:
    """Codes of a narrowing plus its event counts.

    ``n_overflow``: elements whose rounded value was outside the range the overflow mode keeps
    unchanged (before the mode acted). ``n_inexact``: elements whose rounding discarded a
    nonzero fraction.
    """

    codes: np.ndarray
    n_overflow: int
    n_inexact: int
