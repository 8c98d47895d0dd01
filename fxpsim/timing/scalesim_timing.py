"""SCALE-Sim-compatible compute cycles (``timing=scalesim``).

Checked against scale-sim-v2, ``scalesim/compute/systolic_compute_{os,ws,is}.py``: each fold
appends to the demand matrices a block whose row count is the fold's cycle count, and the
memory system reports (without stalls) one cycle per demand-matrix row. Per fold, for an
``R x C`` array:

* OS: operand rows ``Sr = ofmap px``, cols ``Sc = filters``, ``T = window``. The ifmap
  demand block is ``T + (C - 1)`` rows, skewed over ``R`` columns: ``T + R + C - 2`` cycles.
  (The SCALE-Sim paper's OS formula ``2R + C + T - 2`` is *not* what v2's code counts.)
* WS: ``Sr = window``, ``Sc = filters``, ``T = ofmap px``. ``R`` rows of weight load +
  ``T`` + ``C - 1`` drain, skewed over ``R`` columns: ``2R + C + T - 2`` cycles.
* IS: ``Sr = window``, ``Sc = ofmap px``, ``T = filters``; same block as WS:
  ``2R + C + T - 2`` cycles.

Partial folds are padded with null requests to the full array, so every fold costs the
same; folds = ``ceil(Sr / R) * ceil(Sc / C)`` and compute cycles = folds x cycles per fold.
SCALE-Sim has no batch (its operand matrix uses batch 1) and no precision: fxpsim applies
the formula per GEMM of the lowered op list (batch folded into the pixel axis, ``groups``
GEMMs in sequence) with the configured dataflow's default map, ignoring spatial-map
overrides, precision rates and memory stalls (SCALE-Sim's stall model needs its
cycle-by-cycle trace). Topology layers use SCALE-Sim's output size
``ofmap = ceil((H - R + stride) / stride)`` (``scalesim/topology_utils.py``); it equals
``(H - R) // stride + 1`` unless ``H - R`` is not a multiple of the stride, where SCALE-Sim
counts one more (partial) window.

fxpsim's own schedule (:mod:`fxpsim.timing.mapping`, :mod:`fxpsim.timing.schedule`) uses
the same per-fold count when ``weight_load_cycles_per_tile = rows`` and the array is
systolic, and differs where the hardware description says more: the streamed length is
divided by the precision mode's MACs per PE per cycle, weight loads can be double-buffered
or cost a configured number of cycles, long reductions are chunked to fit the psum SRAM,
and DRAM / SRAM-port / requantizer stalls come from the DMA pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from fxpsim.config.hw import HwConfig
from fxpsim.errors import ConfigError
from fxpsim.graph.ir import Conv2dAttrs, Graph
from fxpsim.timing import scalesim_memory
from fxpsim.timing.mapping import ceil_div, hw_source
from fxpsim.timing.ops import GemmOp
from fxpsim.timing.scalesim_memory import (
    SETS_PER_BUFFER,
    ConvGeometry,
    ScaleSimLayer,
    ScaleSimMemory,
)

Geometries = Mapping[str, ConvGeometry]

DATAFLOW_ALIASES: dict[str, str] = {
    "os": "output_stationary", "ws": "weight_stationary", "is": "input_stationary",
    "output_stationary": "output_stationary", "weight_stationary": "weight_stationary",
    "input_stationary": "input_stationary",
}


@dataclass(frozen=True)
class ScaleSimDims:
    """SCALE-Sim's operand-matrix view of a layer: rows/cols/temporal extents."""

    sr: int
    sc: int
    t: int


def _df(dataflow: str) -> str:
    try:
        return scalesim_memory.DATAFLOWS[DATAFLOW_ALIASES[dataflow]]
    except KeyError:
        raise ValueError(f"dataflow must be os, ws or is, got {dataflow!r}") from None


def gemm_dims(dataflow: str, m: int, k: int, n: int) -> ScaleSimDims:
    """(Sr, Sc, T) of a GEMM with ``m`` output pixels, reduction ``k``, ``n`` filters."""
    df = _df(dataflow)
    if df == "os":
        return ScaleSimDims(m, n, k)
    if df == "ws":
        return ScaleSimDims(k, n, m)
    return ScaleSimDims(k, m, n)


