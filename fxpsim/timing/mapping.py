"""Mapping: spatial maps (which GEMM axes the array unrolls) and precision-mode choice.

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

The rest of a mapping -- the loop nest over the real dims, tile sizes, packing and the
search -- is in :mod:`fxpsim.timing.loopnest`, :mod:`fxpsim.timing.arraymap` and
:mod:`fxpsim.timing.search`.
"""

from __future__ import annotations

from typing import Literal

from fxpsim.config.hw import HwConfig, PrecisionMode
from fxpsim.errors import ConfigError, UnsupportedError
from fxpsim.timing.loopnest import ceil_div, nbytes
from fxpsim.timing.ops import GemmOp

__all__ = ["ceil_div", "nbytes"]  # re-exported for older imports

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
    smap: dict[Literal["rows", "cols"], str] | None
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
