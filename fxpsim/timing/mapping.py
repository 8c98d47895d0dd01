"""Mapping: one :class:`~fxpsim.timing.ops.GemmOp` onto the MAC array -> classes of tiles.

A GEMM ``out[m, n] = sum_k A[m, k] B[k, n]`` has three axes ``m``, ``k`` (reduction) and
``n``. Two of them are unrolled on the array (rows, cols); the third is *temporal* (streamed
through the array, ``T`` elements per tile). The tensor indexed by the two spatial axes is
*stationary* (held in the PEs for a tile): ``(k, n)`` -> B (weight-stationary), ``(m, n)``
-> the output (output-stationary), ``(m, k)`` -> A (input-stationary).

Spatial maps
------------
Default maps per dataflow (SCALE-Sim's): OS rows<-m, cols<-n, T=k; WS rows<-k, cols<-n,
T=m; IS rows<-k, cols<-m, T=n. ``mac_array.spatial_map`` and
``mac_array.spatial_map_overrides.<forward|dgrad|wgrad>`` name loop dims of the *forward*
conv (``B, OY, OX, C, FY, FX, K``; a product such as ``B*OY*OX``). A map entry selects the
GEMM axis its dims belong to in that pass, and the whole axis (the im2col extent) is
unrolled, as SCALE-Sim does with its conv window:

=========  =================  =====================  =====
pass       m                  k (reduction)          n
=========  =================  =====================  =====
forward    B, OY, OX          C, FY, FX              K
dgrad      B, OY, OX (IY, IX) K, FY, FX              C
wgrad      C, FY, FX          B, OY, OX              K
=========  =================  =====================  =====

Pixel and filter dims missing from the op's ``loop_dims`` (linear layers) count as extent 1.
(For wgrad, if the op is laid out as ``dW^T`` -- ``m`` equals the K extent -- the m/n roles
swap). The pass is recognised from the op's operand kinds (``weight_gradients`` output ->
wgrad, ``gradients`` x ``weights`` -> dgrad). With a non-default map the configured dataflow
only supplies the default; the stationary tensor follows from the map. Errors: a dim not in
the op's loop nest, both entries on one axis, or dims of one entry on different axes ->
:class:`~fxpsim.errors.ConfigError` naming the key path.

Loop nest and tiles
-------------------
If the reduction axis is spatial, the loops are (outer -> inner): folds of the other spatial
axis, chunks of the temporal axis, folds of the reduction axis -- partial sums of one chunk
are accumulated in the psum SRAM (read-modify-write from the second reduction fold on), so
a chunk holds at most ``psum buffer bits // (array extent x psum_bits)`` temporal elements
(chunking only when the reduction spans more than one fold). If the reduction is temporal
(OS), loops are col folds then row folds and each tile streams all of ``k``. Each loop's
iterations fall into classes first / middle / last (the last one may be partial); the cross
product gives at most 27 *tile classes* of identical tiles, each with a count.

Cycles of one tile (integers): ``load + stream + fill_drain`` with
``stream = ceil(T x q / p)`` for a precision mode of ``p/q`` MACs per PE per cycle,
``load = weight_load_cycles_per_tile`` (default ``rows``) when the stationary tensor is an
input, reduced to ``max(0, load - stream)`` with ``weight_double_buffered``, and
``fill_drain = rows + cols - 2`` for a systolic array (0 otherwise). Partial tiles pay the
full array's skew, as in SCALE-Sim. With the default load this is SCALE-Sim's per-fold
count (see :mod:`fxpsim.timing.scalesim_timing`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from fxpsim.config.hw import HwConfig, PrecisionMode
from fxpsim.errors import ConfigError, UnsupportedError
from fxpsim.timing.ops import GemmOp

Axis = Literal["m", "k", "n"]
PassKind = Literal["forward", "dgrad", "wgrad"]
Tensor = Literal["A", "B", "O"]

#: axes each tensor is indexed by
TENSOR_AXES: dict[str, frozenset[str]] = {
    "A": frozenset("mk"),
    "B": frozenset("kn"),
    "O": frozenset("mn"),
}

_DIM_AXES: dict[str, dict[str, str]] = {
    "forward": {"B": "m", "OY": "m", "OX": "m", "C": "k", "FY": "k", "FX": "k", "K": "n"},
    "dgrad": {"B": "m", "OY": "m", "OX": "m", "IY": "m", "IX": "m",
              "K": "k", "FY": "k", "FX": "k", "C": "n"},
    "wgrad": {"C": "m", "FY": "m", "FX": "m", "B": "k", "OY": "k", "OX": "k", "K": "n"},
}

_UNIT_DIMS = frozenset({"OY", "OX", "IY", "IX", "FY", "FX"})

_DEFAULT_MAPS: dict[str, tuple[str, str]] = {
    "output_stationary": ("m", "n"),
    "weight_stationary": ("k", "n"),
    "input_stationary": ("k", "m"),
}


def hw_source(hw: HwConfig) -> str:
    return f"hwconfig {hw.name}"


def pass_kind(op: GemmOp) -> PassKind:
    """forward / dgrad / wgrad, from the op's operand kinds (pass names vary by algorithm)."""
    if op.out_kind == "weight_gradients":
        return "wgrad"
    if op.a_kind == "gradients" and op.out_kind == "gradients":
        return "dgrad"
    return "forward"