def conv_dims(dataflow: str, ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int,
              channels: int, filters: int, stride: int) -> ScaleSimDims:
    """A SCALE-Sim topology conv row (ifmap already padded) -> (Sr, Sc, T)."""
    if min(ifmap_h, ifmap_w, filt_h, filt_w, channels, filters, stride) < 1:
        raise ValueError("layer dimensions and stride must be positive")
    if filt_h > ifmap_h or filt_w > ifmap_w:
        raise ValueError(f"filter {filt_h}x{filt_w} larger than ifmap {ifmap_h}x{ifmap_w}")
    oh = ceil_div(ifmap_h - filt_h + stride, stride)
    ow = ceil_div(ifmap_w - filt_w + stride, stride)
    return gemm_dims(dataflow, oh * ow, filt_h * filt_w * channels, filters)


def folds(rows: int, cols: int, dims: ScaleSimDims) -> int:
    return ceil_div(dims.sr, rows) * ceil_div(dims.sc, cols)


def cycles_per_fold(dataflow: str, rows: int, cols: int, t: int) -> int:
    """Demand-matrix rows of one fold (see the module docstring)."""
    if _df(dataflow) == "os":
        return t + rows + cols - 2
    return 2 * rows + cols + t - 2


def compute_cycles(dataflow: str, rows: int, cols: int, dims: ScaleSimDims) -> int:
    """SCALE-Sim v2 compute cycles without memory stalls: folds x cycles per fold."""
    if rows < 1 or cols < 1:
        raise ValueError(f"array must be at least 1x1, got {rows}x{cols}")
    return folds(rows, cols, dims) * cycles_per_fold(dataflow, rows, cols, dims.t)


def gemm_cycles(dataflow: str, rows: int, cols: int, m: int, k: int, n: int,
                groups: int = 1) -> int:
    """Compute cycles of ``groups`` GEMMs of ``m x k x n`` in sequence."""
    return groups * compute_cycles(dataflow, rows, cols, gemm_dims(dataflow, m, k, n))


# ---- SCALE-Sim's memory system (timing=scalesim) -------------------------------------------

#: layers.csv columns added with timing=scalesim: SCALE-Sim's COMPUTE_REPORT and
#: BANDWIDTH_REPORT items (words/cycle; in CALC mode the DRAM items need the config's
#: ifmap/filter/ofmap SRAMs, else they are blank)
REPORT_COLUMNS: tuple[str, ...] = (
    "scalesim_total_cycles", "scalesim_stall_cycles", "scalesim_overall_util_pct",
    "scalesim_mapping_efficiency_pct", "scalesim_compute_util_pct",
    "scalesim_ifmap_sram_bw", "scalesim_filter_sram_bw", "scalesim_ofmap_sram_bw",
    "scalesim_ifmap_dram_bw", "scalesim_filter_dram_bw", "scalesim_ofmap_dram_bw",
)
_SRAMS = ("ifmap_sram", "filter_sram", "ofmap_sram")


def memory_of(hw: HwConfig) -> ScaleSimMemory:
    """SCALE-Sim's memory parameters of ``hw``: its ``scalesim`` section (CALC when absent)
    and the sizes of the ``ifmap_sram``/``filter_sram``/``ofmap_sram`` memories a ``.cfg``
    import creates (SCALE-Sim truncates kB to an integer; 1024 one-byte words per kB)."""
    iface = hw.scalesim
    sizes = {m.name: m.size_kib for m in hw.memory if m.is_sram}
    if iface is None or iface.interface_bandwidth == "CALC":
        # the DRAM estimate needs SCALE-Sim's three SRAMs (a .cfg import has them)
        ifm, fil, ofm = (int(sizes.get(n) or 0) * 1024 for n in _SRAMS)
        return ScaleSimMemory("CALC", ifm, fil, ofm, 1, 1, 1)
    missing = [n for n in _SRAMS if n not in sizes]
    if missing:
        raise ConfigError(hw_source(hw), "scalesim.interface_bandwidth",
                          f"USER mode needs the memories {', '.join(_SRAMS)} "
                          f"(missing {', '.join(missing)})")
    ifm, fil, ofm = (int(sizes[n] or 0) * 1024 for n in _SRAMS)
    if min(ifm, fil, ofm) < SETS_PER_BUFFER:
        raise ConfigError(hw_source(hw), "memory",
                          "USER mode needs at least 1 kB in each SCALE-Sim SRAM")
    return ScaleSimMemory("USER", ifm, fil, ofm, iface.ifmap_words_per_cycle,
                          iface.filter_words_per_cycle, iface.ofmap_words_per_cycle)


