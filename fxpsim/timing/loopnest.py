"""A GEMM-like op as a loop nest over its real dimensions, and its DRAM-level tiling.

The GEMM list of the lowering flattens a conv into ``m x k x n``; data movement must not:
a 3x3 conv's input is read once per tile *with its halo*, never as the 9x larger im2col
matrix. :func:`op_shape` rebuilds the loop nest of one pass from ``GemmOp.loop_dims``
(``B, OY, OX, C, FY, FX, K``; ``IY, IX`` for the input pixels of backward-data) and names
each tensor's axes:

=========  ==========================  ==================  ==================
pass       A (streamed)                B                   O (written)
=========  ==========================  ==================  ==================
forward    X [B, C, OY+FY, OX+FX]      W [K, C, FY, FX]    Y [B, K, OY, OX]
dgrad      dY [B, K, IY+FY, IX+FX]     W [K, C, FY, FX]    dX [B, C, IY, IX]
wgrad      X [B, C, OY+FY, OX+FX]      dY [B, K, OY, OX]   dW [K, C, FY, FX]
=========  ==========================  ==================  ==================

``P+R`` is a sliding window: ``p`` output rows with ``r`` filter rows at stride ``s`` touch
``(p-1)s + r`` input rows (``p r`` when the stride skips rows; for backward-data, whose
input is the stride-dilated gradient, ``ceil((p + r - 1) / s)``), capped at the tensor's
real extent so padding is never fetched.

DRAM-level tiling (:func:`best_dram_plan`): each non-filter dim gets a tile size (from
near-divisors ``ceil(D / f)``); filter dims are never tiled. The dims fall in three *reuse
groups* by the tensors they index: ``AO`` (batch and output pixels), ``BO`` (output
channels of the pass) and ``AB`` (the reduction). A tensor is re-fetched once per iteration
of the group that does not index it, unless that group is the innermost loop (the
Timeloop rule: traffic = tile footprint x fetches, fetches = the trips of every loop outside
the innermost loop that indexes the tensor). Only the choice of the innermost group changes
reuse, so three loop orders are searched. The output is written once when the reduction
is not tiled; otherwise its partial sums either stay in the psum memory (reduction
innermost: the psum tile must fit there) or travel to DRAM and back at the accumulator
width. Tiles of the tensors a memory holds must fit in it (one buffer when double
buffered). A tensor already on chip (*carried* from the previous op, or *kept* for the next)
costs its whole size in capacity and no DRAM traffic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

from fxpsim.timing.ops import GemmOp

Role = Literal["A", "B", "O"]
ROLES: tuple[Role, ...] = ("A", "B", "O")
GROUPS: tuple[str, ...] = ("AO", "BO", "AB")
_FILTER_DIMS = frozenset({"FY", "FX"})


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def nbytes(elems: int, bits: int) -> int:
    """Bytes of ``elems`` packed ``bits``-bit values (INT4 packs two per byte)."""
    return ceil_div(elems * bits, 8)


@dataclass(frozen=True)
class TensorAxis:
    """One index axis of a tensor: a loop dim, or a sliding window ``dim`` + ``filt``."""

    dim: str
    filt: str = ""
    step: int = 1  # input rows between consecutive outputs (the stride)
    dil: int = 1  # dilation of the input (backward-data of a strided conv)
    size: int = 0  # real extent of the tensor on this axis (0 = the dim's extent)

    def extent(self, p: int, r: int) -> int:
        """Elements touched by ``p`` iterations of ``dim`` and ``r`` of ``filt``."""
        if not self.filt:
            return p
        if self.dil > 1:
            e = ceil_div(p + r - 1, self.dil)
        elif self.step > r:
            e = p * r
        else:
            e = (p - 1) * self.step + r
        return min(e, self.size) if self.size else e


@dataclass(frozen=True)
class TensorUse:
    role: Role
    kind: str  # weights, activations, gradients, weight_gradients
    bits: int
    axes: tuple[TensorAxis, ...]


@dataclass(frozen=True)
class OpShape:
    """The loop nest of one op (per group) and how each tensor is indexed."""

    kind: str  # forward | dgrad | wgrad
    dims: tuple[tuple[str, int], ...]
    groups: int
    tensors: tuple[TensorUse, TensorUse, TensorUse]  # A, B, O
    psum_bits: int

    def extent(self, dim: str) -> int:
        return dict(self.dims).get(dim, 1)

    def group_of(self, dim: str) -> str:
        idx = "".join(t.role for t in self.tensors if _indexes(t, dim))
        return {"AO": "AO", "BO": "BO", "AB": "AB"}.get(idx, "AB")

    def dim_groups(self) -> dict[str, str]:
        """:meth:`group_of` of every dim, in one pass over the tensors' axes."""
        used: dict[str, str] = {d: "" for d, _ in self.dims}
        for t in self.tensors:
            names = {ax.dim for ax in t.axes} | {ax.filt for ax in t.axes if ax.filt}
            for d in used:
                if d in names:
                    used[d] += t.role
        return {d: idx if idx in ("AO", "BO", "AB") else "AB" for d, idx in used.items()}

    def footprint(self, role: Role, tiles: dict[str, int]) -> int:
        """Elements of one tile of tensor ``role`` (per group)."""
        t = self.tensors[ROLES.index(role)]
        return math.prod(ax.extent(tiles.get(ax.dim, 1), tiles.get(ax.filt, 1)) for ax in t.axes)

    def size(self, role: Role) -> int:
        """Elements of the whole tensor (all groups): its compulsory traffic."""
        full = {d: e for d, e in self.dims}
        return self.groups * self.footprint(role, full)