def _loop_dims(op: GemmOp) -> dict[str, int]:
    return dict(op.loop_dims)


def _dim_axes(op: GemmOp, kind: PassKind) -> dict[str, str]:
    table = dict(_DIM_AXES[kind])
    if kind == "wgrad":
        dims = _loop_dims(op)
        if "K" in dims and op.m == dims["K"] and op.n != dims["K"]:
            # dW^T = dY^T X layout: K on m, C*FY*FX on n
            table = {d: ("n" if a == "m" else "m" if a == "n" else a) for d, a in table.items()}
    return table


def _axis_of_entry(op: GemmOp, kind: PassKind, entry: str, key_path: str, src: str) -> str:
    table = _dim_axes(op, kind)
    # pixel and filter dims a linear layer (or a pass) lacks are extent-1 dims, so one map
    # such as {rows: B*OY*OX} serves convs and linears alike
    known = (set(_loop_dims(op)) | _UNIT_DIMS) if op.loop_dims else set(table)
    axes = set()
    for raw in entry.split("*"):
        dim = raw.strip()
        if dim not in known or dim not in table:
            raise ConfigError(
                src, key_path,
                f"loop dim {dim!r} does not exist in {op.layer} ({kind}); "
                f"known: {', '.join(sorted(known & set(table)))}",
            )
        axes.add(table[dim])
    if len(axes) != 1:
        raise ConfigError(src, key_path, f"{entry!r} mixes dims of different GEMM axes "
                          f"({', '.join(sorted(axes))}) in {op.layer} ({kind})")
    return axes.pop()


def spatial_axes(hw: HwConfig, op: GemmOp) -> tuple[str, str, str]:
    """(rows axis, cols axis, temporal axis) of ``op``, each one of ``m``, ``k``, ``n``."""
    ma = hw.mac_array
    kind = pass_kind(op)
    src = hw_source(hw)
    if kind in ma.spatial_map_overrides:
        smap, base = ma.spatial_map_overrides[kind], f"mac_array.spatial_map_overrides.{kind}"
    else:
        smap, base = ma.spatial_map, "mac_array.spatial_map"
    if smap is None:
        rows, cols = _DEFAULT_MAPS[ma.dataflow]
    else:
        for need in ("rows", "cols"):
            if need not in smap:
                raise ConfigError(src, f"{base}.{need}", "missing (give both rows and cols)")
        rows = _axis_of_entry(op, kind, smap["rows"], f"{base}.rows", src)
        cols = _axis_of_entry(op, kind, smap["cols"], f"{base}.cols", src)
        if rows == cols:
            raise ConfigError(src, base, f"rows and cols both map GEMM axis {rows} of "
                              f"{op.layer} ({kind}); they must differ")
    temporal = ({"m", "k", "n"} - {rows, cols}).pop()
    return rows, cols, temporal


def stationary_tensor(rows: str, cols: str) -> Tensor:
    spatial = frozenset((rows, cols))
    for t, axes in TENSOR_AXES.items():
        if axes == spatial:
            return t  # type: ignore[return-value]
    raise AssertionError(spatial)


