"""Hardware random-number generators for stochastic rounding: LFSRs and Philox4x32-10.

All generators are seeded explicitly, hold their own state (no global RNG) and give the same
bits whatever the Numba thread count. The interface (used by quantize/requantize) is::

    rng.draw(n, bits) -> np.ndarray[uint64]   # n draws of `bits` random bits, advances state
    rng.state                                 # immutable snapshot (tuple of ints)
    rng.copy()                                # independent generator in the same state

``LFSR(width, taps, kind=..., seed=..., lanes=..., steps_per_draw=...)``
    ``lanes`` independent LFSRs of ``width`` bits with feedback polynomial ``taps`` (tuple of
    exponents such as ``(16, 14, 13, 11)``, or a string ``"x^16+x^14+x^13+x^11+1"``; ``None``
    picks the maximal-length default in :data:`DEFAULT_POLYNOMIALS`). Element ``i`` of a draw
    request uses lane ``i % lanes``; each draw advances that lane by ``steps_per_draw`` steps
    and returns the low ``bits`` bits of its state (``bits <= width``). Lane ``l`` starts in
    state ``splitmix64((seed + l) mod 2**64) mod 2**width`` (1 if that is 0), so lanes are
    decorrelated and never stuck at zero.

    ``kind="galois"`` (right shift; when the bit shifted out is 1 the state is XORed with
    ``sum(2**(e-1) for e in taps)``) or ``kind="fibonacci"`` (right shift; the new top bit is
    the parity of ``state & sum(2**(width-e) for e in taps)``). Both run through all
    ``2**width - 1`` nonzero states when the polynomial is primitive.

``Philox(seed, counter=0)``
    Philox4x32-10 (Salmon et al., SC'11; Random123), key ``(seed mod 2**32, seed >> 32)``.
    Draw element ``i`` is word 0 of ``philox(ctr=(c mod 2**32, c >> 32, 0, 0))`` with
    ``c = counter + i`` (mod 2**64); it gives the top ``bits`` of those 32 bits. A draw of
    ``n`` advances ``counter`` by ``n``. Counter-based, so it is generated in parallel.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np
from numba import njit, prange

from .formats import as_int

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85

#: Maximal-length (primitive) feedback polynomials, as exponent tuples (the ``+1`` implied):
#: x^8+x^6+x^5+x^4+1, x^16+x^14+x^13+x^11+1, x^24+x^23+x^22+x^17+1, x^32+x^22+x^2+x+1.
DEFAULT_POLYNOMIALS: dict[int, tuple[int, ...]] = {
    8: (8, 6, 5, 4),
    16: (16, 14, 13, 11),
    24: (24, 23, 22, 17),
    32: (32, 22, 2, 1),
}


class HardwareRNG(Protocol):
    """What quantize/requantize need from a random source."""

    def draw(self, n: int, bits: int) -> np.ndarray: ...

    def copy(self) -> HardwareRNG: ...


def splitmix64(x: int) -> int:
    """SplitMix64 output for state ``x`` (used only to derive LFSR lane seeds)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


_TERM = re.compile(r"^x(?:\^(\d+))?$|^1$")


def parse_taps(taps: str | tuple[int, ...] | list[int] | None, width: int) -> tuple[int, ...]:
    """Normalise ``taps`` to a sorted-descending tuple of exponents in 1..width (width first)."""
    if taps is None:
        if width not in DEFAULT_POLYNOMIALS:
            raise ValueError(
                f"taps: no default polynomial for width {width}; give taps "
                f"(defaults exist for {sorted(DEFAULT_POLYNOMIALS)})"
            )
        return DEFAULT_POLYNOMIALS[width]
    if isinstance(taps, str):
        exps = []
        has_one = False
        for term in taps.replace(" ", "").split("+"):
            m = _TERM.match(term)
            if m is None:
                raise ValueError(f"taps: cannot parse term {term!r} of polynomial {taps!r}")
            if term == "1":
                has_one = True
            else:
                exps.append(int(m.group(1)) if m.group(1) else 1)
        if not has_one:
            raise ValueError(f"taps: polynomial {taps!r} must have the constant term +1")
    else:
        exps = [as_int(e, "taps") for e in taps]
    if len(set(exps)) != len(exps) or any(not 1 <= e <= width for e in exps):
        raise ValueError(f"taps: exponents must be distinct and in 1..{width}, got {taps!r}")
    if width not in exps:
        raise ValueError(f"taps: highest exponent must equal width={width}, got {taps!r}")
    return tuple(sorted(exps, reverse=True))


