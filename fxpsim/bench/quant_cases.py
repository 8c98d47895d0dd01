"""Benchmark: fused quantize kernel vs plain NumPy round-and-clip on the same float64 input.

Reference: ``np.clip(np.rint(x * 16), -128, 127).astype(np.int64)`` (Q4.4, half-even,
saturate; four temporaries). Ratio = reference time / our time (speedup; > 1 is faster).
"""

from __future__ import annotations

import numpy as np

from fxpsim.bench.common import BenchRow, best_time
from fxpsim.fixedpoint.formats import QFormat
from fxpsim.fixedpoint.quantize import quantize
from fxpsim.fixedpoint.rng import LFSR, Philox

GROUP = "quantize"
TARGET = 10.0


def quant_rows(n: int = 10_000_000, seed: int = 0, repeats: int = 5) -> list[BenchRow]:
    """Rows: the NumPy reference, then Q4.4 half_even+saturate, stochastic (Philox; LFSR16
    with 1 and 16 lanes: cycle-table path; LFSR32 with 16 lanes: jump-ahead path)."""
    x = np.random.default_rng(seed).normal(0.0, 3.0, n)
    fmt = QFormat(8, 4)
    mel = n / 1e6

    def reference() -> np.ndarray:
        return np.clip(np.rint(x * 16), -128, 127).astype(np.int64)

    assert np.array_equal(reference(), quantize(x, fmt)), "fused kernel != NumPy reference"
    t_ref = best_time(reference, repeats)
    ref_name = "numpy rint+clip Q4.4"
    rows = [BenchRow(GROUP, ref_name, t_ref, mel / t_ref, "Melem/s")]
    philox = Philox(seed)
    lfsr = LFSR(16, seed=seed)
    lfsr16x16 = LFSR(16, seed=seed, lanes=16)
    lfsr32x16 = LFSR(32, seed=seed, lanes=16)
    cases = [
        ("Q4.4 half_even saturate", lambda: quantize(x, fmt, "half_even", "saturate")),
        ("Q4.4 stochastic philox r=16",
         lambda: quantize(x, fmt, "stochastic", "saturate", philox, random_bits=16)),
        ("Q4.4 stochastic lfsr16 r=8",
         lambda: quantize(x, fmt, "stochastic", "saturate", lfsr, random_bits=8)),
        ("Q4.4 stochastic lfsr16x16 r=8",
         lambda: quantize(x, fmt, "stochastic", "saturate", lfsr16x16, random_bits=8)),
        ("Q4.4 stochastic lfsr32x16 r=8",
         lambda: quantize(x, fmt, "stochastic", "saturate", lfsr32x16, random_bits=8)),
    ]
    for name, fn in cases:
        t = best_time(fn, repeats)
        rows.append(
            BenchRow(GROUP, name, t, mel / t, "Melem/s", reference=ref_name, ratio=t_ref / t,
                     target=TARGET, note=f"n={n}")
        )
    return rows


if __name__ == "__main__":  # pragma: no cover - manual run
    for row in quant_rows():
        print(row)