def widest_mode(hw: HwConfig) -> PrecisionMode:
    """The precision mode with the largest ``(w_bits, a_bits)`` (times float operands)."""
    return max(hw.mac_array.precision_modes, key=lambda m: (m.w_bits, m.a_bits))


def select_mode(hw: HwConfig, op: GemmOp, stationary: str) -> PrecisionMode:
    """The precision mode with the smallest ``(w_bits, a_bits)`` covering the op's operands.

    The weight port holds the stationary input (B when the output is stationary); the other
    input goes through the activation port. No covering mode -> UnsupportedError, except for
    the float baseline (``op.float_operands``): integer hardware has no float MAC, so its step
    is timed in the widest mode (the report carries a note saying so).
    """
    if stationary == "A":
        w_bits, a_bits = op.a_bits, op.b_bits
    else:
        w_bits, a_bits = op.b_bits, op.a_bits
    cover = [m for m in hw.mac_array.precision_modes if m.w_bits >= w_bits and m.a_bits >= a_bits]
    if not cover and op.float_operands:
        return widest_mode(hw)
    if not cover:
        have = ", ".join(f"{m.name}(w{m.w_bits}a{m.a_bits})" for m in hw.mac_array.precision_modes)
        raise UnsupportedError(
            f"{op.layer} ({op.pass_name}): no precision mode of {hw.name} covers "
            f"{w_bits}-bit x {a_bits}-bit operands (modes: {have})"
        )
    return min(cover, key=lambda m: (m.w_bits, m.a_bits))


def mode_rate(mode: PrecisionMode) -> Fraction:
    """MACs per PE per cycle as an exact fraction (0.25 -> 1/4)."""
    return Fraction(str(mode.macs_per_pe_per_cycle))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def nbytes(elems: int, bits: int) -> int:
    """Bytes of ``elems`` packed ``bits``-bit values (INT4 packs two per byte)."""
    return ceil_div(elems * bits, 8)


@dataclass(frozen=True)
class Loop:
    axis: str
    extent: int
    block: int  # elements per iteration (last one may be partial)

    @property
    def trips(self) -> int:
        return ceil_div(self.extent, self.block)

    def classes(self) -> list[tuple[bool, bool, int, int]]:
        """(is_first, is_last, count, block size) per iteration class."""
        t, last = self.trips, self.extent - (self.trips - 1) * self.block
        if t == 1:
            return [(True, True, 1, last)]
        out = [(True, False, 1, self.block)]
        if t > 2:
            out.append((False, False, t - 2, self.block))
        out.append((False, True, 1, last))
        return out


@dataclass(frozen=True)
class TileClass:
    """``count`` identical tiles (already multiplied by ``groups``)."""

    count: int
    rows_used: int
    cols_used: int
    t: int  # temporal elements streamed
    first: tuple[tuple[str, bool], ...]  # tensor -> tile lies in that tensor's first sweep
    red_first: bool  # first fold of the reduction (no psum read-modify-write)
    red_last: bool  # last fold of the reduction (final outputs leave the array)
    load_cycles: int
    stream_cycles: int
    fill_cycles: int
    elems: tuple[tuple[str, int], ...]  # tensor -> elements of its tile (A, B, O)

    @property
    def array_cycles(self) -> int:
        return self.load_cycles + self.stream_cycles + self.fill_cycles

    @property
    def macs(self) -> int:
        return self.rows_used * self.cols_used * self.t

    def is_first(self, tensor: str) -> bool:
        return dict(self.first)[tensor]

    def tile_elems(self, tensor: str) -> int:
        return dict(self.elems)[tensor]


@dataclass(frozen=True)
class GemmMapping:
    op: GemmOp
    kind: PassKind
    rows_axis: str
    cols_axis: str
    temporal_axis: str
    stationary: Tensor
    mode: PrecisionMode
    rate: Fraction
    loops: tuple[Loop, ...]
    tiles: tuple[TileClass, ...]
    reduction_spatial: bool

    def sweeps(self, tensor: str) -> int:
        """How many times the loop nest reads ``tensor`` in full (1 = each element once)."""
        return _sweeps(self.loops, tensor)

    @property
    def n_tiles(self) -> int:
        return sum(t.count for t in self.tiles)


