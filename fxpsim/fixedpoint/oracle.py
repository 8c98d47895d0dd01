"""Plain-Python twins (Python ints and ``fractions.Fraction``) of every fixed-point kernel.

Slow and obviously correct: tests compare the Numba kernels against these exactly. Nothing here
imports the kernels; only the mode *names* are shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

from .formats import QFormat

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
_ALIASES = {"rne": "half_even", "rna": "half_away", "rtz": "trunc"}


# ----------------------------------------------------------------------------- rounding
def round_value(v: Fraction | int, rounding: str, rnd: int = 0, random_bits: int = 16) -> int:
    """Round the exact rational ``v`` to an integer (modes as in ``fxpsim.fixedpoint.modes``).

    ``rnd`` is the element's random number (``random_bits`` bits; 1 bit for
    ``stochastic_equal``).
    """
    v = Fraction(v)
    mode = _ALIASES.get(rounding, rounding)
    n = math.floor(v)
    f = v - n
    if f == 0:
        return n | 1 if mode == "jam" else n
    half = Fraction(1, 2)
    nearest_up = f > half
    tie = f == half
    table = {
        "floor": n,
        "ceil": n + 1,
        "trunc": n + 1 if v < 0 else n,
        "away": n if v < 0 else n + 1,
        "half_up": n + 1 if (nearest_up or tie) else n,
        "half_down": n + 1 if nearest_up else n,
        "half_zero": n + 1 if nearest_up or (tie and v < 0) else n,
        "half_away": n + 1 if nearest_up or (tie and v > 0) else n,
        "half_even": n + 1 if nearest_up or (tie and n % 2 == 1) else n,
        "half_odd": n + 1 if nearest_up or (tie and n % 2 == 0) else n,
        "jam": n | 1,
        "jam_unbiased": n | 1,
    }
    if mode in table:
        return table[mode]
    if mode == "stochastic":
        return n + 1 if rnd < math.floor(f * 2**random_bits) else n
    if mode == "stochastic_equal":
        return n + 1 if rnd == 0 else n
    raise ValueError(f"rounding: unknown mode {rounding!r}")


def overflow(q: int, fmt: QFormat, mode: str) -> tuple[int, bool]:
    """Cast integer ``q`` into ``fmt``'s code range; returns (code, overflowed)."""
    bits = fmt.bits
    lo, hi = fmt.lo, fmt.hi
    keep_lo = -hi if (fmt.signed and mode == "saturate_symmetric") else lo
    if keep_lo <= q <= hi:
        return q, False
    if mode in ("saturate", "saturate_symmetric"):
        return (keep_lo if q < keep_lo else hi), True
    if mode == "numeric_std" and fmt.signed:
        half = 2 ** (bits - 1)
        return q % half - (half if q < 0 else 0), True
    if mode in ("wrap", "numeric_std"):
        return (q - lo) % 2**bits + lo, True
    raise ValueError(f"overflow: unknown mode {mode!r}")


# ----------------------------------------------------------------------------- quantize
def quantize(
    xs: Iterable[float],
    fmt: QFormat,
    rounding: str = "half_even",
    overflow_mode: str = "saturate",
    rand: Sequence[int] | None = None,
    random_bits: int = 16,
) -> tuple[list[int], int, int]:
    """Twin of ``quantize`` on a flat sequence: (codes, n_overflow, n_inexact)."""
    codes, n_ovf, n_inexact = [], 0, 0
    r = 1 if _ALIASES.get(rounding, rounding) == "stochastic_equal" else random_bits
    for i, x in enumerate(xs):
        x = float(x)
        if not math.isfinite(x):
            raise ValueError("x: non-finite")
        v = Fraction(x) * Fraction(2) ** fmt.frac
        rnd = rand[i] if rand is not None else 0
        q = round_value(v, rounding, rnd, r)
        n_inexact += v.denominator != 1
        c, o = overflow(q, fmt, overflow_mode)
        n_ovf += o
        codes.append(c)
    return codes, n_ovf, n_inexact