@lru_cache(maxsize=4096)
def _layer(dataflow: str, rows: int, cols: int, m: int, k: int, n: int,
           mem: ScaleSimMemory, geometry: ConvGeometry | None) -> ScaleSimLayer:
    return scalesim_memory.layer(dataflow, rows, cols, m, k, n, mem, geometry)


def clear_layer_memo() -> None:
    """Forget the layers computed so far (they are memoised per process: a network repeats
    layer shapes, and each record asks twice)."""
    _layer.cache_clear()


def gemm_report(hw: HwConfig, m: int, k: int, n: int,
                geometry: ConvGeometry | None = None) -> ScaleSimLayer:
    """SCALE-Sim 3.0.0's report items for one GEMM group on ``hw``."""
    ma = hw.mac_array
    mem = memory_of(hw)
    return _layer(_df(ma.dataflow), ma.rows, ma.cols, m, k, n, mem, geometry)


def conv_geometries(graph: Graph) -> Geometries:
    """Each conv layer's ifmap addressing as SCALE-Sim sees it (padding included)."""
    out: dict[str, ConvGeometry] = {}
    for node in graph.gemm_nodes:
        a = node.attrs
        if isinstance(a, Conv2dAttrs):
            c, h, w = node.in_shape
            out[node.name] = ConvGeometry(
                h + 2 * a.padding[0], w + 2 * a.padding[1], c // a.groups, *a.kernel,
                *a.stride, node.shape[2])
    return out


def _geometry(op: GemmOp, geometry: Geometries) -> ConvGeometry | None:
    # the im2col ifmap of a forward conv repeats addresses; other GEMMs read distinct words
    return geometry.get(op.layer) if op.op == "conv2d" and op.pass_name == "forward" else None


def gemm_timing(hw: HwConfig, m: int, k: int, n: int, groups: int = 1,
                geometry: ConvGeometry | None = None) -> tuple[int, int]:
    """(cycles, stall cycles) of ``groups`` GEMMs run one after another, each as SCALE-Sim
    reports a layer: ``Total Cycles`` = demand rows - 1 + memory stalls."""
    r = gemm_report(hw, m, k, n, geometry)
    return groups * r.total_cycles, groups * r.stall_cycles


def op_timing(hw: HwConfig, op: GemmOp, geometry: Geometries) -> tuple[int, int]:
    """:func:`gemm_timing` of a lowered GEMM (``geometry``: :func:`conv_geometries`)."""
    return gemm_timing(hw, op.m, op.k, op.n, op.groups, _geometry(op, geometry))


def report_columns(hw: HwConfig, m: int, k: int, n: int, groups: int = 1,
                   geometry: ConvGeometry | None = None) -> dict[str, object]:
    """The :data:`REPORT_COLUMNS` of one GEMM (cycles summed over ``groups``)."""
    r = gemm_report(hw, m, k, n, geometry)
    vals: tuple[object, ...] = (
        groups * r.total_cycles, groups * r.stall_cycles, r.overall_util,
        r.mapping_efficiency, r.compute_util, r.ifmap_sram_bw, r.filter_sram_bw,
        r.ofmap_sram_bw, r.ifmap_dram_bw, r.filter_dram_bw, r.ofmap_dram_bw)
    return {c: "" if v is None else (round(v, 6) if isinstance(v, float) else v)
            for c, v in zip(REPORT_COLUMNS, vals, strict=True)}