def _outer_loops_not_indexing(loops: tuple[Loop, ...], tensor: str) -> list[int]:
    axes = TENSOR_AXES[tensor]
    inner = max(i for i, lp in enumerate(loops) if lp.axis in axes)
    return [i for i in range(inner) if loops[i].axis not in axes]


def _sweeps(loops: tuple[Loop, ...], tensor: str) -> int:
    return math.prod(loops[i].trips for i in _outer_loops_not_indexing(loops, tensor))


def _psum_chunk(hw: HwConfig, op: GemmOp, array_extent: int) -> int | None:
    """Temporal elements per chunk so one chunk's psums fit one psum buffer (None = no limit)."""
    for i, mem in enumerate(hw.memory):
        if mem.is_sram and "psums" in mem.holds:
            acc = hw.mac_array.accumulator
            bits = (mem.size_bytes // 2 if mem.double_buffered else mem.size_bytes) * 8
            t = bits // (array_extent * (acc.psum_bits or acc.bits))
            if t < 1:
                raise ConfigError(hw_source(hw), f"memory[{i}].size_kib",
                                  f"psum buffer cannot hold one row of {array_extent} "
                                  f"psums for {op.layer}")
            return t
    return None


def map_gemm(hw: HwConfig, op: GemmOp) -> GemmMapping:
    """Tiles of ``op`` on ``hw``'s array (see the module docstring for every rule)."""
    ma = hw.mac_array
    rows_ax, cols_ax, t_ax = spatial_axes(hw, op)
    stat = stationary_tensor(rows_ax, cols_ax)
    mode = select_mode(hw, op, stat)
    rate = mode_rate(mode)
    ext = {"m": op.m, "k": op.k, "n": op.n}
    red_spatial = t_ax != "k"
    if red_spatial:
        red_ax, red_dim = (rows_ax, ma.rows) if rows_ax == "k" else (cols_ax, ma.cols)
        other_ax, other_dim = (cols_ax, ma.cols) if rows_ax == "k" else (rows_ax, ma.rows)
        chunk = ext[t_ax]
        if ceil_div(ext["k"], red_dim) > 1:
            lim = _psum_chunk(hw, op, other_dim)
            if lim is not None:
                chunk = min(chunk, lim)
        loops = (Loop(other_ax, ext[other_ax], other_dim), Loop(t_ax, ext[t_ax], chunk),
                 Loop(red_ax, ext[red_ax], red_dim))
    else:
        loops = (Loop(cols_ax, ext[cols_ax], ma.cols), Loop(rows_ax, ext[rows_ax], ma.rows),
                 Loop(t_ax, ext[t_ax], ext[t_ax]))
    wl = ma.weight_load_cycles_per_tile if ma.weight_load_cycles_per_tile is not None else ma.rows
    fill = ma.rows + ma.cols - 2 if ma.systolic else 0
    first_loops = {t: _outer_loops_not_indexing(loops, t) for t in ("A", "B")}
    red_idx = next(i for i, lp in enumerate(loops) if lp.axis == "k")

    tiles: list[TileClass] = []
    for combo in itertools.product(*(lp.classes() for lp in loops)):
        size = {loops[i].axis: combo[i][3] for i in range(3)}
        count = math.prod(c[2] for c in combo) * op.groups
        t = size[t_ax]
        stream = ceil_div(t * rate.denominator, rate.numerator)
        load = 0
        if stat != "O":
            load = max(0, wl - stream) if ma.weight_double_buffered else wl
        first = tuple((x, all(combo[i][0] for i in first_loops[x])) for x in ("A", "B"))
        elems = tuple((x, math.prod(size[a] for a in TENSOR_AXES[x])) for x in ("A", "B", "O"))
        red_first, red_last = (combo[red_idx][0], combo[red_idx][1]) if red_spatial else (True, True)
        tiles.append(TileClass(count, size[rows_ax], size[cols_ax], t, first, red_first,
                               red_last, load, stream, fill, elems))
    return GemmMapping(op, pass_kind(op), rows_ax, cols_ax, t_ax, stat, mode, rate, loops,
                       tuple(tiles), red_spatial)