def requantize(
    accs: Iterable[int],
    multipliers: Sequence[int],
    shifts: Sequence[int],
    channels: Sequence[int],
    fmt: QFormat,
    rounding: str = "half_even",
    overflow_mode: str = "saturate",
    rand: Sequence[int] | None = None,
    random_bits: int = 16,
) -> tuple[list[int], int, int]:
    """Twin of ``requantize``: element i uses channel ``channels[i]``'s multiplier and shift;
    value ``acc * multiplier / 2**shift`` rounded and cast. (codes, n_overflow, n_inexact)."""
    codes, n_ovf, n_inexact = [], 0, 0
    r = 1 if _ALIASES.get(rounding, rounding) == "stochastic_equal" else random_bits
    for i, a in enumerate(accs):
        ch = channels[i]
        v = Fraction(int(a) * int(multipliers[ch]), 2 ** int(shifts[ch]))
        rnd = rand[i] if rand is not None else 0
        q = round_value(v, rounding, rnd, r)
        n_inexact += v.denominator != 1
        c, o = overflow(q, fmt, overflow_mode)
        n_ovf += o
        codes.append(c)
    return codes, n_ovf, n_inexact


def round_to_float32(v: Fraction) -> Fraction:
    """IEEE binary32 round-to-nearest-even of the exact rational ``v`` (subnormals included;
    overflow raises, the callers keep products far below FLT_MAX)."""
    if v == 0:
        return Fraction(0)
    sign = -1 if v < 0 else 1
    a = abs(v)
    e = math.floor(math.log2(a.numerator) - math.log2(a.denominator))
    while Fraction(2) ** e > a:  # fix float error in the log estimate
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    e = max(e, -126)  # subnormals share the exponent of the smallest normal
    ulp = Fraction(2) ** (e - 23)
    q = a / ulp
    n = math.floor(q)
    rem = q - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
        n += 1
    out = n * ulp
    if out >= Fraction(2) ** 128:
        raise OverflowError("float32 overflow")
    return sign * out


def requantize_fp32(
    accs: Iterable[int],
    scales: Sequence[float],
    channels: Sequence[int],
    fmt: QFormat,
    rounding: str = "half_even",
    overflow_mode: str = "saturate",
    rand: Sequence[int] | None = None,
    random_bits: int = 16,
) -> tuple[list[int], int, int]:
    """Twin of ``requantize_fp32``: value = f32(f32(acc) * f32(scale)), then round and cast."""
    codes, n_ovf, n_inexact = [], 0, 0
    r = 1 if _ALIASES.get(rounding, rounding) == "stochastic_equal" else random_bits
    for i, a in enumerate(accs):
        s32 = round_to_float32(Fraction(float(scales[channels[i]])))
        v = round_to_float32(round_to_float32(Fraction(int(a))) * s32)
        rnd = rand[i] if rand is not None else 0
        q = round_value(v, rounding, rnd, r)
        n_inexact += v.denominator != 1
        c, o = overflow(q, fmt, overflow_mode)
        n_ovf += o
        codes.append(c)
    return codes, n_ovf, n_inexact


# ----------------------------------------------------------------------------- RNGs
def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def lfsr_step(state: int, width: int, taps: Sequence[int], kind: str) -> int:
    """One LFSR step, written bit by bit from the polynomial exponents."""
    if kind == "galois":
        out = state & 1
        state >>= 1
        if out:
            for e in taps:
                state ^= 1 << (e - 1)
        return state
    fb = 0
    for e in taps:
        fb ^= (state >> (width - e)) & 1
    return (state >> 1) | (fb << (width - 1))


def lfsr_draw(
    width: int, taps: Sequence[int], kind: str, seed: int, lanes: int, steps: int,
    n: int, bits: int,
) -> list[int]:
    """First ``n`` draws of a fresh ``LFSR(width, taps, kind, seed, lanes, steps)``."""
    states = [(splitmix64((seed + lane) % 2**64) % 2**width) or 1 for lane in range(lanes)]
    out = []
    for i in range(n):
        lane = i % lanes
        for _ in range(steps):
            states[lane] = lfsr_step(states[lane], width, taps, kind)
        out.append(states[lane] % 2**bits)
    return out


def philox4x32_10(ctr: Sequence[int], key: Sequence[int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 (Random123 reference algorithm) on Python ints."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd:
            k0 = (k0 + 0x9E3779B9) & M32
            k1 = (k1 + 0xBB67AE85) & M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
    return c0, c1, c2, c3


def philox_draw(seed: int, counter: int, n: int, bits: int) -> list[int]:
    """Draws ``counter .. counter+n-1`` of ``Philox(seed)``: top ``bits`` of word 0."""
    key = (seed & M32, seed >> 32)
    out = []
    for i in range(n):
        c = (counter + i) % 2**64
        w0 = philox4x32_10((c & M32, c >> 32, 0, 0), key)[0]
        out.append(w0 >> (32 - bits))
    return out