def _indexes(t: TensorUse, dim: str) -> bool:
    return any(ax.dim == dim or ax.filt == dim for ax in t.axes)


# canonical dim names of a hand-built op without loop_dims, per pass: (m, k, n)
_PLAIN = {"forward": ("B", "C", "K"), "dgrad": ("B", "K", "C"), "wgrad": ("C", "B", "K")}


@functools.lru_cache(maxsize=1024)
def op_shape(op: GemmOp, kind: str, psum_bits: int) -> OpShape:
    """Rebuild ``op``'s loop nest (see the module docstring). Memoised: the schedule and the
    search both ask for the op in hand."""
    if op.loop_dims:
        dims = tuple(op.loop_dims)
    else:
        m, k, n = _PLAIN[kind]
        dims = ((m, op.m), (k, op.k), (n, op.n))
    have = {d for d, _ in dims}
    sy, sx = op.stride
    iy, ix = op.in_hw

    def win(p: str, r: str, step: int, dil: int, size: int) -> tuple[TensorAxis, ...]:
        if p not in have:
            return ()
        if r not in have:
            return (TensorAxis(p),)
        return (TensorAxis(p, r, step, dil, size),)

    def plain(*names: str) -> tuple[TensorAxis, ...]:
        return tuple(TensorAxis(d) for d in names if d in have)

    x_axes = plain("B", "C") + win("OY", "FY", sy, 1, iy) + win("OX", "FX", sx, 1, ix)
    w_axes = plain("K", "C", "FY", "FX")
    if kind == "forward":
        axes = (x_axes, w_axes, plain("B", "K", "OY", "OX"))
    elif kind == "dgrad":
        dy = plain("B", "K") + win("IY", "FY", 1, sy, iy) + win("IX", "FX", 1, sx, ix)
        axes = (dy, w_axes, plain("B", "C", "IY", "IX"))
    else:
        axes = (x_axes, plain("B", "K", "OY", "OX"), w_axes)
    kinds = (op.a_kind, op.b_kind, op.out_kind)
    bits = (op.a_bits, op.b_bits, op.out_bits)
    tensors = tuple(TensorUse(r, kinds[i], bits[i], axes[i]) for i, r in enumerate(ROLES))
    return OpShape(kind, dims, op.groups, tensors, psum_bits)  # type: ignore[arg-type]


def tile_candidates(extent: int) -> tuple[int, ...]:
    """Near-divisor tile sizes ``ceil(extent / f)`` for f = 1, 2, 3, 4, 6, 8, 16, 32, ...
    (the set does not depend on the hardware, so a bigger buffer admits every smaller
    tile), largest first."""
    out = {extent, 1}
    for f in (3, 6):
        out.add(ceil_div(extent, f))
    f = 2
    while f < extent:
        out.add(ceil_div(extent, f))
        f *= 2
    return tuple(sorted(out, reverse=True))


