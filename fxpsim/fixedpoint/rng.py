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

    Speed (same bits as stepping one step at a time, :meth:`LFSR.draw_sequential`): the step
    map is a bijection of the ``2**width`` states, so for ``width <= TABLE_MAX_WIDTH`` its
    cycles are tabulated once per polynomial and draw ``j`` of a lane is a table lookup
    ``(j+1) * steps_per_draw`` places ahead (any polynomial, primitive or not); wider LFSRs
    split a request into chunks whose start states are reached by GF(2) jump-ahead
    (precomputed ``2**i``-step matrices). Both run chunks in parallel (:meth:`LFSR.plan`,
    :func:`lfsr_fill`), so quantize can generate the bits inside its kernel.

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
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
from numba import njit, prange

from .formats import as_int

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
#: Widths up to this use a precomputed cycle table (two 2**width arrays of 4 bytes, cached).
TABLE_MAX_WIDTH = 20
#: Wider LFSRs jump ahead (GF(2) matrix powers) when each lane has at least this many draws.
JUMP_MIN_DRAWS = 4096

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


@njit(inline="always", cache=True)
def _step(s, galois, tapmask, top):
    """One LFSR step (galois: branch-free XOR of the taps when the shifted-out bit is 1)."""
    if galois:
        return (s >> 1) ^ (-(s & 1) & tapmask)
    p = s & tapmask
    p ^= p >> 16
    p ^= p >> 8
    p ^= p >> 4
    p ^= p >> 2
    p ^= p >> 1
    return (s >> 1) | ((p & 1) << top)


@njit(parallel=True, cache=True)
def _lfsr_draw(out, states, bits, steps, galois, tapmask, width):
    """Sequential reference path: lane l serves elements l, l+lanes, ...; lanes in parallel.
    Used for widths without a cycle table when each lane has few draws."""
    lanes = states.size
    n = out.size
    rmask = (np.int64(1) << bits) - 1
    top = width - 1
    for lane in prange(lanes):
        s = states[lane]
        for i in range(lane, n, lanes):
            for _ in range(steps):
                s = _step(s, galois, tapmask, top)
            out[i] = s & rmask
        states[lane] = s


@njit(cache=True)
def _build_cycles(width, galois, tapmask):
    """Cycle decomposition of the step map (a bijection: the top/bottom tap is always set).
    ``seq`` lists every state, cycle after cycle in stepping order; ``pos[s]`` is the index of
    ``s`` in ``seq``; cycle c occupies ``seq[bounds[c]:bounds[c + 1]]``."""
    size = 1 << width
    seq = np.empty(size, np.uint32)
    pos = np.full(size, -1, np.int32)
    bounds = np.empty(size + 1, np.int64)
    nc = 0
    k = 0
    for s0 in range(size):
        if pos[s0] >= 0:
            continue
        bounds[nc] = k
        nc += 1
        s = np.int64(s0)
        while pos[s] < 0:
            pos[s] = k
            seq[k] = s
            k += 1
            s = _step(s, galois, tapmask, width - 1)
    bounds[nc] = k
    return seq, pos, bounds[: nc + 1].copy()


@njit(cache=True)
def _jump_powers(width, galois, tapmask):
    """``pw[i, b]`` = the state reached from state ``2**b`` after ``2**i`` steps (the step map
    is linear over GF(2), so these columns define the map)."""
    pw = np.empty((64, width), np.int64)
    for b in range(width):
        pw[0, b] = _step(np.int64(1) << b, galois, tapmask, width - 1)
    for i in range(1, 64):
        for b in range(width):
            pw[i, b] = _apply(pw[i - 1], pw[i - 1, b], width)
    return pw


@njit(inline="always", cache=True)
def _apply(cols, s, width):
    r = np.int64(0)
    for b in range(width):
        r ^= cols[b] & -((s >> b) & 1)
    return r


@njit(inline="always", cache=True)
def _jump(s, k, pw, width):
    """State after ``k`` (>= 0) steps from ``s``: square-and-multiply over precomputed powers."""
    i = 0
    while k:
        if k & 1:
            s = _apply(pw[i], s, width)
        k >>= 1
        i += 1
    return s


