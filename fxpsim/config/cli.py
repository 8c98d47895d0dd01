"""``fxpsim check`` and ``fxpsim list``: validate / show accelerator configs and models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fxpsim.config.area import area_of
from fxpsim.config.hw import HwConfig
from fxpsim.config.load import LoadedHw, builtin_names, load_hwconfig
from fxpsim.config.run import parse_run_options
from fxpsim.errors import ConfigError, FxpsimError


def derived_numbers(hw: HwConfig) -> list[tuple[str, str]]:
    """``(label, value)`` rows of peak throughput, DRAM bandwidth, roofline knee, leakage.

    peak MAC/s per mode = rows x cols x f x macs_per_pe_per_cycle; achievable DRAM B/s =
    bandwidth_gb_s x 1e9 x efficiency; knee (MAC/B) = peak MAC/s / achievable DRAM B/s.
    """
    pes = hw.mac_array.rows * hw.mac_array.cols
    dram_bps = hw.dram.bandwidth_gb_s * 1e9 * hw.dram.efficiency
    rows = [("PEs", f"{pes} ({hw.mac_array.rows}x{hw.mac_array.cols}, "
                    f"{hw.mac_array.dataflow})")]
    for mode in hw.mac_array.precision_modes:
        peak = pes * hw.freq_hz * mode.macs_per_pe_per_cycle
        rows.append((f"peak {mode.name}",
                     f"{peak / 1e9:.1f} GMAC/s ({2 * peak / 1e9:.1f} GOPS), "
                     f"roofline knee {peak / dram_bps:.1f} MAC/B"))
    rows.append(("DRAM achievable", f"{dram_bps / 1e9:.2f} GB/s "
                                    f"({hw.dram_bytes_per_cycle:.2f} B/cycle)"))
    sram = sum(m.size_kib or 0.0 for m in hw.memory if m.is_sram)
    rows.append(("on-chip SRAM", f"{sram:g} KiB"))
    rows.append(("leakage total", f"{hw.leakage_mw_total:g} mW"))
    return rows


def area_lines(hw: HwConfig) -> list[str]:
    """``# area`` block of ``fxpsim check``: mm² by component and the total."""
    area = area_of(hw)
    rows = [*((k, f"{v:.4f} mm2") for k, v in area.by_component),
            ("total", f"{area.total_mm2:.4f} mm2")]
    width = max(len(k) for k, _ in rows)
    return ["", f"# area ({area.reference})", *(f"{k.ljust(width)}  {v}" for k, v in rows)]


def render_check(loaded: LoadedHw) -> str:
    """The text ``fxpsim check`` prints: resolved YAML (sorted keys) + derived numbers."""
    dumped = yaml.safe_dump(
        loaded.config.model_dump(mode="json"), sort_keys=True, default_flow_style=False
    )
    lines = [f"# {loaded.source}: valid (schema_version {loaded.config.schema_version})",
             dumped.rstrip(), "", "# derived"]
    width = max(len(k) for k, _ in derived_numbers(loaded.config))
    lines += [f"{k.ljust(width)}  {v}" for k, v in derived_numbers(loaded.config)]
    lines.append(f"{'digest'.ljust(width)}  sha256:{loaded.digest}")
    lines += area_lines(loaded.config)
    return "\n".join(lines)


def check(options: Mapping[str, str]) -> int:
    """``fxpsim check hw=NAME [dotted overrides] [run options]``: validate and print.

    Run options other than ``hw`` are validated too (so a ``run`` command line can be checked
    as is) but otherwise ignored. Returns 0; user errors raise :class:`ConfigError`.
    """
    if "hw" not in options:
        raise ConfigError("command line", "hw", "required (e.g. fxpsim check hw=edge_npu)")
    run, overrides = parse_run_options(options)
    print(render_check(load_hwconfig(run.hw, overrides)))
    return 0


def _hw_rows() -> list[tuple[str, ...]]:
    rows = []
    for name in builtin_names():
        try:
            loaded = load_hwconfig(name)
        except FxpsimError as exc:
            rows.append((name, f"invalid: {exc}", "", "", "", ""))
            continue
        hw = loaded.config
        sram = sum(m.size_kib or 0.0 for m in hw.memory if m.is_sram)
        where = "local" if Path(loaded.source).parts[:1] == ("hwconfigs",) else "packaged"
        rows.append((
            f"{name} ({where})",
            f"{hw.mac_array.rows}x{hw.mac_array.cols}",
            hw.mac_array.dataflow,
            f"{hw.clock.freq_mhz:g} MHz",
            f"{sram:g}",
            f"{hw.dram.type} {hw.dram.bandwidth_gb_s:g} GB/s",
        ))
    return rows


def _si(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return str(x)
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:g}"


def _model_row(row: Any) -> tuple[str, str, str, str]:
    if isinstance(row, Sequence) and not isinstance(row, str):
        name, shape, macs, params = (list(row) + [""] * 4)[:4]
    else:
        name = getattr(row, "name", row)
        shape = getattr(row, "input_shape", "")
        macs = getattr(row, "macs", "")
        params = getattr(row, "params", "")
    if isinstance(shape, (tuple, list)):
        shape = "x".join(str(s) for s in shape)
    return str(name), str(shape), _si(macs), _si(params)


def list_all() -> int:
    """``fxpsim list``: tables of built-in hwconfigs (local ``./hwconfigs`` and packaged) and
    of the models :func:`fxpsim.graph.resolve.list_models` knows. Returns 0."""
    from rich.console import Console
    from rich.table import Table

    from fxpsim.graph.resolve import list_models

    console = Console()
    if not console.is_terminal:  # piped/captured: don't fold names into 80 columns
        console = Console(width=max(console.width, 140))
    hw_table = Table(title="hwconfigs (use hw=NAME)")
    for col in ("name", "array", "dataflow", "clock", "SRAM KiB", "DRAM"):
        hw_table.add_column(col)
    for r in _hw_rows():
        hw_table.add_row(*r)
    console.print(hw_table)
    model_table = Table(title="models (use model=NAME)")
    for col in ("name", "input", "MACs", "params"):
        model_table.add_column(col)
    for row in list_models():
        model_table.add_row(*_model_row(row))
    console.print(model_table)
    return 0