@dataclass(frozen=True)
class Capacity:
    """Where each role's tiles live: memory name per role (``""`` = none) and bytes per
    memory (one buffer when double buffered); ``psum`` = bytes of the psum memory."""

    mem: tuple[str, str, str]
    cap: tuple[tuple[str, int], ...]
    psum: int


@dataclass(frozen=True)
class DramPlan:
    """The chosen DRAM-level tiling of one op and its traffic (bytes, all groups)."""

    tiles: tuple[tuple[str, int], ...]
    innermost: str  # reuse group of the innermost DRAM loop (AO, BO or AB)
    reads: tuple[int, int, int]  # A, B, O (O reads = partial sums coming back)
    writes: tuple[int, int, int]
    psum_bytes: tuple[int, int]  # of the O reads / writes, bytes at accumulator width
    footprint: tuple[int, int, int]  # bytes of one tile of A, B, O on chip
    fetches: tuple[int, int, int]  # times each tensor is streamed in full (reuse factor)
    evaluated: int

    @property
    def dram_bytes(self) -> int:
        return sum(self.reads) + sum(self.writes)


def _positions(ext: int, t: int) -> list[tuple[int, int]]:
    """(count, size) of the tile positions along a dim of ``ext`` tiled by ``t``."""
    n = ceil_div(ext, t)
    last = ext - (n - 1) * t
    return [(n - 1, t), (1, last)] if n > 1 else [(1, last)]


@dataclass(frozen=True)
class _GroupEntry:
    tiles: tuple[tuple[str, int], ...]
    trips: int
    fp: tuple[int, int, int]  # per tensor: product of its axes' tile extents in this group
    sums: tuple[int, int, int]  # per tensor: product of its axes' extent sums over positions


def _group_entries(shape: OpShape, group: str, groups: dict[str, str]
                   ) -> tuple[_GroupEntry, ...]:
    full = dict(shape.dims)
    dims = tuple((d, e) for d, e in shape.dims if groups[d] == group)
    names = {d for d, _ in dims}
    axes = tuple(tuple(ax for ax in t.axes if ax.dim in names) for t in shape.tensors)
    filt = tuple(sorted({(ax.filt, full.get(ax.filt, 1)) for t_axes in axes for ax in t_axes
                         if ax.filt}))
    return _group_entries_of(dims, axes, filt)


@functools.lru_cache(maxsize=4096)
def _group_entries_of(dims_ext: tuple[tuple[str, int], ...],
                      axes: tuple[tuple[TensorAxis, ...], tuple[TensorAxis, ...],
                                  tuple[TensorAxis, ...]],
                      filt: tuple[tuple[str, int], ...]) -> tuple[_GroupEntry, ...]:
    """The tile choices of one reuse group: only the group's own dims, the tensors' axes
    over them and the extents of the filter dims they slide over matter, so layers that
    share them (the same batch and image size, say) share the entries."""
    full = dict(dims_ext)
    fext = dict(filt)
    dims = [d for d, _ in dims_ext]
    free = [d for d in dims if d not in _FILTER_DIMS]
    # contiguous blocks only: the outer dims of the group are down to one before an inner
    # dim is split (B, then rows, then columns), the rest stay whole
    combos: list[dict[str, int]] = [{d: full[d] for d in free}]
    for idx, d in enumerate(free):
        for t in tile_candidates(full[d]):
            if t < full[d]:
                combos.append({**{x: 1 for x in free[:idx]}, d: t,
                               **{x: full[x] for x in free[idx + 1:]}})
        if full[d] > 1:
            combos.append({**{x: 1 for x in free[:idx]}, d: 1,
                           **{x: full[x] for x in free[idx + 1:]}})
    out: list[_GroupEntry] = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    for chosen in combos:
        tiles = {d: full[d] for d in dims}
        tiles.update(chosen)
        sig = tuple(sorted(tiles.items()))
        if sig in seen:
            continue
        seen.add(sig)
        fps, sums = [], []
        for t_axes in axes:
            f = s = 1
            for ax in t_axes:
                if not ax.filt:
                    f *= tiles[ax.dim]
                    s *= full[ax.dim]
                    continue
                r = tiles.get(ax.filt, fext.get(ax.filt, 1))
                f *= ax.extent(tiles[ax.dim], r)
                s *= sum(cp * ax.extent(p, r) for cp, p in _positions(full[ax.dim], tiles[ax.dim]))
            fps.append(f)
            sums.append(s)
        trips = math.prod(ceil_div(full[d], tiles[d]) for d in free)
        out.append(_GroupEntry(sig, trips, tuple(fps),  # type: ignore[arg-type]
                               tuple(sums)))  # type: ignore[arg-type]
    return tuple(out)