@njit(inline="never", cache=True)  # not inlined into parfor bodies: LLVM vectorizes it here
def lfsr_fill(buf, a, b, table, lanes, seq, info, pw, steps, galois, tapmask, width, rmask):
    """``buf[k]`` = draw ``a + k`` (``a <= k + a < b``) of a request planned by
    :meth:`LFSR.plan`. Independent of other chunks, so callers may fill chunks in parallel.

    Table mode: ``info[l] = (start, length, offset, steps mod length)`` of lane ``l`` in the
    cycle table ``seq``; draw ``j`` of lane ``l`` is ``seq[start + (offset + (j+1)*steps) mod
    length]``. Jump mode: ``info[l, 0]`` is lane ``l``'s state; the first draw of each lane in
    the chunk is reached by a jump, the rest by stepping.
    """
    cnt = b - a
    m = min(lanes, cnt)
    top = width - 1
    for t in range(m):  # slot t holds elements a+t, a+t+m, ...: all of one lane
        i = a + t
        lane = i % lanes
        j = i // lanes
        if table:
            start = info[lane, 0]
            length = info[lane, 1]
            st = info[lane, 3]
            idx = start + (info[lane, 2] + ((j + 1) % length) * st) % length
            end = start + length
            k = t
            while k < cnt:  # runs between wrap-arounds: strided loops LLVM vectorizes
                run = (cnt - k + m - 1) // m
                if st:
                    run = min(run, (end - idx + st - 1) // st)
                # unsigned indices (no negative-index fix-up) and a unit-stride case: vectorizes
                if m == 1 and st == 1:
                    for u in range(run):
                        buf[np.uint64(k + u)] = seq[np.uint64(idx + u)] & rmask
                else:
                    for u in range(run):
                        buf[np.uint64(k + u * m)] = seq[np.uint64(idx + u * st)] & rmask
                k += run * m
                idx += run * st - length
        else:
            s = _jump(info[lane, 0], (j + 1) * steps, pw, width)
            for k in range(t, cnt, m):
                buf[k] = s & rmask
                for _ in range(steps):
                    s = _step(s, galois, tapmask, top)


@njit(parallel=True, cache=True)
def _lfsr_plan_draw(out, chunk, table, lanes, seq, info, pw, steps, galois, tapmask, width,
                    rmask):
    n = out.size
    for c in prange((n + chunk - 1) // chunk):
        a = c * chunk
        b = min(n, a + chunk)
        lfsr_fill(out[a:b], a, b, table, lanes, seq, info, pw, steps, galois, tapmask, width,
                  rmask)


@njit(cache=True)
def _jump_states(states, counts, steps, pw, width):
    out = np.empty_like(states)
    for lane in range(states.size):
        out[lane] = _jump(states[lane], counts[lane] * steps, pw, width)
    return out


@lru_cache(maxsize=8)
def _cycle_table(width: int, galois: bool, tapmask: int):
    return _build_cycles(width, galois, tapmask)


@lru_cache(maxsize=16)
def _powers(width: int, galois: bool, tapmask: int) -> np.ndarray:
    return _jump_powers(width, galois, tapmask)


_NO_SEQ = np.zeros(0, np.uint32)
_NO_PW = np.zeros((1, 1), np.int64)


@dataclass(frozen=True)
class LfsrPlan:
    """The draws of one request of ``n`` elements, for kernels that generate them in chunks
    with :func:`lfsr_fill` (arguments :meth:`fill_args`, ``chunk`` a good chunk length)."""

    table: bool
    lanes: int
    seq: np.ndarray
    info: np.ndarray
    pw: np.ndarray
    steps: int
    galois: bool
    tapmask: int
    width: int
    chunk: int

    def fill_args(self) -> tuple:
        return (self.table, self.lanes, self.seq, self.info, self.pw, self.steps, self.galois,
                self.tapmask, self.width)


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

    def plan(self, n: int) -> LfsrPlan | None:
        """Advance the lanes past a request of ``n`` draws and return how to generate them
        (chunk by chunk, in parallel); ``None`` (nothing advanced) when the sequential path is
        the better one (wide LFSR with few draws per lane)."""
        n = as_int(n, "n")
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        lanes, steps, galois = self.lanes, self.steps_per_draw, self.kind == "galois"
        counts = np.maximum(0, (n - np.arange(lanes, dtype=np.int64) + lanes - 1) // lanes)
        if self.width <= TABLE_MAX_WIDTH:
            seq, pos, bounds = _cycle_table(self.width, galois, self.tapmask)
            g = pos[self._states].astype(np.int64)
            cyc = np.searchsorted(bounds, g, side="right") - 1
            start = bounds[cyc]
            length = bounds[cyc + 1] - start
            off = g - start
            info = np.stack([start, length, off, steps % length], axis=1)
            self._states = seq[start + (off + (counts % length) * (steps % length)) % length]
            self._states = self._states.astype(np.int64)
            return LfsrPlan(True, lanes, seq, info, _NO_PW, steps, galois, self.tapmask,
                            self.width, 1 << 15)
        if n < lanes * JUMP_MIN_DRAWS:
            return None
        pw = _powers(self.width, galois, self.tapmask)
        info = np.zeros((lanes, 4), np.int64)
        info[:, 0] = self._states
        self._states = _jump_states(self._states, counts, steps, pw, self.width)
        return LfsrPlan(False, lanes, _NO_SEQ, info, pw, steps, galois, self.tapmask,
                        self.width, lanes * JUMP_MIN_DRAWS)

    def check_bits(self, bits: int) -> int:
        """``bits`` as an int in 1..width; ValueError naming it otherwise."""
        bits = as_int(bits, "bits")
        if not 1 <= bits <= self.width:
            raise ValueError(f"bits: must be in 1..width={self.width}, got {bits}")
        return bits

    def draw(self, n: int, bits: int) -> np.ndarray:
        """``n`` draws of the low ``bits`` (1..width) state bits, as uint64; advances lanes.
        Cycle table (width <= TABLE_MAX_WIDTH) or jump-ahead chunks, in parallel; the
        sequential path otherwise. All give the same bits as :meth:`draw_sequential`."""
        bits = self.check_bits(bits)
        plan = self.plan(n)
        if plan is None:
            return self.draw_sequential(n, bits)
        # allocated by NumPy, not in the kernel: far fewer page faults for large n
        out = np.empty(n, np.uint64)
        _lfsr_plan_draw(out, plan.chunk, *plan.fill_args(), (1 << bits) - 1)
        return out

    def draw_sequential(self, n: int, bits: int) -> np.ndarray:
        """Same as :meth:`draw`, stepping each lane one step at a time (reference path)."""
        n = as_int(n, "n")
        bits = self.check_bits(bits)
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        out = np.empty(n, np.uint64)
        _lfsr_draw(out, self._states, bits, self.steps_per_draw, self.kind == "galois",
                   self.tapmask, self.width)
        return out

    def __repr__(self) -> str:
        return (
            f"LFSR(width={self.width}, taps={self.taps}, kind={self.kind!r}, seed={self.seed}, "
            f"lanes={self.lanes}, steps_per_draw={self.steps_per_draw})"
        )


# Philox lives in its own module; re-exported here so ``rng`` stays the one import point.
from .philox import Philox, philox4x32_10, philox_bits, philox_block, philox_fill  # noqa: E402, F401