@njit(parallel=True, cache=True)
def _lfsr_draw(states, n, bits, steps, galois, tapmask, width):
    """n draws; lane l serves elements l, l+lanes, ...; lanes run in parallel (independent)."""
    lanes = states.size
    out = np.empty(n, np.uint64)
    rmask = (np.int64(1) << bits) - 1
    top = width - 1
    for lane in prange(lanes):
        s = states[lane]
        for i in range(lane, n, lanes):
            for _ in range(steps):
                if galois:  # branch-free: XOR the taps when the shifted-out bit is 1
                    s = (s >> 1) ^ (-(s & 1) & tapmask)
                else:
                    p = s & tapmask
                    p ^= p >> 16
                    p ^= p >> 8
                    p ^= p >> 4
                    p ^= p >> 2
                    p ^= p >> 1
                    s = (s >> 1) | ((p & 1) << top)
            out[i] = s & rmask
        states[lane] = s
    return out


class LFSR:
    """One or more hardware LFSRs (see the module docstring for exact semantics)."""

    def __init__(
        self,
        width: int = 16,
        taps: str | tuple[int, ...] | list[int] | None = None,
        *,
        kind: str = "galois",
        seed: int = 1,
        lanes: int = 1,
        steps_per_draw: int = 1,
    ) -> None:
        width = as_int(width, "width")
        if not 2 <= width <= 32:
            raise ValueError(f"width: must be in 2..32, got {width}")
        if kind not in ("galois", "fibonacci"):
            raise ValueError(f"kind: must be 'galois' or 'fibonacci', got {kind!r}")
        seed = as_int(seed, "seed")
        if not 0 <= seed <= M64:
            raise ValueError(f"seed: must be in 0..2**64-1, got {seed}")
        lanes = as_int(lanes, "lanes")
        if not 1 <= lanes <= 1 << 20:
            raise ValueError(f"lanes: must be in 1..2**20, got {lanes}")
        steps = as_int(steps_per_draw, "steps_per_draw")
        if not 1 <= steps <= 1 << 16:
            raise ValueError(f"steps_per_draw: must be in 1..65536, got {steps}")
        self.width, self.kind, self.seed = width, kind, seed
        self.lanes, self.steps_per_draw = lanes, steps
        self.taps = parse_taps(taps, width)
        if kind == "galois":
            self.tapmask = sum(1 << (e - 1) for e in self.taps)
        else:
            self.tapmask = sum(1 << (width - e) for e in self.taps)
        mask = (1 << width) - 1
        init = [(splitmix64((seed + lane) & M64) & mask) or 1 for lane in range(lanes)]
        self._states = np.array(init, dtype=np.int64)

    @property
    def state(self) -> tuple[int, ...]:
        """Current lane states."""
        return tuple(int(s) for s in self._states)

    def copy(self) -> LFSR:
        new = object.__new__(LFSR)
        new.__dict__.update(self.__dict__)
        new._states = self._states.copy()
        return new

    def draw(self, n: int, bits: int) -> np.ndarray:
        """``n`` draws of the low ``bits`` (1..width) state bits, as uint64; advances lanes."""
        n = as_int(n, "n")
        bits = as_int(bits, "bits")
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        if not 1 <= bits <= self.width:
            raise ValueError(f"bits: must be in 1..width={self.width}, got {bits}")
        return _lfsr_draw(
            self._states, n, bits, self.steps_per_draw, self.kind == "galois",
            self.tapmask, self.width,
        )

    def __repr__(self) -> str:
        return (
            f"LFSR(width={self.width}, taps={self.taps}, kind={self.kind!r}, seed={self.seed}, "
            f"lanes={self.lanes}, steps_per_draw={self.steps_per_draw})"
        )


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


@njit(parallel=True, cache=True)
def _philox_draw(n, bits, k0, k1, counter):
    out = np.empty(n, np.uint64)
    for i in prange(n):
        out[i] = philox_bits(counter + i, k0, k1, bits)
    return out


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
        out = _philox_draw(n, bits, k0, k1, ctr)
        self.advance(n)
        return out

    def __repr__(self) -> str:
        return f"Philox(seed={self.seed}, counter={self.counter})"