def best_dram_plan(shape: OpShape, capacity: Capacity, *, carried: Role | None = None,
                   keep_out: bool = False, read_pj: float = 1.0,
                   write_pj: float = 1.0, bytes_first: bool = True,
                   prune: bool = True) -> DramPlan | None:
    """The DRAM tiling with the fewest DRAM bytes (then least DRAM energy; energy first
    with ``bytes_first=False``) that fits; None if none fits. Reads and writes share the
    channel, so bytes set the transfer time and a bigger buffer never adds any.

    ``carried``: the role whose tensor is already on chip; ``keep_out``: the output stays on
    chip. Footprints and traffic factor by reuse group. For each (AO, BO) tile pair the
    largest reduction tile that fits is the best one in every loop order (fewer reduction
    trips mean fewer partial sums and less halo, and the reduction tile changes nothing
    else), so only that one is costed. Deterministic: candidates come in a fixed order
    (largest tiles first) and the first best wins. ``prune`` skips the loop orders of a
    tile pair whose lower bound on bytes exceeds the best so far (the same plan; off, every
    pair is costed: the tests' reference).
    """
    dim_groups = shape.dim_groups()
    ao, bo, ab = (_group_entries(shape, g, dim_groups) for g in GROUPS)
    bits = [t.bits for t in shape.tensors]
    g = shape.groups
    pb = shape.psum_bits
    whole = [nbytes(shape.footprint(r, dict(shape.dims)), bits[i]) for i, r in enumerate(ROLES)]
    caps = dict(capacity.cap)
    mems = capacity.mem
    # occupancy of a role: its tile, or its whole tensor when carried / kept on chip
    fixed = [0, 0, 0]
    if carried is not None:
        fixed[ROLES.index(carried)] = whole[ROLES.index(carried)]
    if keep_out:
        fixed[2] = whole[2]
    names = sorted({m for m in mems if m})
    slot = [names.index(m) if m else -1 for m in mems]
    cap_l = [caps[n] for n in names]
    b0, b1, b2 = bits
    best: tuple[float, float] | None = None
    pick: tuple[int, int, int, str] | None = None
    evaluated = 0
    # the reduction tiles with the fewest trips first: the first that fits is the best
    order = sorted(range(len(ab)), key=lambda k: (ab[k].trips, k))
    # the BO group is one dim (output channels): its tiles grow with the index reversed, so
    # the first reduction tile that fits can only move later in ``order``: scan once per AO
    bo_order = sorted(range(len(bo)), key=lambda j: (bo[j].fp, j))
    n_ab = len(order)
    ab_fp = [ab[k].fp for k in order]  # in scan order
    fx0, fx1, fx2 = fixed
    s0, s1, s2 = slot
    one_mem = len(names) == 1 and slot == [0, 0, 0]  # the common case: one buffer for all
    cap0 = cap_l[0] if cap_l else 0
    n_mem = len(names)
    psum_cap = capacity.psum
    no_a, no_b = carried == "A", carried == "B"
    # a lower bound on a pair's bytes, whatever reduction tile fits and whatever loop order:
    # each input read at least once from its smallest extent sum, plus the output write
    min_a, min_b, min_o = (min((e.sums[x] for e in ab), default=1) for x in range(3))
    for i, ea in enumerate(ao):
        start = 0
        ea0, ea1, ea2 = ea.fp
        for j in bo_order:
            eb = bo[j]
            fa0 = ea0 * eb.fp[0]
            fb0 = ea1 * eb.fp[1]
            fo = ea2 * eb.fp[2]
            k_fit = -1
            for pos in range(start, n_ab):
                evaluated += 1
                fc0, fc1, fc2 = ab_fp[pos]
                o0 = fx0 or (fa0 * fc0 * b0 + 7) // 8
                o1 = fx1 or (fb0 * fc1 * b1 + 7) // 8
                o2 = fx2 or (fo * fc2 * b2 + 7) // 8
                if one_mem:
                    fits = o0 + o1 + o2 <= cap0
                else:
                    used = [0] * n_mem
                    if s0 >= 0:
                        used[s0] += o0
                    if s1 >= 0:
                        used[s1] += o1
                    if s2 >= 0:
                        used[s2] += o2
                    fits = all(u <= c for u, c in zip(used, cap_l, strict=True))
                if fits:
                    k_fit, start = order[pos], pos
                    break
            if k_fit < 0:
                break  # bigger BO tiles fit even less
            if prune and bytes_first and best is not None:
                lo_a = 0 if no_a else -(-(g * ea.sums[0] * eb.sums[0] * min_a * b0) // 8)
                lo_b = 0 if no_b else -(-(g * ea.sums[1] * eb.sums[1] * min_b * b1) // 8)
                lo_o = 0 if keep_out else -(-(g * ea.sums[2] * eb.sums[2] * min_o * b2) // 8)
                via_ao, via_bo = lo_a * eb.trips + lo_b, lo_a + lo_b * ea.trips
                if lo_o + (via_ao if via_ao < via_bo else via_bo) > best[0]:
                    continue  # no loop order of this pair can move fewer bytes
            ec = ab[k_fit]
            red = ec.trips
            s_a = -(-(g * ea.sums[0] * eb.sums[0] * ec.sums[0] * b0) // 8)
            s_b = -(-(g * ea.sums[1] * eb.sums[1] * ec.sums[1] * b1) // 8)
            s_o = g * ea.sums[2] * eb.sums[2] * ec.sums[2]
            w_o = 0 if keep_out else -(-(s_o * b2) // 8)
            psum = -(-(s_o * pb) // 8) * (red - 1)
            psum_fits = red == 1 or -(-(fo * ec.fp[2] * pb) // 8) <= psum_cap
            for inner in GROUPS:
                if inner == "AB" and not psum_fits:
                    continue
                f_a = eb.trips if inner != "BO" else 1
                f_b = ea.trips if inner != "AO" else 1
                rd = (0 if no_a else s_a * f_a) + (0 if no_b else s_b * f_b)
                wr = w_o
                if inner != "AB":
                    rd += psum
                    wr += psum
                e = rd * read_pj + wr * write_pj
                key = (rd + wr, e) if bytes_first else (e, rd + wr)
                if best is None or key < best:
                    best, pick = key, (i, j, k_fit, inner)
    if pick is None:
        return None
    i, j, k, inner = pick
    chosen = (ao[i], bo[j], ab[k])
    tiles = dict(chosen[0].tiles + chosen[1].tiles + chosen[2].tiles)
    t_ao, t_bo, t_ab = (e.trips for e in chosen)
    f_a = t_bo if inner != "BO" else 1
    f_b = t_ao if inner != "AO" else 1
    s = [g * math.prod(e.sums[x] for e in chosen) for x in range(3)]
    rd3 = [0 if carried == "A" else nbytes(s[0], bits[0]) * f_a,
           0 if carried == "B" else nbytes(s[1], bits[1]) * f_b, 0]
    wr3 = [0, 0, 0 if keep_out else nbytes(s[2], bits[2])]
    psum_b = (0, 0)
    fo_fetch = 1
    if t_ab > 1 and inner != "AB":
        pbytes = nbytes(s[2], pb) * (t_ab - 1)
        rd3[2], wr3[2], psum_b, fo_fetch = pbytes, wr3[2] + pbytes, (pbytes, pbytes), t_ab
    fpb = tuple(nbytes(shape.footprint(r, tiles), bits[x]) for x, r in enumerate(ROLES))
    return DramPlan(tuple(sorted(tiles.items())), inner, tuple(rd3), tuple(wr3),  # type: ignore[arg-type]
                    psum_b, fpb, (f_a, f_b, fo_fetch), evaluated)  # type: ignore[arg-type]
