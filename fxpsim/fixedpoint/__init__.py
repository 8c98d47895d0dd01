"""Bit-accurate fixed-point arithmetic: formats, rounding/overflow modes, hardware RNGs,
quantize/requantize output stages and integer matmul (Numba kernels with Python-int twins in
:mod:`fxpsim.fixedpoint.oracle`). Mode semantics: :mod:`fxpsim.fixedpoint.modes`."""

from .formats import QFormat, QuantResult
from .gemm import matmul
from .modes import OVERFLOW_MODES, ROUNDING_ALIASES, ROUNDING_MODES
from .quantize import dequantize, quantize
from .requantize import quantize_multiplier, requantize, requantize_fp32
from .rng import DEFAULT_POLYNOMIALS, LFSR, HardwareRNG, Philox

__all__ = [
    "DEFAULT_POLYNOMIALS",
    "HardwareRNG",
    "LFSR",
    "OVERFLOW_MODES",
    "Philox",
    "QFormat",
    "QuantResult",
    "ROUNDING_ALIASES",
    "ROUNDING_MODES",
    "dequantize",
    "matmul",
    "quantize",
    "quantize_multiplier",
    "requantize",
    "requantize_fp32",
]
