"""QFormat limits and validation, mode names, and the public fixedpoint API surface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fxpsim.fixedpoint as fx
from fxpsim.fixedpoint.formats import QFormat, QuantResult
from fxpsim.fixedpoint.modes import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    canonical_rounding,
    overflow_id,
    rounding_id,
)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16, 31, 32])
def test_code_ranges(bits: int) -> None:
    s = QFormat(bits, 0)
    u = QFormat(bits, 0, signed=False)
    assert (s.lo, s.hi) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert (u.lo, u.hi) == (0, 2**bits - 1)


def test_values_and_repr() -> None:
    q44 = QFormat(8, 4)
    assert q44.lsb == 0.0625
    assert (q44.min_value, q44.max_value) == (-8.0, 7.9375)
    assert str(q44) == "sQ4.4" and str(QFormat(8, 8, signed=False)) == "uQ0.8"
    assert QFormat(bits=np.int64(8), frac=np.int32(-3)).bits == 8
    assert hash(QFormat(8, 4)) == hash(QFormat(8, 4, True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        q44.bits = 4  # type: ignore[misc]


@pytest.mark.parametrize("kwargs,name", [
    ({"bits": 1}, "bits"), ({"bits": 33}, "bits"), ({"bits": 8.0}, "bits"),
    ({"bits": True}, "bits"), ({"bits": 8, "frac": 65}, "frac"),
    ({"bits": 8, "frac": -65}, "frac"), ({"bits": 8, "signed": "yes"}, "signed"),
])
def test_qformat_validation(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        QFormat(**kwargs)


def test_mode_names() -> None:
    assert len(ROUNDING_MODES) == 14 and len(set(ROUNDING_MODES)) == 14
    assert OVERFLOW_MODES == ("wrap", "saturate", "saturate_symmetric", "numeric_std")
    assert canonical_rounding("rne") == "half_even"
    assert rounding_id("rna") == ROUNDING_MODES.index("half_away")
    assert rounding_id("rtz") == ROUNDING_MODES.index("trunc")
    with pytest.raises(ValueError, match="rounding: unknown rounding mode 'RNE'"):
        rounding_id("RNE")
    with pytest.raises(ValueError, match="overflow"):
        overflow_id("saturating")
    with pytest.raises(ValueError, match="rounding"):
        rounding_id(None)  # type: ignore[arg-type]


def test_public_api() -> None:
    for name in ("QFormat", "quantize", "requantize", "dequantize", "QuantResult",
                 "quantize_multiplier", "requantize_fp32", "LFSR", "Philox",
                 "ROUNDING_MODES", "OVERFLOW_MODES", "matmul"):
        assert hasattr(fx, name), name
    r = fx.quantize(np.array([0.5]), fx.QFormat(8, 4), return_stats=True)
    assert isinstance(r, QuantResult) and r.codes.tolist() == [8]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_overflow = 3  # type: ignore[misc]
