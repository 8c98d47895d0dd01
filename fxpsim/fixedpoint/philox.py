"""Philox4x32-10 counter-based generator (see :mod:`fxpsim.fixedpoint.rng` for the contract)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .formats import as_int

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


@njit(inline="always", cache=True)
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on int64 words holding 32-bit values; int64 products wrap mod 2**64,
    which keeps the 32x32->64 bit pattern exact after masking."""
    for _ in range(10):
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        hi0 = (p0 >> 32) & M32
        hi1 = (p1 >> 32) & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, p1 & M32, hi0 ^ c3 ^ k1, p0 & M32
        k0 = (k0 + PHILOX_W0) & M32
        k1 = (k1 + PHILOX_W1) & M32
    return c0, c1, c2, c3


@njit(inline="always", cache=True)
def philox_bits(counter, k0, k1, bits):
    """Top ``bits`` of word 0 for 64-bit counter ``counter`` (int64 bit pattern)."""
    c0 = counter & M32
    c1 = (counter >> 32) & M32
    w0, _, _, _ = philox4x32_10(c0, c1, np.int64(0), np.int64(0), k0, k1)
    return w0 >> (32 - bits)


@njit(inline="never", cache=True)
def philox_fill(buf, counter, k0, k1, bits):
    """``buf[k]`` = draw for 64-bit counter ``counter + k`` (int64 bit pattern, wrapping)."""
    for k in range(buf.size):
        buf[k] = philox_bits(counter + k, k0, k1, bits)


@njit(parallel=True, cache=True)
def _philox_draw(out, bits, k0, k1, counter):
    for i in prange(out.size):
        out[i] = philox_bits(counter + i, k0, k1, bits)


@njit(cache=True)
def philox_block(c0, c1, c2, c3, k0, k1):
    """All four output words for one counter block (for known-answer tests)."""
    return philox4x32_10(c0, c1, c2, c3, k0, k1)


def _signed64(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


class Philox:
    """Counter-based Philox4x32-10 generator (see the module docstring)."""

    def __init__(self, seed: int, *, counter: int = 0) -> None:
        seed = as_int(seed, "seed")
        counter = as_int(counter, "counter")
        if not 0 <= seed <= M64:
            raise ValueError(f"seed: must be in 0..2**64-1, got {seed}")
        if not 0 <= counter <= M64:
            raise ValueError(f"counter: must be in 0..2**64-1, got {counter}")
        self.seed = seed
        self.counter = counter

    @property
    def key(self) -> tuple[int, int]:
        return self.seed & M32, self.seed >> 32

    @property
    def state(self) -> tuple[int, int]:
        """(seed, counter)."""
        return self.seed, self.counter

    def copy(self) -> Philox:
        return Philox(self.seed, counter=self.counter)

    def kernel_args(self) -> tuple[int, int, int]:
        """(k0, k1, counter as int64 bit pattern) for kernels that inline the generator."""
        k0, k1 = self.key
        return k0, k1, _signed64(self.counter)

    def advance(self, n: int) -> None:
        """Skip ``n`` draws (kernels that generate inline call this)."""
        self.counter = (self.counter + n) & M64

    def draw(self, n: int, bits: int) -> np.ndarray:
        """``n`` draws of ``bits`` (1..32) random bits as uint64; advances the counter by n."""
        n = as_int(n, "n")
        bits = as_int(bits, "bits")
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        if not 1 <= bits <= 32:
            raise ValueError(f"bits: must be in 1..32, got {bits}")
        k0, k1, ctr = self.kernel_args()
        out = np.empty(n, np.uint64)
        _philox_draw(out, bits, k0, k1, ctr)
        self.advance(n)
        return out

    def __repr__(self) -> str:
        return f"Philox(seed={self.seed}, counter={self.counter})"
